# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The Python burst API's packet loops (L1 data path): fill mbufs from a template or
from rows of a numpy array, copy packets out into rows, read their lengths."""
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf, rte_pktmbuf_alloc_bulk, rte_pktmbuf_read
from dpdkvirtio._dpdk.rte_mempool cimport rte_mempool
from dpdkvirtio._dpdk.dv_shim cimport dv_mbuf_data


cdef uint32_t dv_fill_template(rte_mempool *mp, rte_mbuf **pkts, uint32_t n,
                               const uint8_t *tmpl, uint32_t length) noexcept nogil:
    """Allocate n mbufs holding a copy of tmpl[0:length]; all or nothing: returns n or 0."""
    cdef uint32_t i
    cdef rte_mbuf *m
    if rte_pktmbuf_alloc_bulk(mp, pkts, n) != 0:
        return 0
    for i in range(n):
        m = pkts[i]
        memcpy(dv_mbuf_data(m), tmpl, length)
        m.data_len = <uint16_t>length
        m.pkt_len = length
    return n


cdef uint32_t dv_fill_rows(rte_mempool *mp, rte_mbuf **pkts, uint32_t n, const uint8_t *data,
                           Py_ssize_t row_stride, const uint32_t *lengths,
                           uint32_t fixed_length) noexcept nogil:
    """Allocate n mbufs, mbuf i holding row i of data (lengths[i] bytes, or fixed_length
    when lengths is NULL). All or nothing: returns n or 0."""
    cdef uint32_t i, length
    cdef rte_mbuf *m
    if rte_pktmbuf_alloc_bulk(mp, pkts, n) != 0:
        return 0
    for i in range(n):
        m = pkts[i]
        length = lengths[i] if lengths is not NULL else fixed_length
        memcpy(dv_mbuf_data(m), data + i * row_stride, length)
        m.data_len = <uint16_t>length
        m.pkt_len = length
    return n


cdef uint32_t dv_copy_out(rte_mbuf **pkts, uint32_t n, uint8_t *out, Py_ssize_t row_stride,
                          uint32_t width, uint32_t *lengths) noexcept nogil:
    """Copy the first `width` bytes of each packet into row i of out (multi-segment
    packets are gathered); store full packet lengths when lengths is not NULL."""
    cdef uint32_t i, k
    cdef rte_mbuf *m
    cdef const void *src
    for i in range(n):
        m = pkts[i]
        k = m.pkt_len if m.pkt_len < width else width
        src = rte_pktmbuf_read(m, 0, k, out + i * row_stride)
        if src != <const void *>(out + i * row_stride):
            memcpy(out + i * row_stride, src, k)
        if lengths is not NULL:
            lengths[i] = m.pkt_len
    return n


cdef void dv_lengths(rte_mbuf **pkts, uint32_t n, uint32_t *out) noexcept nogil:
    cdef uint32_t i
    for i in range(n):
        out[i] = pkts[i].pkt_len
