# cython: language_level=3
"""Counters (L1): cache-line-aligned C rows that the data path writes (one writer per
row) and Python reads as numpy structured arrays through the buffer protocol, live,
while the data plane runs. Readers may see slightly stale values; aligned 64-bit
stores do not tear on x86-64."""
from libc.stdlib cimport free
from cpython.buffer cimport PyBUF_WRITABLE
from dpdkvirtio._core.debug cimport dv_debug_track, DV_RES_COUNTERS
from dpdkvirtio._dpdk.dv_shim cimport dv_aligned_zalloc
from dpdkvirtio._core.dp_types cimport (dv_pmd_stats, dv_poll_stats, dv_queue_stats,
    DV_HIST_BINS)


cdef class Counters:
    """``rows`` zeroed rows of ``row_size`` bytes (a multiple of 64). The memory lives as
    long as this object or any array made from it; it is never freed under a reader."""

    def __cinit__(self, Py_ssize_t rows, Py_ssize_t row_size, str kind="queue"):
        if rows < 0 or row_size <= 0 or row_size % 64:
            raise ValueError("rows must be >= 0 and row_size a positive multiple of 64")
        self._rows = rows
        self._row_size = row_size
        self._nbytes = rows * row_size
        self.kind = kind
        self._mem = dv_aligned_zalloc(<size_t>self._nbytes)
        if self._mem is NULL:
            raise MemoryError()
        dv_debug_track(DV_RES_COUNTERS, 1)

    def __dealloc__(self):
        if self._mem is not NULL:
            free(self._mem)
            dv_debug_track(DV_RES_COUNTERS, -1)
        self._mem = NULL

    @property
    def rows(self):
        return self._rows

    @property
    def row_size(self):
        return self._row_size

    def __getbuffer__(self, Py_buffer *view, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("counters are read-only to Python; the data path writes them")
        view.buf = self._mem
        view.obj = self
        view.len = self._nbytes
        view.readonly = 1
        view.itemsize = 1
        view.format = "B"
        view.ndim = 1
        view.shape = &self._nbytes
        view.strides = &view.itemsize
        view.suboffsets = NULL
        view.internal = NULL
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1

    @property
    def exports(self):
        return self._exports

    cdef void *row(self, Py_ssize_t i):
        return <char *>self._mem + i * self._row_size


# ---- the rows' layouts, read from the C structs so numpy dtypes cannot drift ----------

def pmd_stats_layout():
    """(sizeof(dv_pmd_stats), scalar fields [(name, offset)], hist offset, hist bins)."""
    cdef dv_pmd_stats s
    cdef size_t base = <size_t>&s
    fields = [
        ("iterations", <size_t>&s.iterations - base),
        ("busy_cycles", <size_t>&s.busy_cycles - base),
        ("idle_cycles", <size_t>&s.idle_cycles - base),
        ("empty_iterations", <size_t>&s.empty_iterations - base),
        ("rx_packets", <size_t>&s.rx_packets - base),
        ("tx_packets", <size_t>&s.tx_packets - base),
        ("plan_epoch", <size_t>&s.plan_epoch - base),
        ("cpu", <size_t>&s.cpu - base),
        ("sleeps", <size_t>&s.sleeps - base),
        ("slept_ns", <size_t>&s.slept_ns - base),
        ("sleep_max_ns", <size_t>&s.sleep_max_ns - base),
        ("intr_arms", <size_t>&s.intr_arms - base),
        ("intr_wakeups", <size_t>&s.intr_wakeups - base),
        ("intr_spurious", <size_t>&s.intr_spurious - base),
        ("intr_timeouts", <size_t>&s.intr_timeouts - base),
        ("stalls", <size_t>&s.stalls - base),
        ("stall_cycles", <size_t>&s.stall_cycles - base),
        ("stall_max_cycles", <size_t>&s.stall_max_cycles - base),
        ("stall_busy_cycles", <size_t>&s.stall_busy_cycles - base),
    ]
    return sizeof(dv_pmd_stats), fields, <size_t>&s.hist[0] - base, DV_HIST_BINS


def poll_stats_layout():
    cdef dv_poll_stats s
    cdef size_t base = <size_t>&s
    return sizeof(dv_poll_stats), [("cycles", <size_t>&s.cycles - base),
                                   ("packets", <size_t>&s.packets - base),
                                   ("polls", <size_t>&s.polls - base)]


def queue_stats_layout():
    """(sizeof(dv_queue_stats), [(field name, byte offset), ...]) of the per-queue counter
    row, read from the C struct so the numpy dtype cannot drift from it."""
    cdef dv_queue_stats s
    cdef size_t base = <size_t>&s
    fields = [
        ("rx_packets", <size_t>&s.rx.packets - base),
        ("rx_bytes", <size_t>&s.rx.bytes - base),
        ("rx_bursts", <size_t>&s.rx.bursts - base),
        ("rx_empty_polls", <size_t>&s.rx.empty_polls - base),
        ("rx_not_ready_polls", <size_t>&s.rx.not_ready_polls - base),
        ("rx_malformed_drops", <size_t>&s.rx.malformed_drops - base),
        ("tx_packets", <size_t>&s.tx.packets - base),
        ("tx_bytes", <size_t>&s.tx.bytes - base),
        ("tx_bursts", <size_t>&s.tx.bursts - base),
        ("tx_failure_drops", <size_t>&s.tx.failure_drops - base),
        ("tx_not_ready_drops", <size_t>&s.tx.not_ready_drops - base),
        ("tx_nombuf_drops", <size_t>&s.tx.nombuf_drops - base),
        ("tx_retries", <size_t>&s.tx.retries - base),
    ]
    return sizeof(dv_queue_stats), fields
