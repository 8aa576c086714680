# L1: Burst owns a C array of mbuf pointers and a count; never one object per packet.
from libc.stdint cimport uint16_t
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf

cdef class Burst:
    cdef rte_mbuf **_pkts
    cdef uint16_t _count
    cdef uint16_t _capacity
    cdef int _exports
    cdef int check_mutable(self) except -1
    cdef void consume_front(self, uint16_t k) noexcept
