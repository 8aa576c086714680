# cython: language_level=3
"""Counters (L1): cache-line-aligned C rows that the data path writes (one writer per
row) and Python reads as numpy structured arrays through the buffer protocol, live,
while the data plane runs. Readers may see slightly stale values; aligned 64-bit
stores do not tear on x86-64."""
from libc.stdlib cimport free
from cpython.buffer cimport PyBUF_WRITABLE
from dpdkvirtio._core.debug cimport dv_debug_track, DV_RES_COUNTERS
from dpdkvirtio._dpdk.dv_shim cimport dv_aligned_zalloc


cdef class Counters:
    """``rows`` zeroed rows of ``row_size`` bytes (a multiple of 64). The memory lives as
    long as this object or any array made from it; it is never freed under a reader."""

    def __cinit__(self, Py_ssize_t rows, Py_ssize_t row_size, str kind="queue"):
        if rows < 0 or row_size <= 0 or row_size % 64:
            raise ValueError("rows must be >= 0 and row_size a positive multiple of 64")
        self._rows = rows
        self._row_size = row_size
        self._nbytes = rows * row_size
        self.kind = kind
        self._mem = dv_aligned_zalloc(<size_t>self._nbytes)
        if self._mem is NULL:
            raise MemoryError()
        dv_debug_track(DV_RES_COUNTERS, 1)

    def __dealloc__(self):
        if self._mem is not NULL:
            free(self._mem)
            dv_debug_track(DV_RES_COUNTERS, -1)
        self._mem = NULL

    @property
    def rows(self):
        return self._rows

    @property
    def row_size(self):
        return self._row_size

    def __getbuffer__(self, Py_buffer *view, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("counters are read-only to Python; the data path writes them")
        view.buf = self._mem
        view.obj = self
        view.len = self._nbytes
        view.readonly = 1
        view.itemsize = 1
        view.format = "B"
        view.ndim = 1
        view.shape = &self._nbytes
        view.strides = &view.itemsize
        view.suboffsets = NULL
        view.internal = NULL
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1

    @property
    def exports(self):
        return self._exports

    cdef void *row(self, Py_ssize_t i):
        return <char *>self._mem + i * self._row_size
