"""dpdkvirtio.rpc, the one control protocol (JSON-RPC 2.0, one message per line), over
real pipes: framing, size limit, error replies with codes, notifications, timeouts."""
import json
import os
import threading

import pytest

from dpdkvirtio import rpc
from dpdkvirtio.errors import ConfigError, PortStateError


class Methods:
    def ping(self):
        return "pong"

    def add(self, a: int, b: int):
        return a + b

    def name(self, name: str):
        return name.upper()

    def refuse(self):
        raise PortStateError("port 'x' is closed", "Create a new port")

    def config(self):
        raise ConfigError("bad option")

    def crash(self):
        raise KeyError("boom")


def lookup(name):
    return getattr(Methods(), name.replace("-", "_"), None)


def reply(line: bytes) -> dict | None:
    out = rpc.dispatch(line, lookup, lambda: ["ping", "add"])
    return None if out is None else json.loads(out)


def test_results_and_error_codes():
    assert reply(rpc.encode_request("ping", None, 1)) == {"jsonrpc": "2.0", "result": "pong", "id": 1}
    assert reply(rpc.encode_request("add", {"a": 2, "b": 3}, "x"))["result"] == 5
    cases = [
        (b"not json", rpc.PARSE_ERROR, None),
        (b'{"method": "ping", "id": 1}', rpc.INVALID_REQUEST, None),          # no "jsonrpc"
        (b'{"jsonrpc": "2.0", "method": "ping", "params": [1], "id": 2}', rpc.INVALID_REQUEST, 2),
        (rpc.encode_request("nosuch", None, 3), rpc.METHOD_NOT_FOUND, 3),
        (rpc.encode_request("add", {"a": 1}, 4), rpc.INVALID_PARAMS, 4),
        (rpc.encode_request("name", {"name": 5}, 5), rpc.APPLICATION_ERROR, 5),
        (rpc.encode_request("refuse", None, 6), rpc.APPLICATION_ERROR, 6),
        (rpc.encode_request("crash", None, 7), rpc.APPLICATION_ERROR, 7),
    ]
    for line, code, msg_id in cases:
        r = reply(line)
        assert r["error"]["code"] == code and r["id"] == msg_id, (line, r)
    assert "known: ping, add" in reply(rpc.encode_request("nosuch", None, 1))["error"]["message"]
    refused = reply(rpc.encode_request("refuse", None, 1))["error"]
    assert refused["data"] == {"type": "PortStateError"} and "closed" in refused["message"]
    assert "name must be a string, got int 5" in reply(
        rpc.encode_request("name", {"name": 5}, 1))["error"]["message"]
    assert reply(rpc.encode_request("crash", None, 1))["error"]["data"] == {"type": "KeyError"}


def test_notifications_get_no_reply():
    assert reply(rpc.encode_notification("ping")) is None
    assert reply(rpc.encode_notification("crash")) is None      # not even an error


def _server(rfd, wfd, **kw):
    t = threading.Thread(target=rpc.serve, args=(rfd, wfd, lookup), kwargs=kw, daemon=True)
    t.start()
    return t


def test_connection_over_pipes():
    c2s_r, c2s_w = os.pipe()
    s2c_r, s2c_w = os.pipe()
    t = _server(c2s_r, s2c_w)
    conn = rpc.Connection(s2c_r, c2s_w, name="the test server")
    try:
        assert conn.call("ping", timeout_s=5) == "pong"
        assert conn.call("add", timeout_s=5, a=40, b=2) == 42
        with pytest.raises(rpc.RpcError) as e:
            conn.call("refuse", timeout_s=5)
        assert e.value.kind == "PortStateError" and e.value.code == rpc.APPLICATION_ERROR
        conn.send("ping")                                        # a notification: no reply
        assert conn.call("ping", timeout_s=5) == "pong"          # ids still match
    finally:
        os.close(c2s_w)                                          # EOF ends the server
        t.join(5)
        for fd in (c2s_r, s2c_r, s2c_w):
            os.close(fd)
    assert not t.is_alive()


def test_timeout_and_closed_peer():
    r, w = os.pipe()
    r2, w2 = os.pipe()
    conn = rpc.Connection(r, w2, name="a silent peer")
    try:
        with pytest.raises(rpc.RpcTimeout, match="did not answer 'ping' within 0.2 s"):
            conn.call("ping", timeout_s=0.2)
        os.close(w)                                               # the peer goes away
        w = None
        with pytest.raises(rpc.RpcClosed, match="closed the connection"):
            conn.call("ping", timeout_s=5)
    finally:
        for fd in (r, r2, w2) + ((w,) if w is not None else ()):
            os.close(fd)


def test_a_message_over_the_limit_is_refused_and_ends_the_conversation():
    c2s_r, c2s_w = os.pipe()
    s2c_r, s2c_w = os.pipe()
    t = _server(c2s_r, s2c_w, max_bytes=1024)
    try:
        big = rpc.encode_request("add", {"a": 1, "b": 2, "pad": "x" * 5000}, 1)
        rpc.write_all(c2s_w, big[:4000])                          # never sent whole
        t.join(5)
        assert not t.is_alive()                                   # the server stopped reading
        line = rpc.LineReader(s2c_r).read_line(5)
        err = json.loads(line)["error"]
        assert err["code"] == rpc.MESSAGE_TOO_LONG and "longer than 1024 bytes" in err["message"]
    finally:
        for fd in (c2s_r, c2s_w, s2c_r, s2c_w):
            os.close(fd)
