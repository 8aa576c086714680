# The generator (dp_gen.pyx): what dp_hot's generator engine calls.
from libc.stdint cimport uint16_t, uint64_t
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf
from dpdkvirtio._core.dp_types cimport dv_gen, dv_txq_stats

cdef uint16_t dv_gen_build(dv_gen *g, rte_mbuf **pkts, uint16_t n) noexcept nogil
cdef uint16_t dv_gen_take(dv_gen *g, rte_mbuf **pkts, uint16_t burst, uint64_t now,
                          dv_txq_stats *txs) noexcept nogil
cdef void dv_gen_sent(dv_gen *g, uint16_t n, uint64_t now) noexcept nogil
