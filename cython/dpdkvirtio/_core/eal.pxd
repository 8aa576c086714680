# L1: EAL lifetime, shared with every other L1 module.
cdef int eal_check_usable() except -1
cdef bint eal_alive() noexcept nogil
