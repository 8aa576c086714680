"""What every port kind shares: the L1 handle, counters, bursts, capture, events, close
(ports/__init__.py has the shape)."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .. import eal as _eal_mod
from .. import stats as _stats
from ..capture import Capture
from ..config import mempool_size
from ..errors import ConfigError, DpdkError
from ..mempools import Mempool
from ..resource import Resource

if TYPE_CHECKING:
    from .._core.mbuf import Burst


class _RxBurst(Protocol):
    def __call__(self, queue: int, burst: Burst) -> int:
        """Receive into ``burst`` from queue pair ``queue``; returns the packets added."""


class _TxBurst(Protocol):
    def __call__(self, queue: int, burst: Burst, drop_unsent: bool = True) -> int:
        """Send ``burst`` on queue pair ``queue``; returns the packets sent."""

log = logging.getLogger("dpdkvirtio.ports")


def _port_mempool(mempool: Mempool | None, queues: int, ring_size: int) -> tuple[Mempool, bool]:
    """The pool a new port uses, and whether the port made it (and closes it)."""
    if mempool is None:
        return Mempool(mempool_size(queues=queues, rx_ring_size=ring_size,
                                    tx_ring_size=ring_size)), True
    if not isinstance(mempool, Mempool):
        raise ConfigError(f"mempool must be a dpdkvirtio Mempool, got {type(mempool).__name__}")
    return mempool, False


class _Port(Resource):
    """What every port kind shares. ``core`` is the L1 handle that holds the port's state;
    ``rx_burst``/``tx_burst`` are its methods, bound on the instance (no extra call)."""

    _close_rank = 1                         # closed after PMDs, before mempools, at EAL exit
    core: Any = None
    mempool: Mempool
    rx_burst: _RxBurst
    tx_burst: _TxBurst

    def _adopt(self, core: Any, mempool: Mempool, owns_pool: bool) -> None:
        """Take the opened L1 port: bind the burst API, register with the EAL."""
        self.core = core
        self.mempool = mempool
        self._owns_pool = owns_pool
        self.rx_burst = core.rx_burst
        self.tx_burst = core.tx_burst
        self._track(_eal_mod.current())

    # -- state (cheap reads of what this process holds: properties) -------------------
    @property
    def name(self) -> str:
        return self.core.name

    @property
    def state(self) -> str:
        """'created', 'started', 'stopped' or 'closed'."""
        return self.core.state

    @property
    def closed(self) -> bool:
        return self.core is None or self.core.closed

    @property
    def n_queues(self) -> int:
        """Queue pairs served."""
        return self.core.n_queues

    @property
    def tx_retries_max(self) -> int:
        return self.core.tx_retries_max

    @tx_retries_max.setter
    def tx_retries_max(self, value: int) -> None:
        self.core.tx_retries_max = value

    @property
    def counters(self) -> np.ndarray:
        """Live per-queue counters: a read-only numpy structured array over the rows the
        data path writes (``stats.QUEUE_STATS_DTYPE``), one row per queue pair. It keeps the
        memory alive; copy it for a snapshot."""
        return _stats.queue_counters(self)

    def owner(self, queue: int, direction: str) -> int | None:
        """The lcore of the PMD that owns (``queue``, 'rx'|'tx'), or None: Python's."""
        return self.core.owner(queue, direction)

    # -- summaries (computed: methods) ------------------------------------------------
    def stats(self) -> dict:
        """OVS-style totals and per-queue packet counts (see stats.port_stats)."""
        return _stats.port_stats(self)

    def drops(self) -> dict:
        """Drops by reason: tx_failure, tx_not_ready, tx_nombuf, rx_malformed (mbufs a
        driver handed out with lengths beyond their buffers)."""
        return _stats.drops_by_reason(self.counters)

    # -- capture ----------------------------------------------------------------------
    def capture(self, path=None, *, direction: str = "rx", snaplen: int = 65535,
                count: int = 0, duration_s: float = 0.0, max_bytes: int = 0,
                name: str | None = None, filter: str | None = None) -> Capture:
        """Start capturing this port's packets to a pcapng file (``path``), a file
        descriptor (an int) or memory (None): see capture.Capture. ``direction`` 'rx',
        'tx' or 'both'; ``filter`` a pcap filter expression. Use as
        ``with port.capture(...) as cap:``. Raises ConfigError while another capture runs
        on the port."""
        cap = Capture(self, path, direction=direction, snaplen=snaplen, count=count,
                      duration_s=duration_s, max_bytes=max_bytes, name=name, filter=filter)
        self._capture = cap
        return cap

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Start the port: a vhost-user server listens (its socket gets its mode and
        owner), a client connects; an ethdev runs rte_eth_dev_start (also after stop()).
        Raises the DPDK error, explained (eal.explain)."""
        started = time.time()
        try:
            self.core.start()
        except DpdkError as e:
            raise _eal_mod.explain(e, started) from None

    def close(self) -> None:
        """Close the port (idempotent) and the mempool it made for itself; a running
        capture is stopped first. Raises PortStateError while a PMD owns one of its
        queues (remove it from the PMD first)."""
        super().close()

    def _is_closed(self) -> bool:
        return self.core is None or self.core.closed

    def _close_resources(self) -> None:
        cap = getattr(self, "_capture", None)
        if cap is not None and cap.running and not self.core.pmd_owned:
            cap.stop()
        self.core.close()
        self._close_own_pool()

    def _close_own_pool(self) -> None:
        if getattr(self, "_owns_pool", False):
            self._owns_pool = False
            try:
                self.mempool.close()
            except DpdkError:
                log.debug("%s: mempool %s still has mbufs in use; freed at exit", self.name,
                          self.mempool.name)

    def __repr__(self) -> str:
        if self.core is None:
            return f"<{type(self).__name__} (not opened)>"
        return f"<{type(self).__name__} {self.name!r} {self.state} queues={self.n_queues}>"
