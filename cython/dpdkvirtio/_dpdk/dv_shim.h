/* dv_shim.h: static-inline C helpers for the Cython layers.
 * Macros with type arguments, GCC atomics and the thread-local rte_errno
 * cannot be declared directly in a .pxd; they are wrapped here. */
#ifndef DV_SHIM_H
#define DV_SHIM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_byteorder.h>

/* rte_errno is a per-thread variable: read it on the failing thread, right away. */
static inline int dv_rte_errno(void) { return rte_errno; }
static inline void dv_set_rte_errno(int e) { rte_errno = e; }

static inline char *dv_mbuf_data(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, char *); }

/* Atomics. seq_cst where a store must be ordered before a later load (Dekker-style
 * hand-off between a poller and the vhost control thread), acquire/release elsewhere. */
static inline int dv_load_acquire_int(const int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void dv_store_release_int(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline int dv_load_seq_int(const int *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void dv_store_seq_int(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline uint64_t dv_load_acquire_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void dv_store_release_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void *dv_load_acquire_ptr(void *const *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void dv_store_release_ptr(void **p, void *v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/* A full barrier: a store (enabling notifications) ordered before a later load (the
 * ring's index), as the guest orders its index store before reading our flag. */
static inline void dv_full_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* 64-byte aligned zeroed allocation for single-writer counter rows (freed with free()). */
static inline void *dv_aligned_zalloc(size_t size)
{
    void *p = NULL;
    if (size == 0)
        size = 64;
    if (posix_memalign(&p, 64, size) != 0)
        return NULL;
    memset(p, 0, size);
    return p;
}

/* Unaligned little-endian loads and stores in packet data (the measurement marker). */
static inline uint64_t dv_load_le64(const void *p) { uint64_t v; memcpy(&v, p, 8); return rte_le_to_cpu_64(v); }
static inline void dv_store_le64(void *p, uint64_t v) { v = rte_cpu_to_le_64(v); memcpy(p, &v, 8); }
static inline uint32_t dv_load_le32(const void *p) { uint32_t v; memcpy(&v, p, 4); return rte_le_to_cpu_32(v); }
static inline void dv_store_be16(void *p, uint16_t v) { v = rte_cpu_to_be_16(v); memcpy(p, &v, 2); }
/* Index of the highest set bit of v (v > 0). */
static inline int dv_msb64(uint64_t v) { return 63 - __builtin_clzll(v); }

/* Leak counters (meson -Ddebug_checks=true defines DV_DEBUG_CHECKS): 1 when compiled in. */
#ifdef DV_DEBUG_CHECKS
#define DV_DEBUG_ENABLED 1
#else
#define DV_DEBUG_ENABLED 0
#endif
/* Calibration only (meson -Dinject_busy_cycles=N): every packet an rx path hands out costs
   N more TSC cycles, spent spinning. 0 (the default) compiles the spin out. */
#ifndef DV_INJECT_BUSY_CYCLES
#define DV_INJECT_BUSY_CYCLES 0
#endif
static inline void dv_spin_cycles(uint64_t cycles)
{
    uint64_t end = rte_rdtsc() + cycles;
    while (rte_rdtsc() < end)
        ;
}

static inline void dv_add_long(long *p, long d) { __atomic_add_fetch(p, d, __ATOMIC_RELAXED); }
static inline long dv_load_long(const long *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

#endif
