# L1: VhostPort, a vhost-user socket served through the vhost library.
from libc.stdint cimport uint64_t
from dpdkvirtio._core.port cimport Port

cdef class VhostPort(Port):
    cdef readonly str path
    cdef readonly uint64_t flags
    cdef int _slot
    cdef int _generation
    cdef bint _registered
    cdef bint _started
    cdef object _socket_mode
    cdef object _socket_owner
    cdef object _socket_group
