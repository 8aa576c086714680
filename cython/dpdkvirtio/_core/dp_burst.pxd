# The Python burst API's packet loops (dp_burst.pyx).
from libc.stdint cimport uint8_t, uint32_t
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf
from dpdkvirtio._dpdk.rte_mempool cimport rte_mempool

cdef uint32_t dv_fill_template(rte_mempool *mp, rte_mbuf **pkts, uint32_t n,
                               const uint8_t *tmpl, uint32_t length) noexcept nogil
cdef uint32_t dv_fill_rows(rte_mempool *mp, rte_mbuf **pkts, uint32_t n, const uint8_t *data,
                           Py_ssize_t row_stride, const uint32_t *lengths,
                           uint32_t fixed_length) noexcept nogil
cdef uint32_t dv_copy_out(rte_mbuf **pkts, uint32_t n, uint8_t *out, Py_ssize_t row_stride,
                          uint32_t width, uint32_t *lengths) noexcept nogil
cdef void dv_lengths(rte_mbuf **pkts, uint32_t n, uint32_t *out) noexcept nogil
