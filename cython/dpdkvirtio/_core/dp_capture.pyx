# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The capture copy (L1 data path): a port's rx or tx burst copied, snaplen bytes a
packet with a dv_capture_meta in front, into the capture ring that capture.pyx's writer
drains. Called by dp_hot's dv_port_rx/dv_port_tx while a capture is on."""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from dpdkvirtio._dpdk.rte_mbuf cimport (rte_mbuf, rte_pktmbuf_alloc_bulk, rte_pktmbuf_free_bulk,
    rte_pktmbuf_alloc, rte_pktmbuf_tailroom, rte_pktmbuf_free, rte_memcpy, rte_pktmbuf_copy,
    rte_pktmbuf_prepend)
from dpdkvirtio._dpdk.rte_ring cimport rte_ring_enqueue_burst
from dpdkvirtio._dpdk.rte_bpf cimport rte_bpf_exec_burst
from dpdkvirtio._dpdk.dv_shim cimport dv_mbuf_data
from dpdkvirtio._dpdk.rte_lcore cimport rte_rdtsc
from dpdkvirtio._core.dp_types cimport (dv_port, dv_capture, dv_capture_q, dv_capture_meta,
    DV_MAX_BURST)


cdef inline void _capture_meta(dv_capture *cap, dv_capture_meta *meta, const rte_mbuf *m,
                               uint16_t q, int direction) noexcept nogil:
    meta.tsc = rte_rdtsc()
    meta.orig_len = m.pkt_len
    meta.generation = cap.generation
    meta.queue = q
    meta.direction = <uint32_t>direction


cdef rte_mbuf *_capture_chain(dv_capture *cap, const rte_mbuf *m, uint16_t q,
                              int direction) noexcept nogil:
    """The general copy (a chained packet, or a snap beyond one copy buffer)."""
    cdef rte_mbuf *mc = rte_pktmbuf_copy(m, cap.mp, 0, cap.snaplen)
    cdef dv_capture_meta *meta
    if mc is NULL:
        return NULL
    meta = <dv_capture_meta *>rte_pktmbuf_prepend(mc, sizeof(dv_capture_meta))
    if meta is NULL:
        rte_pktmbuf_free(mc)
        return NULL
    _capture_meta(cap, meta, m, q, direction)
    return mc


cdef rte_mbuf *DV_CAP_FILTERED = <rte_mbuf *>1     # in copies[]: the filter said no


cdef void dv_capture_copy(dv_capture *cap, uint16_t q, int direction, rte_mbuf **pkts,
                        uint16_t n, rte_mbuf **copies) noexcept nogil:
    """Copy pkts[0:n] (snaplen bytes each, a dv_capture_meta in front) into copies[]:
    DV_CAP_FILTERED where the filter did not match, NULL where no mbuf was left. Without
    a filter, the usual packet (one segment, snap within one copy buffer) takes one mbuf
    of a bulk allocation and one memcpy."""
    cdef uint16_t i
    cdef uint32_t length
    cdef rte_mbuf *m
    cdef rte_mbuf *mc
    cdef uint8_t *data
    cdef uint64_t rc[DV_MAX_BURST]
    cdef bint bulk = False
    if cap.filter_jit is not NULL:
        for i in range(n):
            rc[i] = cap.filter_jit(pkts[i])
    elif cap.filter is not NULL:
        rte_bpf_exec_burst(cap.filter, <void **>pkts, rc, n)
    else:
        bulk = rte_pktmbuf_alloc_bulk(cap.mp, copies, n) == 0
    for i in range(n):
        m = pkts[i]
        if cap.filter is not NULL and rc[i] == 0:
            copies[i] = DV_CAP_FILTERED
            continue
        length = m.pkt_len if m.pkt_len < cap.snaplen else cap.snaplen
        mc = copies[i] if bulk else rte_pktmbuf_alloc(cap.mp)
        if mc is not NULL and m.nb_segs == 1 and \
                length + sizeof(dv_capture_meta) <= rte_pktmbuf_tailroom(mc):
            data = <uint8_t *>dv_mbuf_data(mc)
            _capture_meta(cap, <dv_capture_meta *>data, m, q, direction)
            rte_memcpy(data + sizeof(dv_capture_meta), dv_mbuf_data(m), length)
            mc.data_len = <uint16_t>(length + sizeof(dv_capture_meta))
            mc.pkt_len = mc.data_len
        else:
            if mc is not NULL:
                rte_pktmbuf_free(mc)
            mc = _capture_chain(cap, m, q, direction)
        copies[i] = mc


cdef void dv_capture_discard(rte_mbuf **copies, uint16_t n) noexcept nogil:
    cdef uint16_t i
    for i in range(n):
        if copies[i] is not NULL and copies[i] is not DV_CAP_FILTERED:
            rte_pktmbuf_free(copies[i])


cdef void dv_capture_commit(dv_capture *cap, dv_capture_q *row, rte_mbuf **copies,
                          uint16_t n) noexcept nogil:
    """Enqueue the copies of copies[0:n]; count n seen, the filter's matches accepted,
    and the matches not enqueued dropped."""
    cdef uint16_t i, k = 0, matched = 0
    cdef unsigned int put
    for i in range(n):
        if copies[i] is DV_CAP_FILTERED:
            continue
        matched += 1
        if copies[i] is not NULL:
            copies[k] = copies[i]
            k += 1
    put = rte_ring_enqueue_burst(cap.ring, <void **>copies, k, NULL)
    if put < k:
        rte_pktmbuf_free_bulk(copies + put, k - put)
    row.seen += n
    row.accepted += matched
    row.dropped += matched - put


cdef void dv_capture_burst(dv_port *p, uint16_t q, int direction, rte_mbuf **pkts,
                         uint16_t n) noexcept nogil:
    cdef rte_mbuf *copies[DV_MAX_BURST]
    cdef dv_capture_q *row
    if n == 0:
        return
    row = dv_capture_enter(p, q, direction)
    if row is NULL:
        return
    dv_capture_copy(p.capture, q, direction, pkts, n, copies)
    dv_capture_commit(p.capture, row, copies, n)
    dv_capture_leave(row)
