"""The control socket of ``dpdkvirtio run``: JSON-RPC 2.0 (dpdkvirtio.rpc) over a UNIX
stream socket, one message per line; the methods are the ``cmd_*`` of ControlServer
(``add-port``, ``show``...). ``dpdkvirtio ctl`` is its client (:func:`request`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from . import rpc, sockets
from .errors import ConfigError, remote_error

log = logging.getLogger("dpdkvirtio.control")
MAX_REQUEST = rpc.MAX_MESSAGE_BYTES


class ControlError(Exception):
    """The switch refused a request, or could not be reached."""


def _parse_options(items) -> dict:
    if isinstance(items, dict):
        return items
    if not isinstance(items, (list, tuple, type(None))):
        raise ConfigError(f"options must be a list of key=value strings or an object, "
                          f"got {type(items).__name__}")
    out = {}
    for it in items or []:
        if not isinstance(it, str) or "=" not in it:
            raise ConfigError(f"option {it!r} must look like key=value")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _number(key: str, value, kind):
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, got {value!r}") from None


class ControlServer:
    """Serves one switch on ``path`` (mode 0660), a thread per client."""

    def __init__(self, switch, path: str, mode: int = 0o660, on_stop=None):
        self.switch = switch
        self.path = sockets.check_server_path(path)
        self.on_stop = on_stop
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.sock.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, mode)
        self.sock.listen(16)
        self._closed = False
        self._lock = threading.Lock()
        self._captures: dict = {}                 # port name -> Capture started by a client
        self._thread = threading.Thread(target=self._accept, name="dpdkvirtio-ctl", daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        with conn:
            try:
                rpc.serve(conn.fileno(), conn.fileno(), self.method, lambda: COMMANDS,
                          MAX_REQUEST)
            except OSError:
                return

    def method(self, name: str):
        """The ``cmd_*`` bound method serving ``name`` (e.g. 'add-port'), or None."""
        return getattr(self, "cmd_" + name.replace("-", "_"), None)

    # -- commands ---------------------------------------------------------------------
    def cmd_ping(self):
        return "pong"

    def cmd_show(self):
        return self.switch.show()

    def cmd_add_port(self, name: str, type: str, options=None):
        self.switch.add_port(name, type, _parse_options(options))
        return self.switch.ports[name].describe()

    def cmd_del_port(self, name: str):
        self.switch.del_port(name)
        return {"deleted": name}

    def cmd_set(self, name: str, options):
        self.switch.set_port_options(name, _parse_options(options))
        return self.switch.ports[name].describe()

    def cmd_add_flow(self, in_port: str, out_port: str):
        self.switch.add_flow(in_port, out_port)
        return {"in_port": in_port, "out_port": out_port}

    def cmd_del_flow(self, in_port: str):
        self.switch.del_flow(in_port)
        return {"in_port": in_port, "out_port": "drop"}

    def cmd_pmd_rxq_show(self):
        return self.switch.pmd_rxq_show()

    def cmd_pmd_sleep_show(self):
        return self.switch.pmd_sleep_show()

    def cmd_pmd_perf_show(self):
        return self.switch.pmd_perf_show()

    def cmd_flow_stats(self, port=None):
        return self.switch.flow_stats(port)

    def cmd_add_generator(self, name: str, port: str, options=None):
        opts = _parse_options(options)
        unknown = sorted(set(opts) - {"flow_id", "pps", "rate", "size", "count"})
        if unknown:
            raise ConfigError(f"unknown generator option(s) {', '.join(unknown)}; known: "
                              "flow_id, pps, rate, size, count")
        kw = {k: v if k == "rate" else _number(k, v, float if k == "pps" else int)
              for k, v in opts.items()}
        return self.switch.add_generator(name, port, **kw)

    def cmd_del_generator(self, name: str):
        self.switch.del_generator(name)
        return {"deleted": name}

    def cmd_generators(self):
        return self.switch.generators()

    def cmd_port_stats(self, name=None):
        if name:
            return {name: self.switch.port_stats(name)}
        return self.switch.all_port_stats()

    def cmd_capture(self, port: str, file: str, direction: str = "rx", snaplen: int = 65535,
                    count: int = 0, duration_s: float = 0.0, filter=None):
        """Capture to ``file`` (the client's /proc/PID/fd/1 for a pipe) until a limit or
        capture-stop; answers with what was written."""
        if not isinstance(file, str) or not os.path.isabs(file):
            raise ConfigError(f"capture file must be an absolute path, got {file!r}")
        cap = self.switch.capture(port, file, direction=direction,
                                  snaplen=_number("snaplen", snaplen, int),
                                  count=_number("count", count, int),
                                  duration_s=_number("duration_s", duration_s, float),
                                  filter=filter)
        with self._lock:
            self._captures[port] = cap
        try:
            cap.wait()
            return cap.stop()
        finally:
            with self._lock:
                if self._captures.get(port) is cap:
                    del self._captures[port]

    def cmd_capture_stop(self, port: str):
        with self._lock:
            cap = self._captures.get(port)
        if cap is None:
            raise ConfigError(f"no capture runs on port {port!r} (from dpdkvirtio ctl)")
        cap.stop()
        return {"stopped": port}

    def cmd_stop(self):
        if self.on_stop:
            self.on_stop()
        return "stopping"

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


COMMANDS = [n[4:].replace("_", "-") for n in dir(ControlServer) if n.startswith("cmd_")]
# what `dpdkvirtio ctl` offers: every command but the liveness probe, in the order of the
# class (its help lists them so)
CTL_COMMANDS = [n[4:].replace("_", "-") for n in vars(ControlServer)
                if n.startswith("cmd_") and n != "cmd_ping"]


def ctl_arguments(cmd: str) -> list[tuple[str, bool]]:
    """The server's parameters of ``cmd`` as ctl takes them on the command line, in order:
    (name, required). A parameter named ``options`` takes every word left (key=value)."""
    import inspect
    fn = getattr(ControlServer, "cmd_" + cmd.replace("-", "_"))
    return [(p.name, p.default is inspect.Parameter.empty)
            for p in list(inspect.signature(fn).parameters.values())[1:]]


def bind_ctl_words(cmd: str, words: list[str]) -> dict:
    """The request arguments for ``ctl CMD WORDS...``: required parameters take one word
    each, optional ones a word if one is left, ``options`` the rest. Raises ConfigError
    naming the command's usage when words are missing or left over."""
    params = ctl_arguments(cmd)
    usage = " ".join(n.upper() if req else ("[key=value ...]" if n == "options" else f"[{n.upper()}]")
                     for n, req in params)
    out: dict = {}
    rest = list(words)
    for name, required in params:
        if name == "options":
            out[name], rest = rest, []
        elif rest:
            out[name] = rest.pop(0)
        elif required:
            raise ConfigError(f"ctl {cmd} needs {name.upper()}: ctl {cmd} {usage}".rstrip())
    if rest:
        raise ConfigError(f"ctl {cmd}: too many arguments {rest}; usage: ctl {cmd} {usage}".rstrip())
    return out


def request(path: str, cmd: str, timeout_s: float = 30.0, **args):
    """Send one command to a running switch; its result, or ControlError."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except FileNotFoundError:
        s.close()
        raise ControlError(f"no control socket at {path}: is `dpdkvirtio run` running? "
                           "(give its socket with --socket)") from None
    except ConnectionRefusedError:
        s.close()
        raise ControlError(f"nothing listens on {path} (a stale socket of a stopped switch)") from None
    except PermissionError:
        s.close()
        raise ControlError(f"permission denied on {path}: run as the switch's user or group") from None
    try:
        conn = rpc.Connection(s.fileno(), s.fileno(), name="the switch")
        return conn.call(cmd, timeout_s=timeout_s, **args)
    except rpc.RpcError as e:
        raise remote_error(ControlError, e.kind, e.message) from None
    finally:
        s.close()


def find_socket(explicit: str | None = None) -> str:
    """--socket, $DPDKVIRTIO_CTL, or the only *.ctl in /run/dpdkvirtio."""
    if explicit:
        return explicit
    env = os.environ.get("DPDKVIRTIO_CTL")
    if env:
        return env
    from .topology import DEFAULT_RUN_DIR
    try:
        found = sorted(f for f in os.listdir(DEFAULT_RUN_DIR) if f.endswith(".ctl"))
    except OSError:
        found = []
    if len(found) == 1:
        return os.path.join(DEFAULT_RUN_DIR, found[0])
    if not found:
        raise ControlError(f"no control socket in {DEFAULT_RUN_DIR}: is `dpdkvirtio run` running? "
                           "(or give --socket PATH)")
    raise ControlError(f"several switches run ({', '.join(found)}): choose one with --socket")
