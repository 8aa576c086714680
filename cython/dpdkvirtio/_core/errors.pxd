# L1: the one choke point that turns DPDK's error conventions into Python exceptions.
cdef int raise_dpdk(object exc_type, int err, str function, str hint=*) except -1
cdef int check_neg_errno(int rc, str function, object exc_type, str hint=*) except -1
cdef int check_rte_errno(int rc, int err, str function, object exc_type, str hint=*) except -1
cdef str dpdk_reason(int err, str function)
