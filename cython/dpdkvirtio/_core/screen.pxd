# L1: the vhost-user message screen (see screen.pyx).
from libc.stdint cimport uint32_t

cdef enum:
    SCREEN_PASS = 0               # DPDK handles the message as it is
    SCREEN_NEUTRALISED = 1        # rewritten so that DPDK's handler fails safely (rejected)
    SCREEN_REFUSE = 2             # DPDK's handler must not run (rejected)
    SCREEN_POSTCOPY_ADVISED = 3   # a POSTCOPY_ADVISE let through: no second one

cdef int screen_message(char *ctx, bint postcopy_allowed, int vid) noexcept nogil
cdef uint32_t message_request(char *ctx) noexcept nogil
