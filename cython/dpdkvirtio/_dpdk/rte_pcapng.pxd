# L0: rte_pcapng.h (DPDK 22.11). Only the packet formatter is used: rte_pcapng_fdopen
# describes ethdev ports only, and rte_pcapng_write_stats/_write_packets map interfaces
# through that ethdev table (see dpdkvirtio/capture.py).
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf
from dpdkvirtio._dpdk.rte_mempool cimport rte_mempool

cdef extern from "rte_pcapng.h" nogil:
    enum rte_pcapng_direction:
        RTE_PCAPNG_DIRECTION_UNKNOWN
        RTE_PCAPNG_DIRECTION_IN
        RTE_PCAPNG_DIRECTION_OUT
    rte_mbuf *rte_pcapng_copy(uint16_t port_id, uint32_t queue, const rte_mbuf *m,
                              rte_mempool *mp, uint32_t length, uint64_t timestamp,
                              rte_pcapng_direction direction)
    uint32_t rte_pcapng_mbuf_size(uint32_t length)
