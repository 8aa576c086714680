"""ethdev ports: virtio-user and other vdevs (net_null, net_ring, net_tap ...)."""
from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Callable

from .. import eal as _eal_mod
from .. import sockets
from .._core import ethdev as _ethdev
from ..errors import ConfigError, DpdkError, PeerTimeoutError, PortStateError
from ..events import wait_until
from ..mempools import Mempool
from .base import _Port, _port_mempool
from .vhost import VhostUserPort

log = logging.getLogger("dpdkvirtio.ports")


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
