# L1: EthPort, an ethdev created at runtime by hotplug of a vdev (virtio-user, null, ring, tap...).
from libc.stdint cimport uint16_t
from dpdkvirtio._core.port cimport Port

cdef class EthPort(Port):
    cdef readonly str devargs
    cdef readonly uint16_t port_id
    cdef bint _probed
    cdef bint _configured
