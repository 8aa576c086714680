"""The one control protocol: JSON-RPC 2.0, one message per line, over any byte stream.

Every conversation of dpdkvirtio speaks it: the control socket of ``dpdkvirtio run``
(``dpdkvirtio ctl``), the test agent's pipes (``peers.Agent``) and the demo's
parent/peer pipes. What is settled here and nowhere else:

- framing: a UTF-8 JSON object per line, at most ``max_bytes`` (a longer message is
  refused without being read whole, and the connection is then closed);
- requests carry an ``id`` and get exactly one reply; notifications (no ``id``) get none;
- errors are JSON-RPC error objects. The codes -32700..-32600 are the protocol's own;
  a refused operation is ``APPLICATION_ERROR`` with ``data.type`` naming the Python
  exception (``ConfigError``, ``PortError``...), so a client can re-raise it by kind;
- timeouts: a client waits ``timeout_s`` for each reply and then raises RpcTimeout.

    server side:  reply = rpc.dispatch(line, lookup)          # bytes or None
    client side:  conn = rpc.Connection(rfd, wfd); conn.call("show", timeout_s=5)
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import select
import time
from collections.abc import Callable
from typing import Any

from .errors import ConfigError, DpdkError

log = logging.getLogger("dpdkvirtio.rpc")

VERSION = "2.0"
MAX_MESSAGE_BYTES = 1 << 16

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
APPLICATION_ERROR = -32000        # the method ran and refused (data.type: the exception)
MESSAGE_TOO_LONG = -32001         # a message over the size limit (the connection closes)


class RpcError(Exception):
    """A JSON-RPC error reply (raised by the client; ``code``, ``message``, ``data``)."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    @property
    def kind(self) -> str:
        """The remote exception's class name for APPLICATION_ERROR, else 'RpcError'."""
        if isinstance(self.data, dict) and isinstance(self.data.get("type"), str):
            return str(self.data["type"])
        return "RpcError"


class RpcTimeout(RpcError):
    """No reply within the timeout."""

    def __init__(self, message: str):
        super().__init__(INTERNAL_ERROR, message)


class RpcClosed(RpcError):
    """The other side closed the stream."""

    def __init__(self, message: str):
        super().__init__(INTERNAL_ERROR, message)


# ------------------------------------------------------------------------------ encoding

def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def encode_request(method: str, params: dict[str, Any] | None, msg_id: int) -> bytes:
    return _line({"jsonrpc": VERSION, "method": method, "params": params or {}, "id": msg_id})


def encode_notification(method: str, params: dict[str, Any] | None = None) -> bytes:
    return _line({"jsonrpc": VERSION, "method": method, "params": params or {}})


def encode_result(msg_id: Any, result: Any) -> bytes:
    return _line({"jsonrpc": VERSION, "result": result, "id": msg_id})


def encode_error(msg_id: Any, code: int, message: str, data: Any = None) -> bytes:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return _line({"jsonrpc": VERSION, "error": err, "id": msg_id})


def error_for(exc: BaseException, method: str) -> tuple[int, str, dict[str, Any]]:
    """(code, message, data) of the reply for an exception a method raised."""
    if isinstance(exc, TypeError):
        return INVALID_PARAMS, f"{method}: bad arguments ({exc})", {"type": "TypeError"}
    if isinstance(exc, (ConfigError, DpdkError, OSError, ValueError, LookupError,
                        RuntimeError)):
        return APPLICATION_ERROR, str(exc), {"type": type(exc).__name__}
    return APPLICATION_ERROR, f"{method}: {type(exc).__name__}: {exc}", \
        {"type": type(exc).__name__}


def check_str_params(method: str, fn: Callable[..., Any], params: dict[str, Any]) -> None:
    """Parameters annotated ``str`` must be strings: a clear error instead of whatever a
    list or a number would do further down. Raises ConfigError."""
    for name, param in inspect.signature(fn).parameters.items():
        if name in params and param.annotation in ("str", str) \
                and not isinstance(params[name], str):
            raise ConfigError(f"{method}: {name} must be a string, got "
                              f"{type(params[name]).__name__} {params[name]!r}")


# ------------------------------------------------------------------------------ server

def parse(line: bytes) -> dict[str, Any]:
    """The message in ``line``. Raises RpcError(PARSE_ERROR / INVALID_REQUEST)."""
    try:
        msg = json.loads(line)
    except ValueError:
        raise RpcError(PARSE_ERROR, "malformed request: not JSON") from None
    if not isinstance(msg, dict) or msg.get("jsonrpc") != VERSION:
        raise RpcError(INVALID_REQUEST, "malformed request: expected a JSON-RPC 2.0 object "
                       '{"jsonrpc": "2.0", "method": ..., "params": {...}, "id": ...}')
    return msg


def dispatch(line: bytes, lookup: Callable[[str], Callable[..., Any] | None],
             known: Callable[[], list[str]] = lambda: []) -> bytes | None:
    """Handle one request line: find the method with ``lookup(name)`` (None: unknown),
    call it with the params (an object: keyword arguments), and return the encoded reply
    (None for a notification). Never raises for anything a client sends."""
    msg_id = None
    try:
        msg = parse(line)
        msg_id = msg.get("id")
        method = msg.get("method")
        params = msg.get("params", {})
        if not isinstance(method, str):
            raise RpcError(INVALID_REQUEST, f"malformed request: method must be a string, "
                           f"got {method!r}")
        if not isinstance(params, dict):
            raise RpcError(INVALID_REQUEST, "malformed request: params must be an object")
        fn = lookup(method)
        if fn is None:
            raise RpcError(METHOD_NOT_FOUND, f"unknown method {method!r}; known: "
                           f"{', '.join(known())}")
    except RpcError as e:
        return encode_error(msg_id, e.code, e.message)
    notification = "id" not in msg
    try:
        check_str_params(method, fn, params)
        result = fn(**params)
    except Exception as e:  # noqa: BLE001 - every failure becomes an error reply
        code, message, data = error_for(e, method)
        if code == APPLICATION_ERROR and not isinstance(e, (ConfigError, DpdkError, OSError)):
            log.debug("rpc method %r failed", method, exc_info=True)
        return None if notification else encode_error(msg_id, code, message, data)
    return None if notification else encode_result(msg_id, result)


# ------------------------------------------------------------------------------ streams

class LineReader:
    """Reads newline-terminated messages from a raw fd (no buffering surprises with
    select), at most ``max_bytes`` each."""

    def __init__(self, fd: int, max_bytes: int = MAX_MESSAGE_BYTES):
        self.fd = fd
        self.max_bytes = max_bytes
        self._buf = b""
        self.eof = False

    def read_line(self, timeout_s: float | None) -> bytes | None:
        """The next line (without its newline), or None when none arrived in time or the
        stream ended (then ``eof`` is True). Raises RpcError(MESSAGE_TOO_LONG)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            if len(self._buf) > self.max_bytes:
                raise RpcError(MESSAGE_TOO_LONG, f"message longer than {self.max_bytes} bytes; "
                               "the connection is closed")
            if self.eof:
                return None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            try:
                chunk = os.read(self.fd, 65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        if len(line) > self.max_bytes:
            raise RpcError(MESSAGE_TOO_LONG, f"message longer than {self.max_bytes} bytes; "
                           "the connection is closed")
        return line


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def serve(rfd: int, wfd: int, lookup: Callable[[str], Callable[..., Any] | None],
          known: Callable[[], list[str]] = lambda: [],
          max_bytes: int = MAX_MESSAGE_BYTES,
          stop: Callable[[], bool] = lambda: False) -> None:
    """Answer requests read from ``rfd`` on ``wfd`` until the stream ends, a message is
    too long (answered, then the loop ends) or ``stop()`` is true after a reply."""
    reader = LineReader(rfd, max_bytes)
    while True:
        try:
            line = reader.read_line(None)
        except RpcError as e:
            write_all(wfd, encode_error(None, e.code, e.message))
            return
        if line is None:
            return
        reply = dispatch(line, lookup, known)
        if reply is not None:
            write_all(wfd, reply)
        if stop():
            return


class Connection:
    """The client end: requests with ids and replies matched to them; notifications
    both ways (``send``, ``notifications``). Not thread-safe: one caller at a time."""

    def __init__(self, rfd: int, wfd: int, max_bytes: int = 1 << 24, name: str = "peer"):
        self.reader = LineReader(rfd, max_bytes)
        self.wfd = wfd
        self.name = name
        self._next_id = 1
        self.notifications: list[dict[str, Any]] = []       # received while waiting for replies

    def send(self, method: str, **params: Any) -> None:
        """A notification (no reply). Raises RpcClosed when the other side is gone."""
        try:
            write_all(self.wfd, encode_notification(method, params))
        except (BrokenPipeError, ConnectionError, ValueError) as e:
            raise RpcClosed(f"{self.name} is gone ({e})") from None

    def call(self, method: str, timeout_s: float = 30.0, **params: Any) -> Any:
        """Send a request and return its result. Raises RpcError (the error reply),
        RpcTimeout, RpcClosed."""
        msg_id = self._next_id
        self._next_id += 1
        try:
            write_all(self.wfd, encode_request(method, params, msg_id))
        except (BrokenPipeError, ConnectionError, ValueError) as e:
            raise RpcClosed(f"{self.name} is gone ({e})") from None
        deadline = time.monotonic() + timeout_s
        while True:
            msg = self.receive(max(0.0, deadline - time.monotonic()))
            if msg is None:
                if self.reader.eof:
                    raise RpcClosed(f"{self.name} closed the connection before answering "
                                    f"{method!r}")
                raise RpcTimeout(f"{self.name} did not answer {method!r} within "
                                 f"{timeout_s:g} s")
            if "method" in msg:
                self.notifications.append(msg)
                continue
            if msg.get("id") not in (msg_id, None):
                continue                           # a late reply to an abandoned request
            if "error" in msg:
                err = msg["error"] if isinstance(msg["error"], dict) else {}
                raise RpcError(err.get("code", INTERNAL_ERROR), err.get("message", "failed"),
                               err.get("data"))
            return msg.get("result")

    def receive(self, timeout_s: float | None) -> dict[str, Any] | None:
        """The next message, or None (timeout or end of stream)."""
        while True:
            line = self.reader.read_line(timeout_s)
            if line is None:
                return None
            try:
                return parse(line)
            except RpcError:
                log.debug("%s sent a line that is no JSON-RPC message: %r", self.name, line[:200])
                continue

    def next_notification(self, timeout_s: float | None) -> dict[str, Any] | None:
        """The next notification (queued first), or None on timeout / end of stream."""
        if self.notifications:
            return self.notifications.pop(0)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            msg = self.receive(left)
            if msg is None or "method" in msg:
                return msg
            if deadline is not None and time.monotonic() >= deadline:
                return None
