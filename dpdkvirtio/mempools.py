"""Packet mempools: the one way to make one is :class:`Mempool`.

    pool = dv.Mempool(dv.mempool_size(ports=2))       # registered with the running EAL
    burst.alloc(pool, 32, frame)
    pool.close()                                      # or: with dv.Mempool(...) as pool

A pool is closed by ``close()``, its ``with`` block, or at EAL exit; one collected while
open emits ResourceWarning and is closed then (if no mbuf is in use).
"""

from __future__ import annotations

import time

from . import eal as _eal_mod
from ._core import mempool as _mempool
from .config import mempool_size  # noqa: F401  (re-exported: the pool size a port needs)
from .errors import ConfigError, DpdkError, MempoolBusyError
from .resource import Resource

MAX_CACHE_SIZE = _mempool.MAX_CACHE_SIZE
HEADROOM = _mempool.HEADROOM


class Mempool(Resource):
    """A pool of ``size`` packet mbufs (default: :func:`mempool_size` ()) with
    ``data_room_size`` bytes of buffer each (including the 128-byte headroom) and a
    per-lcore cache of ``cache_size``.

    Initialises DPDK with the defaults when nothing did (as ports and PMDs do; call
    dpdkvirtio.init() first to choose). Raises ConfigError for bad sizes or names (before
    DPDK is called), EalError after the EAL was cleaned up, MempoolError for
    DPDK failures, with a hint (ENOMEM: not enough hugepage / --no-huge memory; EEXIST:
    the name is in use). ``close()`` raises MempoolBusyError while ports use the pool or
    mbufs are in use (close the ports and free the bursts first)."""

    _close_rank = 2                         # closed after PMDs and ports at EAL exit
    _collect_errors = (MempoolBusyError, DpdkError)   # L1 frees it once nothing uses it

    def __init__(self, size: int | None = None, *, name: str | None = None,
                 cache_size: int = 256, data_room_size: int = 2048 + 128,
                 socket_id: int = -1):
        eal = _eal_mod.ensure()
        size = mempool_size() if size is None else size
        for key, value in (("size", size), ("cache_size", cache_size),
                           ("data_room_size", data_room_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{key} must be a non-negative integer, got {value!r}")
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"name must be a string, got {name!r}")
        name = name or eal.next_name("dvpool")
        started = time.time()
        try:
            self.core = _mempool.Mempool(name, size, cache_size, data_room_size, socket_id)
        except DpdkError as e:
            raise _eal_mod.explain(e, started) from None
        self._track(eal)

    # -- facts (cheap reads of state this process holds: properties) ------------------
    @property
    def name(self) -> str:
        return self.core.name

    @property
    def size(self) -> int:
        return self.core.size

    @property
    def cache_size(self) -> int:
        return self.core.cache_size

    @property
    def data_room_size(self) -> int:
        return self.core.data_room_size

    @property
    def data_size(self) -> int:
        """Largest packet one mbuf holds (data room minus headroom)."""
        return self.core.data_size

    @property
    def closed(self) -> bool:
        return self.core.closed

    @property
    def available(self) -> int:
        """mbufs free in the pool (including per-lcore caches)."""
        return self.core.available

    @property
    def in_use(self) -> int:
        """mbufs allocated and not yet returned (in rings, bursts, or in flight)."""
        return self.core.in_use

    @property
    def users(self) -> int:
        """Open ports using this pool."""
        return self.core.users

    # -- lifecycle (resource.Resource: close, with, tracking, the collection warning) ----
    def _is_closed(self) -> bool:
        return self.core.closed

    def _close_resources(self) -> None:
        """Free the pool. Raises MempoolBusyError while ports use it or mbufs are in use
        (close the ports and free the bursts first)."""
        self.core.close()

    def __repr__(self) -> str:
        core = getattr(self, "core", None)
        if core is None:
            return "<Mempool (not created)>"
        state = "closed" if core.closed else f"{core.size} mbufs"
        return f"<Mempool {core.name!r} {state}>"
