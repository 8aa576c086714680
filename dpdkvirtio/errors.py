"""Exception hierarchy of dpdkvirtio.

Importable without DPDK. Every error that comes from a DPDK call is a
:class:`DpdkError` (an :class:`OSError`) carrying ``errno``, ``strerror`` and
``function`` (the C function that failed). Mistakes in arguments that are caught
before DPDK is called are :class:`ConfigError` (a :class:`ValueError`).
Every message says what to do next where there is something to do.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Any

__all__ = [
    "DpdkError",
    "EalError",
    "MempoolError",
    "MempoolBusyError",
    "PortError",
    "PortStateError",
    "StateError",
    "VhostError",
    "PmdError",
    "PmdStateError",
    "ConfigError",
    "SocketPathError",
    "PeerTimeoutError",
    "ForkedProcessError",
]


class DpdkError(OSError):
    """A DPDK call failed.

    Attributes
    ----------
    errno : int or None
        The errno DPDK reported (positive), or None when the function sets none.
    strerror : str
        DPDK's text for the errno (``rte_strerror``) or a description.
    function : str or None
        The C function that failed, e.g. ``"rte_eth_dev_start"``.
    hint : str or None
        What to do about it, when known.
    """

    def __init__(self, err: int | None, message: str, function: str | None = None,
                 hint: str | None = None) -> None:
        if err is None:
            super().__init__(message)
        else:
            super().__init__(err, message)
        self.function = function
        self.hint = hint
        self.message = message

    def __str__(self) -> str:
        parts = []
        if self.function:
            parts.append(f"{self.function}() failed")
        if self.errno is not None:
            name = _errno.errorcode.get(self.errno, str(self.errno))
            parts.append(f"{self.message} [{name}]")
        else:
            parts.append(self.message)
        text = ": ".join(parts)
        if self.hint:
            text += f". {self.hint}"
        return text

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Subclasses take other constructor arguments (or none), and the errno classes of
        # error_class() are made at run time: rebuild from the hierarchy class and errno.
        cls = type(self)
        base = cls.__dict__.get("_dv_base", cls)
        return (_restore, (base, base is not cls, self.errno, self.message, self.function,
                           self.hint))


def _restore(base: type[DpdkError], errno_class: bool, err: int | None, message: str,
             function: str | None, hint: str | None) -> DpdkError:
    """Unpickle a DpdkError (see DpdkError.__reduce__)."""
    cls = error_class(base, err) if errno_class else base
    obj = cls.__new__(cls)
    DpdkError.__init__(obj, err, message, function, hint)
    return obj


class EalError(DpdkError):
    """EAL initialisation or lcore management failed."""


class MempoolError(DpdkError):
    """A mempool could not be created, or was misused."""


class MempoolBusyError(MempoolError):
    """A mempool cannot be closed while mbufs or ports still use it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(_errno.EBUSY, message, None, hint)


class StateError(DpdkError):
    """An object is in the wrong state for the operation (closed, running, busy, full, owned
    by another thread): nothing was changed. ``hint`` says what to do. The base of every
    such error, whichever object raised it (PortStateError, PmdStateError; a closed Switch
    raises it itself)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        DpdkError.__init__(self, None, message, None, hint)


class PortError(DpdkError):
    """A port operation failed."""


class PortStateError(PortError, StateError):
    """The port is in the wrong state for the operation (e.g. used after close)."""


class VhostError(PortError):
    """A vhost-user socket operation failed."""


class PmdError(DpdkError):
    """A PMD thread (poll-mode lcore) could not be started or reconfigured."""


class PmdStateError(PmdError, StateError):
    """The PMD, its lcore or what it was given is in the wrong state (closed, running,
    busy, full; a queue or flow table it does not own)."""


class PeerTimeoutError(DpdkError, TimeoutError):
    """A peer did not connect or answer within the given time."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        DpdkError.__init__(self, _errno.ETIMEDOUT, message, None, hint)


class ForkedProcessError(EalError):
    """DPDK objects were used in a child created by fork(); use spawn instead."""

    def __init__(self) -> None:
        super().__init__(
            None,
            f"DPDK state is not usable in this forked child (pid {os.getpid()})",
            None,
            "Start worker processes with multiprocessing's 'spawn' method or "
            "subprocess, and initialise DPDK in them",
        )


class ConfigError(ValueError):
    """An argument or setting is invalid; nothing was created."""


class SocketPathError(ConfigError):
    """A vhost-user socket path is unusable (too long, missing directory, ...)."""


# errno-specific subclasses chosen by the choke point, so callers can catch
# e.g. ``MemoryError`` or ``FileExistsError`` as well as the subsystem class.
_ERRNO_MIXINS = {
    _errno.ENOMEM: MemoryError,
    _errno.EEXIST: FileExistsError,
    _errno.ENOENT: FileNotFoundError,
    _errno.EBUSY: None,
    _errno.EPERM: PermissionError,
    _errno.EACCES: PermissionError,
}
_combined: dict[tuple[type[DpdkError], type[BaseException]], type[DpdkError]] = {}


def error_class(base: type[DpdkError], err: int | None) -> type[DpdkError]:
    """The class to raise for subsystem ``base`` and ``err``: ``base`` itself, or a
    subclass that also derives from the matching builtin (MemoryError for ENOMEM,
    FileExistsError for EEXIST, ...)."""
    mixin = _ERRNO_MIXINS.get(err) if err is not None else None
    if mixin is None:
        return base
    key = (base, mixin)
    cls = _combined.get(key)
    if cls is None:
        name = f"{base.__name__}[{_errno.errorcode.get(err, str(err)) if err else err}]"
        cls = type(name, (base, mixin), {"__module__": base.__module__,
                                         "__qualname__": name, "_dv_base": base})
        _combined[key] = cls
    return cls


_remote: dict[tuple[type[Exception], type[Exception]], type[Exception]] = {}


def remote_error(base: type[Exception], class_name: str, message: str, **attrs: Any) -> Exception:
    """The exception to raise for an error another process (a switch, an agent) reported
    by class name ``class_name`` (JSON-RPC ``data.type``): an instance of ``base`` (the client's
    own error class, e.g. ControlError) that is also the dpdkvirtio.errors class of that
    name, so callers catch either (``except ConfigError``, ``except PortError``) without
    reading the text; plain ``base`` for any other name. Its text is the remote
    ``message``; ``attrs`` are set on it (e.g. ``kind``). The one helper every RPC client
    uses."""
    name = class_name.split("[", 1)[0]               # an errno class: "PortError[EEXIST]"
    cls = globals().get(name) if name in __all__ else None
    if not (isinstance(cls, type) and issubclass(cls, Exception)) or issubclass(base, cls):
        exc: Exception = base.__new__(base)
        Exception.__init__(exc, message)
    else:
        combo = _remote.get((base, cls))
        if combo is None:
            combo = type(f"{base.__name__}[{name}]", (base, cls),
                         {"__module__": base.__module__, "__qualname__": f"{base.__name__}[{name}]"})
            _remote[(base, cls)] = combo
        exc = combo.__new__(combo)
        if issubclass(cls, DpdkError):
            OSError.__init__(exc, message)
            exc.function, exc.hint, exc.message = None, None, message  # type: ignore[attr-defined]
        else:
            Exception.__init__(exc, message)
    for key, value in attrs.items():
        setattr(exc, key, value)
    return exc


def make_error(base: type[DpdkError], err: int | None, message: str, function: str | None = None,
               hint: str | None = None) -> DpdkError:
    """The one way to build an error that carries an errno: ``base`` (a DpdkError
    subclass), or its errno class (e.g. a FileExistsError too for EEXIST)."""
    return error_class(base, err)(err, message, function, hint)
