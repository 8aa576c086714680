# L0: rte_mbuf.h / rte_mbuf_core.h (partial struct; the C compiler uses the real layout).
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from dpdkvirtio._dpdk.rte_mempool cimport rte_mempool

cdef extern from "rte_mbuf.h" nogil:
    enum: RTE_PKTMBUF_HEADROOM
    enum: RTE_MBUF_DEFAULT_BUF_SIZE
    enum: RTE_MBUF_DEFAULT_DATAROOM
    cdef struct rte_mbuf:
        void *buf_addr
        uint16_t data_off
        uint16_t nb_segs
        uint16_t port
        uint64_t ol_flags
        uint32_t packet_type
        uint32_t pkt_len
        uint16_t data_len
        uint16_t buf_len
        rte_mempool *pool
        rte_mbuf *next
    rte_mempool *rte_pktmbuf_pool_create(const char *name, unsigned int n,
                                         unsigned int cache_size, uint16_t priv_size,
                                         uint16_t data_room_size, int socket_id)
    int rte_pktmbuf_alloc_bulk(rte_mempool *pool, rte_mbuf **mbufs, unsigned int count)
    rte_mbuf *rte_pktmbuf_alloc(rte_mempool *mp)
    void rte_pktmbuf_free(rte_mbuf *m)
    void rte_pktmbuf_free_bulk(rte_mbuf **mbufs, unsigned int count)
    char *rte_pktmbuf_append(rte_mbuf *m, uint16_t len)
    uint16_t rte_pktmbuf_tailroom(const rte_mbuf *m)
    uint16_t rte_pktmbuf_data_room_size(rte_mempool *mp)
    void rte_pktmbuf_reset(rte_mbuf *m)
    const void *rte_pktmbuf_read(const rte_mbuf *m, uint32_t off, uint32_t len, void *buf)
    rte_mbuf *rte_pktmbuf_copy(const rte_mbuf *m, rte_mempool *mp, uint32_t offset,
                               uint32_t length)
    char *rte_pktmbuf_prepend(rte_mbuf *m, uint16_t len)
    char *rte_pktmbuf_adj(rte_mbuf *m, uint16_t len)

cdef extern from "rte_memcpy.h" nogil:
    void *rte_memcpy(void *dst, const void *src, size_t n)

cdef extern from "rte_prefetch.h" nogil:
    void rte_prefetch0(const void *p)
