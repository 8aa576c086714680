# cython: language_level=3
"""Mempool (L1): a pool of packet mbufs (rte_pktmbuf_pool_create).

Ports hold their pool (child → parent); close() refuses while mbufs are in use or
ports still use the pool, because freeing it then would be a use-after-free of
memory a guest may read."""
cimport cython
from libc.errno cimport ENOMEM, EEXIST
from dpdkvirtio._dpdk.rte_mempool cimport (rte_mempool, rte_mempool_avail_count,
    rte_mempool_in_use_count, rte_mempool_free, RTE_MEMPOOL_CACHE_MAX_SIZE, RTE_MEMPOOL_NAMESIZE)
from dpdkvirtio._dpdk.rte_mbuf cimport rte_pktmbuf_pool_create, RTE_PKTMBUF_HEADROOM
from dpdkvirtio._dpdk.dv_shim cimport dv_rte_errno
from dpdkvirtio._core.debug cimport dv_debug_track, DV_RES_MEMPOOL
from dpdkvirtio._core.errors cimport raise_dpdk
from dpdkvirtio._core.eal cimport eal_check_usable, eal_alive
from dpdkvirtio.errors import MempoolError, MempoolBusyError, ConfigError

MAX_CACHE_SIZE = RTE_MEMPOOL_CACHE_MAX_SIZE
MAX_NAME_LEN = RTE_MEMPOOL_NAMESIZE - 1
HEADROOM = RTE_PKTMBUF_HEADROOM


@cython.no_gc_clear
cdef class Mempool:
    """A pool of ``size`` packet mbufs with ``data_room_size`` bytes of buffer each
    (including the 128-byte headroom), a per-lcore cache of ``cache_size``.

    Raises ConfigError for bad sizes (before DPDK is called), MempoolError for DPDK
    failures (ENOMEM: not enough hugepage/--no-huge memory; EEXIST: name in use)."""

    def __cinit__(self, str name, unsigned int size, unsigned int cache_size=256,
                  unsigned int data_room_size=2048 + 128, int socket_id=-1):
        eal_check_usable()
        encoded = name.encode()
        if not encoded or len(encoded) > MAX_NAME_LEN:
            raise ConfigError(f"mempool name {name!r} must be 1..{MAX_NAME_LEN} bytes")
        if size < 2:
            raise ConfigError("a mempool needs at least 2 mbufs")
        if cache_size > RTE_MEMPOOL_CACHE_MAX_SIZE or cache_size * 1.5 > size:
            raise ConfigError(
                f"cache_size {cache_size} must be <= {RTE_MEMPOOL_CACHE_MAX_SIZE} and "
                f"<= size/1.5 ({int(size / 1.5)}); lower it or use a bigger pool")
        if data_room_size <= RTE_PKTMBUF_HEADROOM or data_room_size > 65535:
            raise ConfigError(f"data_room_size must be in {RTE_PKTMBUF_HEADROOM + 1}..65535 "
                              "(it includes the headroom)")
        cdef const char *c_name = encoded
        cdef int err = 0
        with nogil:
            self._mp = rte_pktmbuf_pool_create(c_name, size, cache_size, 0,
                                               <unsigned short>data_room_size, socket_id)
            if self._mp is NULL:
                err = dv_rte_errno()
        if self._mp is NULL:
            hint = None
            if err == ENOMEM:
                hint = ("Not enough DPDK memory: reserve more hugepages, raise the EAL "
                        "memory (-m / memory_mb) in --no-huge mode, or ask for fewer mbufs")
            elif err == EEXIST:
                hint = "Pick another mempool name"
            raise_dpdk(MempoolError, err, "rte_pktmbuf_pool_create", hint)
        dv_debug_track(DV_RES_MEMPOOL, 1)
        self.name = name
        self.size = size
        self.cache_size = cache_size
        self.data_room_size = data_room_size

    cdef rte_mempool *ptr(self) except NULL:
        if self._mp is NULL:
            raise MempoolError(None, f"mempool {self.name!r} is closed")
        eal_check_usable()
        return self._mp

    cdef void add_user(self):
        self._users += 1

    cdef void remove_user(self):
        self._users -= 1

    @property
    def closed(self):
        return self._mp is NULL

    @property
    def available(self):
        """mbufs free in the pool (including per-lcore caches). Debug-speed call."""
        return rte_mempool_avail_count(self.ptr())

    @property
    def in_use(self):
        """mbufs allocated and not yet returned (in rings, bursts, or in flight)."""
        return rte_mempool_in_use_count(self.ptr())

    @property
    def users(self):
        """Ports currently using this pool."""
        return self._users

    @property
    def data_size(self):
        """Largest packet one mbuf holds (data room minus headroom)."""
        return self.data_room_size - RTE_PKTMBUF_HEADROOM

    def close(self):
        """Free the pool. Idempotent. Raises MempoolBusyError while ports use it or
        mbufs are in use (close the ports and free the bursts first)."""
        if self._mp is NULL:
            return
        eal_check_usable()
        if self._users:
            raise MempoolBusyError(
                f"mempool {self.name!r} is used by {self._users} open port(s)",
                "Close the ports first")
        n = rte_mempool_in_use_count(self._mp)
        if n:
            raise MempoolBusyError(
                f"mempool {self.name!r} has {n} mbufs in use",
                "Free the bursts holding them (Burst.free()) and close the ports first")
        rte_mempool_free(self._mp)
        dv_debug_track(DV_RES_MEMPOOL, -1)
        self._mp = NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __dealloc__(self):
        # Never raises, never blocks: free only when provably safe, otherwise leak.
        if self._mp is not NULL and eal_alive() and self._users == 0 \
                and rte_mempool_in_use_count(self._mp) == 0:
            rte_mempool_free(self._mp)
            dv_debug_track(DV_RES_MEMPOOL, -1)
        self._mp = NULL

    def __repr__(self):
        state = "closed" if self._mp is NULL else f"{self.size} mbufs"
        return f"<Mempool {self.name!r} {state}>"
