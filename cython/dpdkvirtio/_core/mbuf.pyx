# cython: language_level=3, boundscheck=False, wraparound=False
"""Burst (L1): a reusable array of up to ``capacity`` mbufs.

Ownership: the burst owns the mbufs it holds (``burst[0:len(burst)]``). rx_burst
appends what it receives; tx_burst consumes the sent prefix; free() returns the rest
to their pools. Data leaves a burst as bytes, numpy rows or memoryviews without a
Python object per packet on the fast path."""
cimport cython
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.stdlib cimport calloc, free
from libc.string cimport memmove
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf, rte_pktmbuf_free_bulk, rte_pktmbuf_read
from dpdkvirtio._dpdk.dv_shim cimport dv_mbuf_data
from dpdkvirtio._core.debug cimport dv_debug_track, DV_RES_BURST
from dpdkvirtio._core.eal cimport eal_alive, eal_check_usable
from dpdkvirtio._core.mempool cimport Mempool
from dpdkvirtio._core.dp_types cimport DV_MAX_BURST
from dpdkvirtio._core.dp_burst cimport dv_fill_template, dv_fill_rows, dv_copy_out, dv_lengths
from dpdkvirtio.errors import ConfigError

import numpy as np

MAX_BURST = DV_MAX_BURST


@cython.final
cdef Mempool _core_pool(object mempool):
    """The L1 pool of a dv.Mempool (its ``core``), or an L1 pool as it is."""
    if isinstance(mempool, Mempool):
        return mempool
    core = getattr(mempool, "core", None)
    if isinstance(core, Mempool):
        return core
    raise TypeError(f"a dpdkvirtio Mempool is needed, got {type(mempool).__name__}")


cdef class Burst:
    """A reusable burst buffer of ``capacity`` mbuf slots (1..512; 32 or 64 are the usual
    sizes). Not thread-safe: one thread uses a burst at a time."""

    def __cinit__(self, int capacity=32):
        if capacity < 1 or capacity > DV_MAX_BURST:
            raise ConfigError(f"burst capacity must be 1..{DV_MAX_BURST}, got {capacity}")
        self._pkts = <rte_mbuf **>calloc(capacity, sizeof(rte_mbuf *))
        if self._pkts is NULL:
            raise MemoryError()
        dv_debug_track(DV_RES_BURST, 1)
        self._capacity = <uint16_t>capacity

    def __dealloc__(self):
        # Returning buffers to their pool is always safe while EAL lives; after
        # cleanup (or in a forked child) the memory is gone: forget the pointers.
        if self._count and eal_alive():
            rte_pktmbuf_free_bulk(self._pkts, self._count)
        self._count = 0
        if self._pkts is not NULL:
            free(self._pkts)
            dv_debug_track(DV_RES_BURST, -1)
        self._pkts = NULL

    cdef int check_mutable(self) except -1:
        if self._exports:
            raise BufferError(f"{self._exports} packet view(s) are still exported; "
                              "release them (del / memoryview.release()) first")
        return 0

    cdef void consume_front(self, uint16_t k) noexcept:
        """Drop the first k slots (already handed over or freed)."""
        if k == 0:
            return
        if k < self._count:
            memmove(self._pkts, self._pkts + k, (self._count - k) * sizeof(rte_mbuf *))
        self._count -= k if k <= self._count else self._count

    @property
    def capacity(self):
        return self._capacity

    @property
    def room(self):
        """Free slots."""
        return self._capacity - self._count

    def __len__(self):
        return self._count

    def free(self):
        """Return every held mbuf to its pool. Raises BufferError while packet views
        from view() are alive."""
        self.check_mutable()
        if self._count:
            eal_check_usable()
            rte_pktmbuf_free_bulk(self._pkts, self._count)
            self._count = 0

    def alloc(self, object mempool, int count, const uint8_t[::1] template):
        """Append ``count`` mbufs from ``mempool`` (a dv.Mempool), each a copy of ``template`` (bytes,
        bytearray or a 1-D uint8 array). Returns count, or 0 when the pool had fewer
        free mbufs (all or nothing). Raises ConfigError for a count beyond the free
        slots or a template larger than one mbuf."""
        self.check_mutable()
        cdef Mempool pool = _core_pool(mempool)
        cdef uint32_t length = template.shape[0]
        if count < 0 or count > self._capacity - self._count:
            raise ConfigError(f"count must be 0..{self._capacity - self._count} (free slots)")
        if length == 0 or length > pool.data_size:
            raise ConfigError(f"template of {length} bytes does not fit a {pool.data_size}-byte "
                              f"mbuf of pool {pool.name!r}")
        cdef uint32_t got = dv_fill_template(pool.ptr(), self._pkts + self._count, count,
                                             &template[0], length)
        self._count += got
        return got

    def alloc_rows(self, object mempool, const uint8_t[:, ::1] data,
                   const uint32_t[::1] lengths=None):
        """Append one mbuf per row of ``data`` (2-D uint8, C-contiguous), with
        ``lengths[i]`` bytes of row i (default: the whole row). All or nothing;
        returns the number of rows appended (0 when the pool ran dry)."""
        self.check_mutable()
        cdef Mempool pool = _core_pool(mempool)
        cdef Py_ssize_t rows = data.shape[0], width = data.shape[1], i
        if rows > self._capacity - self._count:
            raise ConfigError(f"{rows} rows do not fit the {self._capacity - self._count} free slots")
        if rows == 0:
            return 0
        if lengths is not None:
            if lengths.shape[0] != rows:
                raise ConfigError("lengths must have one entry per row")
            for i in range(rows):
                if lengths[i] == 0 or lengths[i] > width or lengths[i] > pool.data_size:
                    raise ConfigError(f"lengths[{i}] = {lengths[i]} is outside "
                                      f"1..{min(width, pool.data_size)}")
        elif width == 0 or width > pool.data_size:
            raise ConfigError(f"rows of {width} bytes do not fit {pool.data_size}-byte mbufs")
        cdef uint32_t got = dv_fill_rows(pool.ptr(), self._pkts + self._count, <uint32_t>rows,
                                         &data[0, 0], data.strides[0],
                                         &lengths[0] if lengths is not None else NULL,
                                         <uint32_t>width)
        self._count += got
        return got

    def lengths(self, uint32_t[::1] out=None):
        """Packet lengths (bytes) as a uint32 numpy array, or written into ``out``."""
        if out is None:
            arr = np.empty(self._count, dtype=np.uint32)
            out = arr
        else:
            arr = out
            if out.shape[0] < self._count:
                raise ConfigError(f"out has {out.shape[0]} entries, the burst holds {self._count}")
        if self._count:
            dv_lengths(self._pkts, self._count, &out[0])
        return arr

    def copy_to(self, uint8_t[:, ::1] out, uint32_t[::1] lengths=None):
        """Copy packet i's first ``out.shape[1]`` bytes into ``out[i]`` (and its full
        length into ``lengths[i]``). Returns the number of packets copied."""
        if out.shape[0] < self._count:
            raise ConfigError(f"out has {out.shape[0]} rows, the burst holds {self._count}")
        if lengths is not None and lengths.shape[0] < self._count:
            raise ConfigError(f"lengths has {lengths.shape[0]} entries, the burst holds {self._count}")
        if self._count == 0:
            return 0
        return dv_copy_out(self._pkts, self._count, &out[0, 0], out.strides[0],
                           <uint32_t>out.shape[1], &lengths[0] if lengths is not None else NULL)

    def to_numpy(self, int snaplen=2048):
        """(data, lengths): a (n, snaplen) uint8 copy of the packets and their lengths."""
        if snaplen <= 0:
            raise ConfigError(f"snaplen must be > 0, got {snaplen}")
        data = np.zeros((self._count, snaplen), dtype=np.uint8)
        lengths = np.zeros(self._count, dtype=np.uint32)
        self.copy_to(data, lengths)
        return data, lengths

    def packet(self, Py_ssize_t i):
        """A bytes copy of packet i (all segments)."""
        if i < 0:
            i += self._count
        if i < 0 or i >= self._count:
            raise IndexError(f"packet index out of range (burst holds {self._count})")
        cdef rte_mbuf *m = self._pkts[i]
        out = bytearray(m.pkt_len)
        cdef uint8_t[::1] dst = out
        cdef const void *src
        if m.pkt_len:
            src = rte_pktmbuf_read(m, 0, m.pkt_len, &dst[0])
            if src != <const void *>&dst[0]:
                out[:] = (<const uint8_t *>src)[:m.pkt_len]
        return bytes(out)

    def view(self, Py_ssize_t i):
        """A writable memoryview of packet i's first segment, without copying. The burst
        refuses to free or change while such views are alive (BufferError)."""
        if i < 0:
            i += self._count
        if i < 0 or i >= self._count:
            raise IndexError(f"packet index out of range (burst holds {self._count})")
        eal_check_usable()
        cdef _PacketBuffer pb = _PacketBuffer.__new__(_PacketBuffer)
        pb.burst = self
        pb.data = <char *>dv_mbuf_data(self._pkts[i])
        pb.length = self._pkts[i].data_len
        return memoryview(pb)

    def __repr__(self):
        return f"<Burst {self._count}/{self._capacity}>"


@cython.final
cdef class _PacketBuffer:
    cdef Burst burst
    cdef char *data
    cdef Py_ssize_t length
    cdef Py_ssize_t itemsize

    def __getbuffer__(self, Py_buffer *view, int flags):
        self.itemsize = 1
        view.buf = self.data
        view.obj = self
        view.len = self.length
        view.readonly = 0
        view.itemsize = 1
        view.format = "B"
        view.ndim = 1
        view.shape = &self.length
        view.strides = &self.itemsize
        view.suboffsets = NULL
        view.internal = NULL
        self.burst._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.burst._exports -= 1
