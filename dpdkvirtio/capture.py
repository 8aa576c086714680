"""Capture (L2): a port's rx and/or tx packets into a pcapng file, a file descriptor (a
pipe: ``ctl capture -w -``) or memory, at runtime, whoever polls the queues.

While a capture is on, the data path copies every packet of the chosen directions (up to
``snaplen`` bytes, with the TSC of when it saw it) into the port's capture ring
(_core/capture.pyx, dp_capture.pyx); a writer thread here drains the ring. Each copy is
formatted by DPDK's ``rte_pcapng_copy`` (an Enhanced Packet Block: nanosecond timestamp,
original length, direction flag, queue); the section header, one interface description
per (port, direction) named ``<port>:rx`` / ``<port>:tx``, and at the end one interface
statistics block per interface (``ifrecv``: packets that passed while capturing,
``ifdrop``: those the ring or its mempool could not take) are written by pcapfile.py.

Tx capture records what the port transmitted: packets a driver refused are not recorded
(they are sent later, or dropped and counted in the port's drops)."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Any

from . import eal as _eal_mod
from . import pcapfile
from ._core import capture as _capture
from .errors import ConfigError, PortStateError
from .resource import Resource

SNAPLEN_MAX = _capture.SNAPLEN_MAX
DIRECTIONS = {"rx": (True, False), "tx": (False, True), "both": (True, True)}


def _tap(port):
    core = getattr(port, "core", None)
    if core is None or port.closed:
        raise PortStateError(f"{port!r}: the port is closed; open it before capturing")
    if core.capture_tap is None:
        core.capture_tap = _capture.CaptureTap(core)
    return core.capture_tap


class Capture(Resource):
    """A running capture of one port (start it with ``Port.capture``).

    ``path``: a file to create (its directory must exist), None for memory (read the
    packets with ``packets()`` after stopping), or an int: a file descriptor to write to
    (not closed here). Limits, any of which ends the capture: ``count`` packets written,
    ``duration_s``, ``max_bytes`` of file. ``stop()`` (or leaving the ``with`` block)
    ends it; ``wait(timeout_s)`` waits for a limit. Raises ConfigError for a bad
    direction, snaplen or limit, or a capture already running on the port, OSError for
    a path that cannot be created. ``name``: the interfaces' name prefix (default: the
    port's name; a switch gives its own port name). ``filter``: a pcap filter expression
    (tcpdump's syntax, e.g. ``"udp port 53"``): only matching packets are captured; the
    result then also counts ``accepted`` (matches) per direction, and ConfigError names
    a bad expression."""

    def __init__(self, port, path=None, *, direction: str = "rx", snaplen: int = SNAPLEN_MAX,
                 count: int = 0, duration_s: float = 0.0, max_bytes: int = 0,
                 comment: str | None = None, name: str | None = None,
                 filter: str | None = None):
        if direction not in DIRECTIONS:
            raise ConfigError(f"direction must be 'rx', 'tx' or 'both', got {direction!r}")
        if not 1 <= int(snaplen) <= SNAPLEN_MAX:
            raise ConfigError(f"snaplen must be 1..{SNAPLEN_MAX} bytes, got {snaplen}")
        for limit, value in (("count", count), ("duration_s", duration_s),
                             ("max_bytes", max_bytes)):
            if value < 0:
                raise ConfigError(f"{limit} must be >= 0 (0: no limit), got {value}")
        self.port = port
        self.name = name or port.name
        self.direction = direction
        self.snaplen = int(snaplen)
        self.filter = filter or None
        self.count, self.duration_s, self.max_bytes = int(count), float(duration_s), int(max_bytes)
        self._tap = _tap(port)
        if self._tap.capturing:
            raise ConfigError(f"a capture is already running on port {port.name!r}; stop it "
                              "first")
        self.path = path
        self._own_fd = not isinstance(path, int)
        self._file: Any = None
        if path is None:
            self._file = tempfile.TemporaryFile(prefix="dvcap")
            self._fd = self._file.fileno()
        elif isinstance(path, int):
            self._file, self._fd = None, path
        else:
            self._file = None
            self._fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        rx, tx = DIRECTIONS[direction]
        self._iface: dict[str, int] = {}
        for d, on in (("rx", rx), ("tx", tx)):
            if on:
                self._iface[d] = len(self._iface)
        self.written = 0
        self.bytes = 0
        self.format_failed = 0                  # taken from the ring, not formatted (no mbuf)
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._result: dict | None = None
        try:
            self._write(pcapfile.section_header("dpdkvirtio", comment))
            for d in self._iface:
                self._write(pcapfile.interface_description(
                    f"{self.name}:{d}", f"{d} of dpdkvirtio port {port.name}", self.snaplen,
                    filter=self.filter))
            self._base = self._tap.totals()
            self._start_ns = time.time_ns()
            self._tap.start(rx, tx, self.snaplen, self.filter)
        except BaseException:
            self._close_fd()
            raise
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"capture-{port.name}",
                                        daemon=True)
        self._thread.start()
        if _eal_mod.alive():
            self._track(_eal_mod.current())

    # -- the writer ---------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.bytes += len(data)

    def _account(self, result) -> str:
        n, nbytes, lost, reason = result
        self.written += n
        self.bytes += nbytes
        self.format_failed += lost
        return reason

    def _run(self) -> None:
        rx_if, tx_if = self._iface.get("rx", 0), self._iface.get("tx", 0)
        try:
            byte_room = max(1, self.max_bytes - self.bytes) if self.max_bytes else 0
            self._account(self._tap.write(self._fd, rx_if, tx_if, self.count, byte_room,
                                          self.duration_s))
            self._tap.stop()                          # every copy is in the ring now
            if not (self.count and self.written >= self.count):
                left = self.count - self.written if self.count else 0
                self._account(self._tap.write(self._fd, rx_if, tx_if, left, until_empty=True))
        except (OSError, PortStateError) as e:        # a write failed: stop() raises it
            self.error = e
            self._tap.stop()
        finally:
            self._finish()

    def _finish(self) -> None:
        end = self._tap.totals()
        now = time.time_ns()
        stats = {}
        for d, iface in self._iface.items():
            c = {k: end[d][k] - self._base[d][k] for k in ("seen", "accepted", "dropped")}
            stats[d] = c if self.filter else {"seen": c["seen"], "dropped": c["dropped"]}
            if self.error is None:
                try:
                    self._write(pcapfile.interface_statistics(
                        iface, now, c["seen"], c["dropped"], self._start_ns, now,
                        filter_accept=c["accepted"] if self.filter else None))
                except OSError as e:
                    self.error = e
        self._result = {"port": self.name, "written": self.written, "bytes": self.bytes,
                        "format_failed": self.format_failed, "interfaces": stats}
        if self.path is not None:
            self._close_fd()
        self._done.set()

    def _close_fd(self) -> None:
        if self._own_fd and self._fd >= 0 and self._file is None:
            os.close(self._fd)
        self._fd = -1 if self._file is None else self._fd

    # -- the caller's side ----------------------------------------------------------------
    @property
    def running(self) -> bool:
        return not self._done.is_set()

    @property
    def dropped(self) -> int:
        """Packets the capture could not keep so far (all directions)."""
        c = self._tap.totals()
        return sum(c[d]["dropped"] - self._base[d]["dropped"] for d in self._iface)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until a limit ended the capture; False on timeout."""
        return self._done.wait(timeout_s)

    def stop(self) -> dict:
        """End the capture (idempotent) and return what it did: written packets and bytes,
        per direction ``seen`` (packets that passed) and ``dropped`` (not captured: no
        room), and ``format_failed``. Without a count limit, written + dropped +
        format_failed == seen. Raises the writer's OSError if writing failed."""
        if self.running:                              # (the tap may serve a newer capture)
            self._tap.stop_writer()
        self._thread.join()
        if self.error is not None:
            raise OSError(f"capture of {self.name} failed: {self.error}") from self.error
        assert self._result is not None
        return dict(self._result)

    def packets(self) -> pcapfile.Packets:
        """The captured packets (a memory capture, or a file capture), read back once
        stopped. Raises ConfigError while running or for a capture to a descriptor."""
        if self.running:
            raise ConfigError("the capture is still running: stop() it first")
        if self._file is not None:
            self._file.seek(0)
            return pcapfile.read(self._file)
        if isinstance(self.path, int):
            raise ConfigError("a capture to a file descriptor cannot be read back")
        return pcapfile.read(self.path)

    def close(self) -> None:
        """Stop and release the memory buffer (a file stays)."""
        super().close()
        if self._file is not None:
            self._file.close()
            self._file = None

    # a Resource while it runs: tracked (stopped first at EAL exit, its file completed),
    # and warned about if collected running
    _close_rank = -1

    def _is_closed(self) -> bool:
        # (a capture whose start failed never ran: nothing to stop)
        return getattr(self, "_thread", None) is None or not self.running

    def _close_resources(self) -> None:
        self.stop()

    def __del__(self) -> None:
        super().__del__()
        # the memory buffer is ours, not the caller's: freed with the object
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()

    def __exit__(self, *exc: object) -> None:
        self.stop()                                   # (packets() still reads it back)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"<Capture {self.name} {self.direction} snaplen={self.snaplen} "
                f"written={self.written} {state}>")
