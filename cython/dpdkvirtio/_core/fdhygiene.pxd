# L1: file descriptors DPDK opens or receives without close-on-exec.
from libc.stdint cimport uint32_t

cdef uint32_t cloexec_sweep_c() noexcept nogil
cdef void mark_cloexec(int fd) noexcept nogil
