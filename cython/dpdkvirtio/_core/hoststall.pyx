# cython: language_level=3
"""Host stalls (L1): how long the host takes a CPU away from a thread that never yields.

A poller sees every interruption of its CPU as latency: a timer tick, a kernel thread, or
the hypervisor running another guest on the physical CPU (which /proc/stat reports as
steal only in 10 ms ticks, and often not at all). ``probe`` spins on the monotonic clock
for a while, without the GIL, and counts every gap between two readings: the floor under
any latency a poller on that CPU can show. The caller pins the calling thread."""
from libc.stdint cimport uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

# gaps at or above each edge are counted (ns): 10 us, 100 us, 1 ms, 10 ms
EDGES_NS = (10_000, 100_000, 1_000_000, 10_000_000)


cdef inline uint64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000 + <uint64_t>ts.tv_nsec


def probe(double seconds):
    """Spin for ``seconds`` in the calling thread (GIL released) and return the gaps
    between consecutive clock readings of 10 us or more: {"seconds", "over_ns": {edge:
    count}, "stalled_ns" (their sum), "max_ns"}. Raises ValueError for a bad duration."""
    if not 0 < seconds <= 600:
        raise ValueError(f"seconds must be in (0, 600], got {seconds!r}")
    cdef uint64_t counts[4]
    cdef uint64_t edges[4]
    cdef uint64_t stalled = 0, longest = 0, gap, prev, now, end
    cdef int k
    for k in range(4):
        counts[k] = 0
        edges[k] = EDGES_NS[k]
    with nogil:
        prev = _now_ns()
        end = prev + <uint64_t>(seconds * 1e9)
        while prev < end:
            now = _now_ns()
            gap = now - prev
            if gap >= edges[0]:
                stalled += gap
                if gap > longest:
                    longest = gap
                for k in range(4):
                    if gap >= edges[k]:
                        counts[k] += 1
            prev = now
    return {"seconds": seconds, "over_ns": {EDGES_NS[k]: counts[k] for k in range(4)},
            "stalled_ns": stalled, "max_ns": longest}
