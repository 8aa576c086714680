# L1: a block of C counter rows exported through the buffer protocol.
cdef class Counters:
    cdef void *_mem
    cdef Py_ssize_t _rows
    cdef Py_ssize_t _row_size
    cdef Py_ssize_t _nbytes
    cdef int _exports
    cdef readonly str kind
    cdef void *row(self, Py_ssize_t i)
