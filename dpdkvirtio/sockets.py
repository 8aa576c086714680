"""vhost-user socket path checks, done before DPDK sees a path (pure Python).

DPDK silently truncates paths of 108 bytes or more, refuses to bind over an existing
file with a log line only, and never chmods the socket. These checks turn each of
those cases into an exception that says what to do.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Callable

from .errors import SocketPathError

MAX_PATH_BYTES = 107            # sizeof(sockaddr_un.sun_path) - 1


def _common(path: object) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise SocketPathError(f"socket path must be a string, got {type(path).__name__}")
    path = str(os.fspath(path))
    if not path:
        raise SocketPathError("socket path is empty")
    if "\0" in path:
        raise SocketPathError("socket path contains a NUL byte")
    if "," in path:
        raise SocketPathError(f"socket path {path!r} contains ',', which DPDK devargs cannot "
                              "carry; choose a path without commas")
    size = len(os.fsencode(path))
    if size > MAX_PATH_BYTES:
        raise SocketPathError(
            f"socket path is {size} bytes, over the {MAX_PATH_BYTES}-byte limit of UNIX "
            f"sockets (DPDK would silently truncate it): {path!r}. Use a shorter directory "
            "such as /run/dpdkvirtio or /tmp")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(parent):
        raise SocketPathError(f"the directory of socket {path!r} does not exist: {parent}. "
                              "Create it first")
    if not os.path.isdir(parent):
        raise SocketPathError(f"{parent} is not a directory (socket {path!r})")
    return path


def _probe_listener(path: str) -> bool:
    """True when something accepts connections on ``path``."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(path)
        return True
    except OSError as e:
        if e.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        return True                 # EAGAIN (backlog full), EACCES...: treat as in use
    finally:
        s.close()


def check_server_path(path: object, remove_stale: bool = True) -> str:
    """Validate a path we will listen on (vhost-user server / dpdkvhostuser).

    Refuses: over-long paths, a missing directory, a symlink at the path, a file that is
    not a socket, and a socket some process still listens on. A stale socket (nobody
    listening) is removed when ``remove_stale``. Returns the path.
    """
    path = _common(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    if stat.S_ISLNK(st.st_mode):
        raise SocketPathError(f"{path!r} is a symbolic link; refusing to create a socket "
                              "through it. Remove the link or choose another path")
    if not stat.S_ISSOCK(st.st_mode):
        kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
        raise SocketPathError(f"{path!r} exists and is a {kind}, not a socket. Remove it or "
                              "choose another path")
    if _probe_listener(path):
        raise SocketPathError(f"socket {path!r} is in use: another process is listening on it. "
                              "Stop that process or choose another path")
    if not remove_stale:
        raise SocketPathError(f"a stale socket file is in the way at {path!r}; remove it")
    try:
        os.unlink(path)
    except OSError as e:
        raise SocketPathError(f"cannot remove stale socket {path!r}: {e.strerror}") from None
    return path


def check_client_path(path: object) -> str:
    """Validate a path we will connect to (vhost-user client / virtio-user). The socket
    need not exist yet (client ports reconnect), but if something exists there it must
    be a socket."""
    path = _common(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketPathError(f"{path!r} exists but is not a socket; check the path")
    return path


def check_socket_dir(directory: str | os.PathLike[str],
                     allow_world_writable_sticky: bool = True) -> str:
    """A directory for server sockets must exist and not be writable by everybody
    (a world-writable directory without the sticky bit lets anyone replace a socket)."""
    directory = os.fspath(directory)
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        raise SocketPathError(f"socket directory {directory!r} does not exist; create it "
                              "(mode 0750 or 0755)") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SocketPathError(f"{directory!r} is not a directory")
    if st.st_mode & stat.S_IWOTH:
        sticky = bool(st.st_mode & stat.S_ISVTX)
        if not (sticky and allow_world_writable_sticky):
            raise SocketPathError(f"socket directory {directory!r} is world-writable "
                                  f"(mode {stat.S_IMODE(st.st_mode):o}); use a directory only "
                                  "the switch's user and group can write (e.g. chmod 0750)")
    return directory


def check_socket_mode(mode: object) -> int | None:
    """A socket file mode (permission bits only, e.g. 0o660) or None (leave as created).
    Raises ConfigError for anything else."""
    from .errors import ConfigError
    if mode is None:
        return None
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
        raise ConfigError(f"socket_mode must be permission bits 0o000..0o777 (e.g. 0o660), "
                          f"got {mode!r}")
    return mode


def resolve_owner(owner: object) -> int | None:
    """A user name or uid (>= 0) to a uid; None stays None. Raises ConfigError."""
    return _resolve_id(owner, "owner", "user", lambda name: __import__("pwd").getpwnam(name).pw_uid)


def resolve_group(group: object) -> int | None:
    """A group name or gid (>= 0) to a gid; None stays None. Raises ConfigError."""
    return _resolve_id(group, "group", "group", lambda name: __import__("grp").getgrnam(name).gr_gid)


def _resolve_id(value: object, what: str, kind: str,
                lookup: Callable[[str], int]) -> int | None:
    from .errors import ConfigError
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"socket {what} must be a {kind} name or a number, got {value!r}")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value < 2**32 - 1:
            raise ConfigError(f"socket {what} {value} is not a valid {kind} id")
        return value
    try:
        return lookup(value)
    except KeyError:
        raise ConfigError(f"no {kind} named {value!r} on this host (socket {what}); give an "
                          f"existing {kind} name or a numeric id") from None
