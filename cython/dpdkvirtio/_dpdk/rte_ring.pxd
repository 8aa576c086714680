# L0: rte_ring.h (the calls the capture tap uses).
cdef extern from "rte_ring.h" nogil:
    cdef struct rte_ring:
        pass
    enum: RING_F_SC_DEQ
    enum: RING_F_EXACT_SZ
    rte_ring *rte_ring_create(const char *name, unsigned int count, int socket_id,
                              unsigned int flags)
    void rte_ring_free(rte_ring *r)
    unsigned int rte_ring_enqueue_burst(rte_ring *r, void * const *obj_table, unsigned int n,
                                        unsigned int *free_space)
    unsigned int rte_ring_dequeue_burst(rte_ring *r, void **obj_table, unsigned int n,
                                        unsigned int *available)
    unsigned int rte_ring_count(const rte_ring *r)
