"""The EAL of this process: one initialisation, logs into :mod:`logging`, orderly exit.

    import dpdkvirtio
    eal = dpdkvirtio.init()                 # or dpdkvirtio.init(memory_mode="no-huge")
    print(eal.memory_mode, eal.workers)

DPDK can be initialised once per process. A second :func:`init` with the same
configuration returns the running EAL; with a different one it raises
:class:`~dpdkvirtio.errors.EalError`. Everything created afterwards (mempools, ports,
PMD threads) is registered here and closed in reverse order at interpreter exit, before
``rte_eal_cleanup``.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import errno
import logging
import os
import select
import shutil
import struct
import threading
import time
import weakref
from typing import Any, TypeVar

from ._core import eal as _eal
from ._core import logbridge as _logbridge
from ._core import telemetry as _telemetry
from .config import (
    LOG_LEVELS,
    EalConfig,
    remember_process_cpus,
    resolve_memory_mode,
)
from .errors import ConfigError, DpdkError, EalError, make_error

_T = TypeVar("_T")
log = logging.getLogger("dpdkvirtio")
dpdk_log = logging.getLogger("dpdkvirtio.dpdk")

# DPDK level → logging level (NOTICE and INFO both land on INFO).
_LEVELS = {1: logging.CRITICAL, 2: logging.CRITICAL, 3: logging.CRITICAL, 4: logging.ERROR,
           5: logging.WARNING, 6: logging.INFO, 7: logging.INFO, 8: logging.DEBUG}
_HEADER = struct.Struct("=iii")
# Warnings DPDK prints on every start that say nothing about this process's health.
_HARMLESS = ("TELEMETRY: No legacy callbacks", "EAL: No free 1048576 kB hugepages",
             "EAL: No available 1048576 kB hugepages")


class _LogBridge:
    """Drains the pipe the C log stream writes into and feeds ``logging``."""

    def __init__(self, recent: int = 200):
        self.recent: collections.deque[tuple[float, int, str, str]] = collections.deque(maxlen=recent)
        self._rfd, self._wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lock = threading.Lock()
        self._names: dict[int, str] = {}
        self._buf = b""
        self._stop = False
        self.expected: list[str] = []           # log type prefixes demoted to INFO for now
        _logbridge.install(self._wfd)
        self._thread = threading.Thread(target=self._run, name="dpdkvirtio-log", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                ready, _, _ = select.select([self._rfd], [], [], 0.5)
            except (OSError, ValueError):
                return
            if ready:
                self.drain()

    def drain(self):
        """Read everything queued and log it (safe from any thread)."""
        with self._lock:
            while True:
                try:
                    chunk = os.read(self._rfd, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    return
                if not chunk:
                    break
                self._buf += chunk
            buf = self._buf
            pos = 0
            while len(buf) - pos >= _HEADER.size:
                length, level, logtype = _HEADER.unpack_from(buf, pos)
                end = pos + _HEADER.size + length
                if end > len(buf):
                    break
                text = buf[pos + _HEADER.size:end].decode("utf-8", "replace").rstrip()
                pos = end
                self._emit(level, logtype, text)
            self._buf = buf[pos:]

    def _type_name(self, logtype: int) -> str:
        name = self._names.get(logtype)
        if name is None:
            try:
                self._names = _logbridge.log_type_names()
            except Exception:  # noqa: BLE001 - logging must not fail
                self._names = {}
            name = self._names.get(logtype, f"type{logtype}")
        return name

    def _emit(self, level: int, logtype: int, text: str):
        if not text:
            return
        pylevel = _LEVELS.get(level, logging.INFO)
        if pylevel == logging.WARNING and text.startswith(_HARMLESS):
            pylevel = logging.INFO
        name = self._type_name(logtype)
        if pylevel > logging.INFO and any(name.startswith(p) for p in self.expected):
            pylevel = logging.INFO              # a teardown whose peer is already gone
        self.recent.append((time.time(), pylevel, name, text))
        logging.getLogger(f"dpdkvirtio.dpdk.{name}").log(pylevel, "%s", text)

    def recent_errors(self, since: float = 0.0, limit: int = 6) -> list[str]:
        """Recent DPDK messages at WARNING or above, newest last."""
        self.drain()
        out = [t for (ts, lvl, _n, t) in self.recent if ts >= since and lvl >= logging.WARNING]
        return out[-limit:]

    def stop(self):
        self.drain()
        self._stop = True


@contextlib.contextmanager
def peer_gone(logtype_prefix: str):
    """While this runs (and for the lines it leaves queued), DPDK errors of log types
    starting with ``logtype_prefix`` are expected ones (a teardown whose peer is already
    gone) and are logged at INFO."""
    bridge = _bridge
    if bridge is None:
        yield
        return
    with bridge._lock:
        bridge.expected.append(logtype_prefix)
    try:
        yield
    finally:
        bridge.drain()                          # what the teardown logged, still demoted
        with bridge._lock:
            bridge.expected.remove(logtype_prefix)


def explain(exc: DpdkError, since: float) -> DpdkError:
    """Add what DPDK logged (warnings and errors since ``since``) to ``exc``'s message."""
    bridge = _bridge
    if bridge is None:
        return exc
    lines = bridge.recent_errors(since)
    if lines:
        exc.message = f"{exc.message} (DPDK: {' | '.join(lines)})"
        if exc.errno is not None:
            exc.args = (exc.errno, exc.message)
        else:
            exc.args = (exc.message,)
    return exc


_bridge: _LogBridge | None = None
_current: Eal | None = None
_init_lock = threading.RLock()


class Eal:
    """The running EAL of this process (use :func:`init` to get it).

    Attributes
    ----------
    config : EalConfig
    argv : list[str]
        The arguments given to rte_eal_init.
    memory_mode : str
        'hugepages' or 'no-huge' (what auto resolved to).
    memory_reason : str
    file_prefix : str
    workers : dict[int, int]
        Worker lcore → CPU.
    main_lcore : int
    """

    def __init__(self, config: EalConfig, argv: list[str], memory_mode: str, reason: str):
        self.config = config
        self.argv = argv
        self.memory_mode = memory_mode
        self.memory_reason = reason
        self.file_prefix = config.resolved_prefix()
        self.workers = config.resolved_workers()
        self.main_lcore = config.main_lcore
        self.pid = os.getpid()
        self.cpus: list[int] = sorted(os.sched_getaffinity(0))
        self.runtime_dir: str | None = None
        self._objects: list[weakref.ref] = []   # live objects, in creation order
        self._lock = threading.RLock()
        self._closed = False
        self._name_seq: dict[str, int] = {}

    # -- registry ---------------------------------------------------------------------
    def track(self, obj: _T) -> _T:
        """Remember ``obj`` (mempool, port, PMD) weakly: it is closed at exit if still
        open. One collected while open warns (ResourceWarning) and closes itself."""
        with self._lock:
            self._objects = [r for r in self._objects if r() is not None]
            self._objects.append(weakref.ref(obj))
        return obj

    def untrack(self, obj: object) -> None:
        with self._lock:
            self._objects = [r for r in self._objects if r() is not None and r() is not obj]

    def objects(self, kind: type | None = None) -> list[Any]:
        """Live tracked objects (of class ``kind``), in creation order."""
        with self._lock:
            live = [r() for r in self._objects]
        return [o for o in live if o is not None and (kind is None or isinstance(o, kind))]

    def next_name(self, stem: str) -> str:
        """``stem`` + a number not used before in this process (0, 1, ...)."""
        with self._lock:
            n = self._name_seq.get(stem, 0)
            self._name_seq[stem] = n + 1
            return f"{stem}{n}"

    # -- facts --------------------------------------------------------------------------
    @property
    def version(self) -> str:
        return _eal.version()

    @property
    def tsc_hz(self) -> int:
        return _eal.tsc_hz()

    @property
    def closed(self) -> bool:
        return self._closed

    def lcores(self) -> list[dict]:
        """Enabled lcores: id, cpus, role, main, running."""
        return [dict(lcore=l, cpus=c, role=r, main=m, running=run)
                for (l, c, r, m, run) in _eal.lcores()]

    def __repr__(self):
        return (f"<Eal {self.version} prefix={self.file_prefix} memory={self.memory_mode} "
                f"workers={self.workers}>")

    # -- teardown -----------------------------------------------------------------------
    def close(self):
        """Stop PMD threads, close ports and mempools (reverse creation order), then
        rte_eal_cleanup. Afterwards DPDK cannot be used again in this process."""
        global _current
        with self._lock:
            if self._closed or os.getpid() != self.pid:
                return
            self._closed = True
            objects = [o for o in (r() for r in self._objects) if o is not None]
            self._objects.clear()
        # PMD threads first (they touch ports), then ports, then mempools: _close_rank.
        for obj in sorted(reversed(objects), key=lambda o: getattr(o, "_close_rank", 3)):
            try:
                obj.close()
            except Exception as e:  # noqa: BLE001 - exit must go on
                log.warning("closing %r at exit failed: %s", obj, e)
        if _bridge is not None:
            _bridge.drain()
        _eal.cleanup()
        if self.runtime_dir and os.path.basename(self.runtime_dir) == self.file_prefix:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        if _bridge is not None:
            _bridge.stop()
        _current = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _after_fork_in_child():
    # The child has DPDK's memory but none of its threads: everything is inert there.
    _logbridge.detach()


os.register_at_fork(after_in_child=_after_fork_in_child)


def init(config: EalConfig | None = None, **settings) -> Eal:
    """Initialise DPDK for this process (once) and return the :class:`Eal`.

    ``settings`` are :class:`~dpdkvirtio.config.EalConfig` fields, used when ``config``
    is None. Calling again with the same configuration returns the running EAL.

    Raises
    ------
    ConfigError
        A bad setting (nothing was initialised).
    EalError
        rte_eal_init failed (the message includes what DPDK logged), or DPDK was already
        initialised with other arguments, or cleaned up, in this process.
    """
    global _current, _bridge
    if config is None:
        config = EalConfig(**settings)
    elif settings:
        raise ConfigError("pass either an EalConfig or keyword settings, not both")
    with _init_lock:
        if _current is not None and not _current.closed:
            if _current.config == config:
                return _current
            raise make_error(EalError, errno.EALREADY,
                             "DPDK is already initialised in this process with other "
                             f"arguments ({' '.join(_current.argv[1:])})", "rte_eal_init",
                             "DPDK can be initialised once per process: reuse "
                             "dpdkvirtio.current(), or start a new process for other arguments")
        state = _eal.state()
        if state != "uninitialised":
            raise EalError(None, f"DPDK cannot be initialised in this process (state: {state})",
                           "rte_eal_init", "Start a new process")
        memory_mode, reason = resolve_memory_mode(config)
        argv = config.to_argv(memory_mode)
        if _bridge is None:
            _bridge = _LogBridge()
        _logbridge.set_level(LOG_LEVELS[config.log_level])
        affinity = os.sched_getaffinity(0)
        started = time.time()
        try:
            with _stdout_silenced():
                _eal.init(argv)
        except DpdkError as e:
            raise explain(e, started) from None
        finally:
            # rte_eal_init pins the calling thread to the main lcore's CPUs.
            try:
                os.sched_setaffinity(0, affinity)
            except OSError:
                pass
        eal = Eal(config, argv, memory_mode, reason)
        eal.cpus = sorted(affinity)
        remember_process_cpus(eal.cpus)
        try:
            eal.runtime_dir = _eal.runtime_dir()
        except DpdkError:
            eal.runtime_dir = None
        if config.telemetry:
            # /dpdkvirtio/... beside DPDK's own commands on the telemetry socket
            _telemetry.register_commands()
        _current = eal
        atexit.register(_atexit, weakref.ref(eal))
        log.info("%s initialised: memory %s (%s), prefix %s, workers %s",
                 _eal.version(), memory_mode, reason, eal.file_prefix, eal.workers)
        return eal


class _stdout_silenced:
    """EAL prints its usage text with printf on bad arguments; keep it off our stdout
    (the reason reaches the exception through the log)."""

    saved: int | None = None

    def __enter__(self):
        import sys
        try:
            sys.stdout.flush()
            self.saved = os.dup(1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.close(devnull)
        except OSError:
            self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            os.dup2(self.saved, 1)
            os.close(self.saved)


def _atexit(ref):
    eal = ref()
    if eal is not None:
        eal.close()


def current() -> Eal:
    """The running EAL; raises EalError when :func:`init` has not been called."""
    if _current is None or _current.closed:
        raise EalError(None, "DPDK is not initialised in this process", None,
                       "Call dpdkvirtio.init() first")
    return _current


def ensure(config: EalConfig | None = None) -> Eal:
    """The running EAL, initialising it with defaults (or ``config``) when needed."""
    if _current is not None and not _current.closed:
        return _current
    return init(config)


def untrack(obj: object) -> None:
    """Forget ``obj`` (it was closed); nothing when no EAL runs."""
    if _current is not None:
        _current.untrack(obj)


def alive() -> bool:
    """Whether this process's EAL runs (initialised, not cleaned up, not a forked child)."""
    return _current is not None and not _current.closed and _current.pid == os.getpid()


def dpdk_version() -> str:
    """DPDK runtime version, e.g. 'DPDK 22.11.11' (no initialisation needed)."""
    return _eal.version()
