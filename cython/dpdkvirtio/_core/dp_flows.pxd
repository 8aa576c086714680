# Per-flow accounting (dp_flows.pyx).
from libc.stdint cimport uint32_t, uint64_t
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf
from dpdkvirtio._core.dp_types cimport dv_flow_table

cdef uint64_t dv_ticks_to_ns(const dv_flow_table *t, uint64_t ticks) noexcept nogil
cdef void dv_flows_account(dv_flow_table *t, rte_mbuf **pkts, uint32_t n,
                           uint64_t now) noexcept nogil
