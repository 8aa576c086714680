# L0: our own static-inline helpers from dv_shim.h (prefix dv_).
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf

cdef extern from "dv_shim.h" nogil:
    int dv_rte_errno()
    void dv_set_rte_errno(int e)
    char *dv_mbuf_data(rte_mbuf *m)
    int dv_load_acquire_int(const int *p)
    void dv_store_release_int(int *p, int v)
    int dv_load_seq_int(const int *p)
    void dv_store_seq_int(int *p, int v)
    uint64_t dv_load_acquire_u64(const uint64_t *p)
    void dv_store_release_u64(uint64_t *p, uint64_t v)
    void *dv_load_acquire_ptr(void * const *p)
    void dv_store_release_ptr(void **p, void *v)
    void *dv_aligned_zalloc(size_t size)
    void dv_full_fence()
    uint64_t dv_load_le64(const void *p)
    void dv_store_le64(void *p, uint64_t v)
    uint32_t dv_load_le32(const void *p)
    void dv_store_be16(void *p, uint16_t v)
    int dv_msb64(uint64_t v)
    enum: DV_DEBUG_ENABLED
    enum: DV_INJECT_BUSY_CYCLES
    void dv_spin_cycles(uint64_t cycles)
    void dv_add_long(long *p, long d)
    long dv_load_long(const long *p)
