# L1: PMD threads (worker lcores running dv_pmd_main) and generators.
from libc.stdint cimport uint64_t
from dpdkvirtio._core.dp_types cimport dv_pmd_ctx, dv_plan, dv_gen
from dpdkvirtio._core.counters cimport Counters
from dpdkvirtio._core.mempool cimport Mempool

cdef class Generator:
    cdef dv_gen *_g
    cdef readonly Mempool mempool
    cdef void *_tmpl
    cdef void *_offs
    cdef void *_lens
    cdef void *_due               # timed replay: uint64 TSC offsets, one per template
    cdef object __weakref__
    cdef int _set_schedule(self, object due_ns, uint64_t loop_ns, Py_ssize_t n,
                           uint64_t hz) except -1

cdef class PmdThread:
    cdef dv_pmd_ctx *_ctx
    cdef dv_plan *_plan
    cdef readonly Counters stats
    cdef readonly Counters poll_stats
    cdef readonly unsigned int lcore
    cdef readonly bint running
    cdef uint64_t _epoch
    cdef list _refs
    cdef list _rx_queues
    cdef int _open_wait_fds(self) except -1
    cdef void _wake(self) noexcept
    cdef void _close_wait_fds(self) noexcept
    cdef object __weakref__
    cdef int _swap(self, dv_plan *plan, double timeout_s) except -1
