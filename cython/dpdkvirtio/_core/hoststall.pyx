# cython: language_level=3
"""Host stalls (L1): how long the host takes a CPU away from a thread that never yields.

A poller sees every interruption of its CPU as latency: a timer tick, a kernel thread, or
the hypervisor running another guest on the physical CPU (which /proc/stat reports as
steal only in 10 ms ticks, and often not at all). ``probe`` spins on the monotonic clock
for a while, without the GIL, and counts every gap between two readings: the floor under
any latency a poller on that CPU can show. The caller pins the calling thread.

``tsc_pingpong_leader`` / ``tsc_pingpong_follower``: two threads on two CPUs exchange
TSC readings over one cache line, for the offset between the CPUs' TSCs (hostinfo)."""
from libc.stdint cimport uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef extern from "<time.h>" nogil:
    enum: CLOCK_MONOTONIC_RAW
from dpdkvirtio._dpdk.dv_shim cimport dv_load_acquire_u64, dv_store_release_u64
from dpdkvirtio._dpdk.rte_lcore cimport rte_rdtsc

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


# -- the TSC offset between two CPUs: a ping-pong over one shared cache line ------------------
# line[0]: the leader's round number; line[1]: the follower's answer to it; line[2]: the
# follower's TSC when it saw the round. Each side spins without the GIL in its own thread,
# pinned by the caller to its CPU.

cdef bint _spin_until(uint64_t *slot, uint64_t value, uint64_t deadline_ns) noexcept nogil:
    cdef unsigned int n = 0
    while dv_load_acquire_u64(slot) != value:
        n += 1
        if n & 1023 == 0 and _now_ns() > deadline_ns:
            return False
    return True


def tsc_pingpong_leader(uint64_t[::1] line, int rounds, double timeout_s):
    """The leader's side: ``rounds`` rounds; returns (send TSC, follower TSC, answer TSC)
    of each as three lists and (TSC, CLOCK_MONOTONIC_RAW ns) at the first send and after
    the last answer (the TSC's rate), or raises TimeoutError when the follower does not
    answer."""
    if line.shape[0] < 3 or not 0 < rounds <= 1_000_000:
        raise ValueError("tsc_pingpong_leader: a line of 3 uint64 and 1..1e6 rounds")
    sent, theirs, back = [], [], []
    cdef uint64_t t0, t1, tf, deadline, tsc_first, tsc_last
    cdef uint64_t r
    cdef bint ok = True
    cdef timespec k0, k1
    with nogil:
        clock_gettime(CLOCK_MONOTONIC_RAW, &k0)
        tsc_first = rte_rdtsc()
    for r in range(1, <uint64_t>rounds + 1):
        with nogil:
            deadline = _now_ns() + <uint64_t>(timeout_s * 1e9)
            t0 = rte_rdtsc()
            dv_store_release_u64(&line[0], r)
            ok = _spin_until(&line[1], r, deadline)
            t1 = rte_rdtsc()
            tf = line[2]
        if not ok:
            raise TimeoutError(f"the other CPU did not answer round {r} in {timeout_s} s")
        sent.append(t0)
        theirs.append(tf)
        back.append(t1)
    with nogil:
        tsc_last = rte_rdtsc()
        clock_gettime(CLOCK_MONOTONIC_RAW, &k1)
    rate = (tsc_first, <uint64_t>k0.tv_sec * 1000000000 + k0.tv_nsec,
            tsc_last, <uint64_t>k1.tv_sec * 1000000000 + k1.tv_nsec)
    return sent, theirs, back, rate


def tsc_pingpong_follower(uint64_t[::1] line, int rounds, double timeout_s):
    """The follower's side of ``rounds`` rounds; False if the leader stopped sending."""
    if line.shape[0] < 3 or not 0 < rounds <= 1_000_000:
        raise ValueError("tsc_pingpong_follower: a line of 3 uint64 and 1..1e6 rounds")
    cdef uint64_t r, deadline
    cdef bint ok = True
    with nogil:
        for r in range(1, <uint64_t>rounds + 1):
            deadline = _now_ns() + <uint64_t>(timeout_s * 1e9)
            if not _spin_until(&line[0], r, deadline):
                ok = False
                break
            line[2] = rte_rdtsc()
            dv_store_release_u64(&line[1], r)
    return ok
