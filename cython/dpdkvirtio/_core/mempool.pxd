# L1: Mempool owns one rte_mempool of packet mbufs.
from dpdkvirtio._dpdk.rte_mempool cimport rte_mempool

cdef class Mempool:
    cdef rte_mempool *_mp
    cdef readonly str name
    cdef readonly unsigned int size
    cdef readonly unsigned int cache_size
    cdef readonly unsigned int data_room_size
    cdef int _users
    cdef object __weakref__
    cdef rte_mempool *ptr(self) except NULL
    cdef void add_user(self)
    cdef void remove_user(self)
