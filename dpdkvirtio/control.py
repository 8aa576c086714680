"""The control socket of ``dpdkvirtio run``: JSON lines over a UNIX stream socket, one
request {"cmd": ..., "args": {...}} and one reply {"ok": true, "result": ...} or
{"ok": false, "error": "..."} per line. ``dpdkvirtio ctl`` is its client.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading

from . import sockets
from .errors import ConfigError, DpdkError

log = logging.getLogger("dpdkvirtio.control")
MAX_REQUEST = 1 << 16


class ControlError(Exception):
    """The switch refused a request, or could not be reached."""


def _parse_options(items) -> dict:
    if isinstance(items, dict):
        return items
    out = {}
    for it in items or []:
        if "=" not in it:
            raise ConfigError(f"option {it!r} must look like key=value")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _check_types(cmd: str, fn, args: dict):
    """Arguments annotated ``str`` must be strings (names, types): a clear error instead of
    whatever a list or number would do further down."""
    import inspect
    for name, param in inspect.signature(fn).parameters.items():
        if name in args and param.annotation in ("str", str) and not isinstance(args[name], str):
            raise ConfigError(f"{cmd}: {name} must be a string, got "
                              f"{type(args[name]).__name__} {args[name]!r}")


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
            f = conn.makefile("rwb")
            while True:
                try:
                    line = f.readline(MAX_REQUEST + 1)       # never more than the limit
                except OSError:
                    return
                if not line:
                    return
                too_long = len(line) > MAX_REQUEST
                if too_long:
                    reply = {"ok": False, "error": f"request longer than {MAX_REQUEST} bytes; "
                             "the connection is closed"}
                else:
                    reply = self.handle(line)
                try:
                    f.write(json.dumps(reply).encode() + b"\n")
                    f.flush()
                except OSError:
                    return
                if too_long:                                  # the rest of it is not read
                    return

    def handle(self, line: bytes) -> dict:
        try:
            req = json.loads(line)
            cmd = req["cmd"]
            args = req.get("args") or {}
            if not isinstance(args, dict):
                raise ConfigError("args must be an object")
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": "malformed request: expected {\"cmd\": ..., \"args\": {...}}"}
        fn = getattr(self, "cmd_" + cmd.replace("-", "_"), None) if isinstance(cmd, str) else None
        if fn is None:
            return {"ok": False, "error": f"unknown command {cmd!r}; known: {', '.join(COMMANDS)}"}
        try:
            _check_types(cmd, fn, args)
            return {"ok": True, "result": fn(**args)}
        except TypeError as e:
            return {"ok": False, "error": f"{cmd}: bad arguments ({e})"}
        except (ConfigError, DpdkError, OSError, ValueError) as e:
            return {"ok": False, "error": str(e)}
        except Exception as e:  # noqa: BLE001 - a bad request must not end the connection silently
            log.exception("control command %r failed", cmd)
            return {"ok": False, "error": f"{cmd}: {type(e).__name__}: {e}"}

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

    def cmd_pmd_perf_show(self):
        return self.switch.pmd_perf_show()

    def cmd_port_stats(self, name=None):
        if name:
            return {name: self.switch.port_stats(name)}
        return self.switch.all_port_stats()

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


def request(path: str, cmd: str, timeout_s: float = 30.0, **args):
    """Send one command to a running switch; its result, or ControlError."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        s.connect(path)
    except FileNotFoundError:
        raise ControlError(f"no control socket at {path}: is `dpdkvirtio run` running? "
                           "(give its socket with --socket)") from None
    except ConnectionRefusedError:
        raise ControlError(f"nothing listens on {path} (a stale socket of a stopped switch)") from None
    except PermissionError:
        raise ControlError(f"permission denied on {path}: run as the switch's user or group") from None
    try:
        s.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ControlError("the switch closed the connection")
            buf += chunk
    except socket.timeout:
        raise ControlError(f"the switch did not answer {cmd!r} within {timeout_s:g} s") from None
    finally:
        s.close()
    reply = json.loads(buf)
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "failed"))
    return reply["result"]


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
