"""vhost-user ports (server and client) on the vhost library."""
from __future__ import annotations

import collections
import logging
import time

from .. import eal as _eal_mod
from .. import sockets
from .._core import vhost as _vhost
from ..errors import ConfigError, DpdkError, PortStateError
from ..events import VhostEvent, poll_events, wait_until
from ..mempools import Mempool
from ..virtio import DEFAULT_DISABLED_FEATURES
from .base import _Port, _port_mempool

log = logging.getLogger("dpdkvirtio.ports")
EVENTS_KEPT = 4096        # undrained vhost events a port keeps (events(), events_dropped)


class _VhostPortBase(_Port):
    _client = False

    def __init__(self, path, *, queues: int = 1, mempool: Mempool | None = None,
                 tx_retries_max: int = 8, iommu_support: bool = False,
                 postcopy_support: bool = False, linear_buffers: bool = False,
                 external_buffers: bool = False, compliant_ol_flags: bool = True,
                 disable_features: int = DEFAULT_DISABLED_FEATURES, enable_features: int = 0,
                 socket_mode: int | None = 0o660, owner: int | str | None = None,
                 group: int | str | None = None, reconnect: bool = True, start: bool = True):
        if self._client:
            path = sockets.check_client_path(path)
        else:
            path = sockets.check_server_path(path)
        if not isinstance(queues, int) or not 1 <= queues <= 128:
            raise ConfigError(f"queues must be 1..128 queue pairs, got {queues!r}")
        socket_mode = sockets.check_socket_mode(socket_mode)
        owner_uid = sockets.resolve_owner(owner)
        group_gid = sockets.resolve_group(group)
        flags = 0
        for wanted, flag in ((self._client, _vhost.FLAG_CLIENT),
                             (self._client and not reconnect, _vhost.FLAG_NO_RECONNECT),
                             (iommu_support, _vhost.FLAG_IOMMU_SUPPORT),
                             (postcopy_support, _vhost.FLAG_POSTCOPY_SUPPORT),
                             (linear_buffers, _vhost.FLAG_LINEARBUF_SUPPORT),
                             (external_buffers, _vhost.FLAG_EXTBUF_SUPPORT),
                             (compliant_ol_flags, _vhost.FLAG_NET_COMPLIANT_OL_FLAGS)):
            if wanted:
                flags |= flag
        # bounded: a front-end reconnecting in a loop must not grow a port nobody drains
        self._events: collections.deque = collections.deque(maxlen=EVENTS_KEPT)
        self.events_dropped = 0
        _eal_mod.ensure()
        self._open_vhost(path, flags, queues, mempool, tx_retries_max, disable_features,
                         enable_features, socket_mode, owner_uid, group_gid)
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    def _open_vhost(self, path, flags, queues, mempool, tx_retries_max, disable_features,
                    enable_features, socket_mode, owner_uid, group_gid) -> None:
        """Construction, all or nothing (close() is its mirror)."""
        # vhost-user ports own no descriptor rings: the pool only holds bursts in flight
        mempool, owns_pool = _port_mempool(mempool, queues, 0)
        core = _vhost.VhostPort()
        started = time.time()
        try:
            core.open(mempool.core, path, flags, queues, disable_features, enable_features,
                      tx_retries_max, socket_mode, owner_uid, group_gid)
        except BaseException as e:
            if owns_pool:
                mempool.close()
            if isinstance(e, DpdkError):
                raise _eal_mod.explain(e, started) from None
            raise
        self._adopt(core, mempool, owns_pool)

    @property
    def path(self) -> str:
        return self.core.path

    @property
    def flags(self) -> int:
        return self.core.flags

    @property
    def running(self) -> bool:
        """True while a front-end device is up (between new_device and destroy_device)."""
        return self.core.running

    @property
    def mode(self) -> str:
        return "client" if self._client else "server"

    def status(self) -> dict:
        """Live connection state: vid, running, features, n_vrings, connections, devices,
        refused, rejected, enabled_vrings."""
        return self.core.status()

    def vring_stats(self, queue: int) -> dict:
        """DPDK's per-vring stats of queue pair ``queue`` (empty while no device runs)."""
        return self.core.vring_stats(queue)

    def socket_features(self) -> int:
        """Features offered on this socket (before negotiation)."""
        return self.core.socket_features()

    def deliver_event(self, event: VhostEvent) -> None:
        """Queue ``event`` for ``events()`` (events.poll_events calls it for each event of
        this port; the oldest undrained one makes room and is counted in
        ``events_dropped``)."""
        if len(self._events) == self._events.maxlen:
            self.events_dropped += 1
        self._events.append(event)

    def events(self) -> list[VhostEvent]:
        """Events of this port since the last call (drains the ring first). A port keeps
        the last EVENTS_KEPT undrained events; older ones are counted in
        ``events_dropped``."""
        poll_events()
        out = []
        while self._events:                      # popleft: safe against a concurrent append
            out.append(self._events.popleft())
        return out

    def wait_running(self, timeout_s: float | None = 30.0) -> bool:
        """Wait until a front-end has set the device up (new_device). Returns False on
        timeout. Raises PortStateError when the port is closed."""
        if self.closed:
            raise PortStateError(f"cannot wait on port {self.name!r}: it is closed",
                                 "Create a new port")
        return wait_until(lambda: self.running, timeout_s, _vhost.events_fd())

    def wait_stopped(self, timeout_s: float | None = 30.0) -> bool:
        """Wait until no device runs (the front-end went away)."""
        return wait_until(lambda: not self.running, timeout_s, _vhost.events_fd())

    @property
    def negotiated_features(self) -> int:
        """Feature bits agreed with the front-end (0 while none is connected)."""
        st = self.status()
        return st["features"] if st["running"] else 0


class VhostUserPort(_VhostPortBase):
    """vhost-user **server** port (OVS ``dpdkvhostuser``): we listen on ``path`` and a
    front-end (QEMU, virtio-user) connects.

    Parameters
    ----------
    path : str
        Socket path (≤ 107 bytes; its directory must exist; a stale socket is removed,
        anything else in the way is refused).
    queues : int
        Queue pairs to serve (the front-end may use fewer).
    mempool : Mempool, optional
        Pool for received packets; by default a pool sized for the port is made.
    tx_retries_max : int
        Enqueue retries while the guest makes room (OVS default 8).
    socket_mode, owner, group :
        Permissions of the socket file (default 0660).
    iommu_support, postcopy_support, linear_buffers, external_buffers : bool
        vhost library flags (``rte_vhost_driver_register``).
    compliant_ol_flags, disable_features, enable_features :
        More flags and the feature bits to take away or offer (``rte_vhost_driver_*``).
    start : bool
        Start listening now (default).

    Raises
    ------
    SocketPathError, ConfigError, VhostError, MempoolError
    """


class VhostUserClientPort(_VhostPortBase):
    """vhost-user **client** port (OVS ``dpdkvhostuserclient``): we connect to a server
    socket (QEMU ``server=on``, virtio-user ``server=1``) and reconnect by ourselves when
    it goes away and comes back (``reconnect=True``). Other parameters as VhostUserPort."""

    _client = True
