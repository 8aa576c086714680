# The capture copy (dp_capture.pyx): what dp_hot calls on a burst while a capture is on.
from libc.stdint cimport uint16_t
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf
from dpdkvirtio._dpdk.dv_shim cimport dv_load_seq_int, dv_store_seq_int, dv_store_release_int
from dpdkvirtio._core.dp_types cimport dv_port, dv_capture, dv_capture_q


cdef inline dv_capture_q *dv_capture_enter(dv_port *p, uint16_t q, int direction) noexcept nogil:
    """The queue's capture row when a capture of this direction is on (marked busy: the
    caller must dv_capture_leave it), else NULL. Costs one load while the port never had a
    capture, two while its capture is off. Marking busy, then reading ``on`` again (both
    sequentially consistent), pairs with CaptureTap.stop: clear ``on``, wait for busy 0."""
    cdef dv_capture *cap = p.capture
    cdef dv_capture_q *row
    if cap is NULL or not cap.on[direction]:     # (a plain read first: off costs no store)
        return NULL
    row = &cap.q[2 * q + direction]
    dv_store_seq_int(&row.busy, 1)
    if dv_load_seq_int(&cap.on[direction]):
        return row
    dv_store_release_int(&row.busy, 0)
    return NULL


cdef inline void dv_capture_leave(dv_capture_q *row) noexcept nogil:
    dv_store_release_int(&row.busy, 0)


cdef void dv_capture_discard(rte_mbuf **copies, uint16_t n) noexcept nogil
cdef void dv_capture_copy(dv_capture *cap, uint16_t q, int direction, rte_mbuf **pkts,
                          uint16_t n, rte_mbuf **copies) noexcept nogil
cdef void dv_capture_commit(dv_capture *cap, dv_capture_q *row, rte_mbuf **copies,
                            uint16_t n) noexcept nogil
cdef void dv_capture_burst(dv_port *p, uint16_t q, int direction, rte_mbuf **pkts,
                           uint16_t n) noexcept nogil
