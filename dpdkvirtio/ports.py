"""Ports: vhost-user (server and client, vhost library) and ethdev vdevs (virtio-user,
net_null, net_ring, net_tap ...), with mempools sized for them.

    import dpdkvirtio as dv
    dv.init()
    with dv.VhostUserPort("/tmp/vhu0.sock", queues=1) as port:
        port.wait_running(timeout_s=30)
        burst = dv.Burst(32)
        n = port.rx_burst(0, burst)
        burst.free()

Queue indexes are queue pairs: ``rx_burst(q, ...)`` reads the front-end's transmit
ring q, ``tx_burst(q, ...)`` writes its receive ring q. Ports are closed by
``close()``, by their ``with`` block, or at interpreter exit; one collected while open
emits ResourceWarning and is closed then.

Shape: each class here owns an L1 handle, ``core`` (``_core.vhost.VhostPort`` or
``_core.ethdev.EthPort``), which holds the port's state (see ``_core/port.pyx``). A port
is built by one function per kind (``_open_vhost``, ``_open_ethdev``) and torn down by
one, ``close``, the mirror of it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import socket
import stat
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import eal as _eal_mod
from . import sockets
from . import stats as _stats
from ._core import ethdev as _ethdev
from ._core import vhost as _vhost
from ._core.mbuf import MAX_BURST, Burst
from .capture import Capture
from .config import mempool_size
from .errors import ConfigError, DpdkError, PeerTimeoutError, PortStateError
from .events import VhostEvent, events_fd, poll_events, wait_until
from .mempools import Mempool
from .virtio import DEFAULT_DISABLED_FEATURES, feature_names

log = logging.getLogger("dpdkvirtio.ports")
EVENTS_KEPT = 4096        # undrained vhost events a port keeps (events(), events_dropped)

# ---------------------------------------------------------------------------- ports

def _port_mempool(mempool: Mempool | None, queues: int, ring_size: int) -> tuple[Mempool, bool]:
    """The pool a new port uses, and whether the port made it (and closes it)."""
    if mempool is None:
        return Mempool(mempool_size(queues=queues, rx_ring_size=ring_size,
                                    tx_ring_size=ring_size)), True
    if not isinstance(mempool, Mempool):
        raise ConfigError(f"mempool must be a dpdkvirtio Mempool, got {type(mempool).__name__}")
    return mempool, False


class _Port:
    """What every port kind shares. ``core`` is the L1 handle that holds the port's state;
    ``rx_burst``/``tx_burst`` are its methods, bound on the instance (no extra call)."""

    _close_rank = 1                         # closed after PMDs, before mempools, at EAL exit
    core: Any = None
    mempool: Mempool
    rx_burst: Callable[..., int]
    tx_burst: Callable[..., int]

    def _adopt(self, core: Any, mempool: Mempool, owns_pool: bool) -> None:
        """Take the opened L1 port: bind the burst API, register with the EAL."""
        self.core = core
        self.mempool = mempool
        self._owns_pool = owns_pool
        self.rx_burst = core.rx_burst
        self.tx_burst = core.tx_burst
        _eal_mod.current().track(self)

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
    def counters(self) -> Any:
        """The L1 counter block (buffer protocol); see queue_counters."""
        return self.core.counters

    @property
    def queue_counters(self) -> np.ndarray:
        """Live per-queue counters (numpy structured array, read-only)."""
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
        return _stats.drops_by_reason(self.queue_counters)

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
    def close(self) -> None:
        """Close the port (idempotent) and the mempool it made for itself; a running
        capture is stopped first. Raises PortStateError while a PMD owns one of its
        queues (remove it from the PMD first)."""
        if self.core is None:
            return
        cap = getattr(self, "_capture", None)
        if cap is not None and cap.running and not self.core.pmd_owned:
            cap.stop()
        self.core.close()
        _eal_mod.untrack(self)
        self._close_own_pool()

    def _close_own_pool(self) -> None:
        if getattr(self, "_owns_pool", False):
            self._owns_pool = False
            try:
                self.mempool.close()
            except DpdkError:
                log.debug("%s: mempool %s still has mbufs in use; freed at exit", self.name,
                          self.mempool.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if self.core is None or self.core.closed or not _eal_mod.alive():
            return
        warnings.warn(f"unclosed {self!r}: close() it or use a with block",
                      ResourceWarning, source=self, stacklevel=2)
        try:
            self.close()
        except DpdkError:
            pass

    def __repr__(self) -> str:
        if self.core is None:
            return f"<{type(self).__name__} (not opened)>"
        return f"<{type(self).__name__} {self.name!r} {self.state} queues={self.n_queues}>"


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

    def start(self) -> None:
        """Listen (server: the socket gets its mode and owner) or connect (client)."""
        started = time.time()
        try:
            self.core.start()
        except DpdkError as e:
            raise _eal_mod.explain(e, started) from None

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

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def _bool_arg(name, value):
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True, False or None, got {value!r}")
    return f"{name}={int(value)}"


class _EthPortBase(_Port):
    def _open_ethdev(self, devname: str, devargs: str, queues: int, ring_size: int,
                     mempool: Mempool | None, tx_retries_max: int, start: bool,
                     timeout_s: float | None = None,
                     unblock: Callable[[], None] | None = None,
                     rx_interrupts: bool = False) -> None:
        """Construction, all or nothing (close() is its mirror): probe the vdev, set its
        queues up, start it."""
        if not isinstance(queues, int) or queues < 1:
            raise ConfigError(f"queues must be a positive integer, got {queues!r}")
        if not isinstance(ring_size, int) or ring_size < 16 or ring_size & (ring_size - 1):
            raise ConfigError(f"ring size must be a power of 2 >= 16, got {ring_size!r}")
        _eal_mod.ensure()
        mempool, owns_pool = _port_mempool(mempool, queues, ring_size)
        core = _ethdev.EthPort()
        args = (mempool.core, devname, devargs, queues, ring_size, ring_size, tx_retries_max,
                bool(rx_interrupts))
        started = time.time()
        try:
            if timeout_s is None:
                core.open(*args)
            else:
                _open_with_timeout(core, args, timeout_s, unblock)
        except BaseException as e:
            if owns_pool:
                mempool.close()
            if isinstance(e, DpdkError):
                raise _eal_mod.explain(e, started) from None
            raise
        self._adopt(core, mempool, owns_pool)
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    @property
    def devargs(self) -> str:
        return self.core.devargs

    @property
    def port_id(self) -> int:
        return self.core.port_id

    def start(self) -> None:
        """rte_eth_dev_start (also after stop())."""
        started = time.time()
        try:
            self.core.start()
        except DpdkError as e:
            raise _eal_mod.explain(e, started) from None

    def stop(self) -> None:
        """Stop the port (start() restarts it). Raises PortStateError while a PMD owns one
        of its queues: a burst on a stopped ethdev is not allowed."""
        self.core.stop()

    def link(self) -> tuple[bool, int]:
        """(up, speed_mbps), asked of the driver without waiting."""
        return self.core.link()

    def wait_link_up(self, timeout_s: float | None = 30.0) -> bool:
        """Wait until the link is up (the peer is connected). False on timeout."""
        return wait_until(lambda: self.core.link()[0], timeout_s)

    def mac(self) -> str:
        return self.core.mac()

    def driver_name(self) -> str:
        return self.core.driver_name()

    def dpdk_stats(self) -> dict:
        """rte_eth_stats_get as a dict (the driver's own counters)."""
        return self.core.dpdk_stats()

    def xstats(self) -> list[tuple[str, int]]:
        """The driver's extended stats as (name, value)."""
        return self.core.xstats()


def _open_with_timeout(core, args, timeout_s: float, unblock) -> None:
    """core.open(*args) on a helper thread (the probe blocks without the GIL: virtio-user
    server mode waits in accept()); on timeout unblock it by connecting ourselves, close
    what it made and raise PeerTimeoutError."""
    result: dict = {}

    def run():
        try:
            core.open(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            result["error"] = e

    devname = args[1]
    t = threading.Thread(target=run, name=f"probe-{devname}", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        unblock()
        t.join()
        if "error" not in result:
            core.close()
        raise PeerTimeoutError(f"no vhost-user back-end connected to {devname} within "
                               f"{timeout_s:g} s", "Start the back-end (a vhost-user client "
                               "port on the same socket) or raise connect_timeout_s")
    if "error" in result:
        raise result["error"]


class VirtioUserPort(_EthPortBase):
    """virtio-user port (the guest/container side): a ``net_virtio_user`` vdev probed at
    runtime, talking vhost-user to a back-end on ``path``.

    Parameters
    ----------
    path : str
        vhost-user socket. As client (default) the back-end must be listening; with
        ``server=True`` we listen and wait up to ``connect_timeout_s`` for a back-end
        (a vhost-user client) to connect.
    queues : int
        Queue pairs (1..8; more than 1 enables the control queue).
    queue_size : int
        Virtqueue size (power of 2, default 256).
    mrg_rxbuf, in_order, packed_vq : bool or None
        virtio features (None: driver default).
    vectorized : bool
        The driver's SSE receive path: about 40 % fewer cycles per received packet here,
        for a port that mostly receives (a sink, a capture point). It turns mergeable rx
        buffers and in-order off (unless given), so each received frame must fit one mbuf
        (2048 bytes with the default pool), and sending costs about twice the cycles of
        the in-order path: not for a port that forwards or generates.
    mac : str or None
        ``xx:xx:xx:xx:xx:xx``.
    rx_interrupts : bool
        Configure Rx interrupts (the rx vrings' call eventfds), so that a PMD in interrupt
        mode can wait on this port's rx queues instead of polling them.
    mempool, tx_retries_max, start : as for the other ports.

    Raises
    ------
    SocketPathError, ConfigError, PortError (with what DPDK logged), PeerTimeoutError
    """

    def __init__(self, path, *, queues: int = 1, queue_size: int = 256, server: bool = False,
                 mrg_rxbuf: bool | None = None, in_order: bool | None = None,
                 packed_vq: bool | None = None, vectorized: bool = False,
                 mac: str | None = None, mempool: Mempool | None = None,
                 tx_retries_max: int = 0, connect_timeout_s: float = 10.0, start: bool = True,
                 rx_interrupts: bool = False):
        path = sockets.check_server_path(path) if server else sockets.check_client_path(path)
        if not server and not os.path.exists(path):
            raise ConfigError(f"no vhost-user back-end is listening on {path!r}; start it first "
                              "(or use server=True and let the back-end connect)")
        if not isinstance(queues, int) or not 1 <= queues <= 8:
            raise ConfigError(f"virtio-user supports 1..8 queue pairs, got {queues!r}")
        if not isinstance(queue_size, int) or queue_size < 16 or queue_size > 32768 \
                or queue_size & (queue_size - 1):
            raise ConfigError(f"queue_size must be a power of 2 in 16..32768, got {queue_size!r}")
        if mac is not None and not _MAC_RE.match(mac):
            raise ConfigError(f"mac must look like 02:00:00:00:00:01, got {mac!r}")
        args = [f"path={path}", f"queues={queues}", f"queue_size={queue_size}"]
        if server:
            args.append("server=1")
        if not isinstance(vectorized, bool):
            raise ConfigError(f"vectorized must be True or False, got {vectorized!r}")
        if vectorized:
            if packed_vq or mrg_rxbuf or in_order:
                raise ConfigError("vectorized receive needs a split ring without mrg_rxbuf and "
                                  "in_order; leave those unset (or False)")
            mrg_rxbuf = in_order = False
            args.append("vectorized=1")
        for key, val in (("mrg_rxbuf", mrg_rxbuf), ("in_order", in_order), ("packed_vq", packed_vq)):
            a = _bool_arg(key, val)
            if a:
                args.append(a)
        eal = _eal_mod.ensure()
        if not server:
            self._refuse_if_busy_here(eal, path)
        devname = eal.next_name("net_virtio_user")
        if mac is None:
            # A locally administered unicast address, unique per process and port (without
            # one the driver logs an error and picks a random address).
            n = int(devname[len("net_virtio_user"):])
            pid = os.getpid()
            mac = (f"02:76:{(pid >> 16) & 0xFF:02x}:{(pid >> 8) & 0xFF:02x}:{pid & 0xFF:02x}:"
                   f"{n & 0xFF:02x}")
        args.append(f"mac={mac}")
        self.path = path
        self.server = server
        self.core = None

        def unblock():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
            except OSError:
                pass
            finally:
                s.close()

        try:
            self._open_ethdev(devname, ",".join(args), queues, queue_size, mempool,
                              tx_retries_max, start,
                              timeout_s=connect_timeout_s if server else None, unblock=unblock,
                              rx_interrupts=rx_interrupts)
        except BaseException:
            self._remove_server_socket()
            raise

    @staticmethod
    def _refuse_if_busy_here(eal, path):
        # A back-end port of this process that already serves a front-end refuses another
        # one; DPDK 22.11's virtio-user then fails its probe and keeps the socket and
        # eventfds it opened. Refuse before probing, when the back-end is ours.
        real = os.path.realpath(path)
        for port in eal.objects(VhostUserPort):
            if not port.closed and os.path.realpath(port.path) == real and port.running:
                raise PortStateError(f"vhost-user port {port.name!r} of this process already "
                                     f"serves a front-end on {path!r}",
                                     "Close that front-end first, or give each front-end its "
                                     "own vhost-user port")

    def _remove_server_socket(self):
        # virtio-user leaves its listening socket file behind
        if self.server:
            try:
                if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                    os.unlink(self.path)
            except OSError:
                pass

    def close(self):
        """Stop and remove the vdev (idempotent). When the back-end is already gone (its
        socket file was removed: a back-end that closed its port), DPDK's complaints that
        it cannot reach it are expected and logged at INFO, not ERROR. (No connection is
        tried to find out: a live back-end would count it as a refused front-end.)"""
        if self.core is None:
            return
        gone = not self.closed and not self.server and not os.path.exists(self.path)
        with _eal_mod.peer_gone("pmd.net.virtio.") if gone else contextlib.nullcontext():
            super().close()
        self._remove_server_socket()


class VdevPort(_EthPortBase):
    """Any ethdev vdev by name and devargs, probed at runtime, e.g.
    ``VdevPort("net_null0", "size=64,copy=0")``, ``VdevPort("net_ring0")``,
    ``VdevPort("net_tap0", "iface=dvtap0")``. DPDK refuses unknown devargs keys (the
    error carries its log)."""

    def __init__(self, devname: str, devargs: str = "", *, queues: int = 1,
                 ring_size: int = 1024, mempool: Mempool | None = None,
                 tx_retries_max: int = 0, start: bool = True):
        if not isinstance(devname, str) or not re.match(r"^[A-Za-z0-9_]+$", devname):
            raise ConfigError(f"vdev name must be letters, digits and '_', e.g. net_null0; "
                              f"got {devname!r}")
        if not isinstance(devargs, str):
            raise ConfigError("devargs must be a string like 'key=value,key2=value2'")
        self._open_ethdev(devname, devargs, queues, ring_size, mempool, tx_retries_max, start)


__all__ = ["Burst", "MAX_BURST", "VhostUserPort", "VhostUserClientPort",
           "VirtioUserPort", "VdevPort", "VhostEvent", "poll_events", "events_fd",
           "feature_names", "DEFAULT_DISABLED_FEATURES"]     # (re-exported for callers)
