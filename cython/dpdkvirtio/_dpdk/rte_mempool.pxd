# L0: rte_mempool.h (opaque pool, introspection).
cdef extern from "rte_mempool.h" nogil:
    enum: RTE_MEMPOOL_CACHE_MAX_SIZE
    enum: RTE_MEMPOOL_NAMESIZE
    cdef struct rte_mempool:
        unsigned int size
        unsigned int cache_size
        unsigned int elt_size
        int socket_id
    unsigned int rte_mempool_avail_count(const rte_mempool *mp)
    unsigned int rte_mempool_in_use_count(const rte_mempool *mp)
    rte_mempool *rte_mempool_lookup(const char *name)
    void rte_mempool_free(rte_mempool *mp)
