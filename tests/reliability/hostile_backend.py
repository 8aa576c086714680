"""The opposite trust direction: a hostile vhost-user *back-end* (a Python server) that a
``net_virtio_user`` front-end connects to. It answers the handshake, maps the
front-end's memory from the fds of SET_MEM_TABLE, and then writes used-ring elements of
its choosing into the front-end's split rings (ids out of range, lengths beyond the
buffers) and signals the call eventfd.

Used by ``test_hostile.py::test_hostile_backend_against_virtio_user``; it reports what
DPDK 22.11's virtio driver does with them (docs/reliability.md).
"""

from __future__ import annotations

import array
import mmap
import os
import socket
import struct
import threading

from tests.reliability import hostile as H
from tests.reliability.hostile import recv_exact
from tests.reliability.vhostfuzz import HEADER, REPLY, VERSION

SET_VRING_ENABLE = 18


class Vring:
    __slots__ = ("num", "desc", "avail", "used", "call", "kick")

    def __init__(self):
        self.num = 0
        self.desc = self.avail = self.used = 0
        self.call = self.kick = -1


class HostileBackend:
    """Listens on ``path``; ``wait_ready()`` once the front-end has set up vrings 0 and 1.
    Offers VERSION_1 only (no protocol features, no mergeable buffers)."""

    def __init__(self, path: str):
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.conn: socket.socket | None = None
        self.maps: list[tuple[int, int, mmap.mmap, int]] = []     # (uaddr, size, map, offset)
        self.vrings = [Vring() for _ in range(2)]
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    # -- the protocol
    def _recv(self) -> tuple[int, bytes, list[int]]:
        assert self.conn is not None
        fds = array.array("i")
        data, anc, _flags, _addr = self.conn.recvmsg(HEADER.size, socket.CMSG_SPACE(8 * 4))
        if not data:
            raise ConnectionError("the front-end closed the connection")
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
        request, _f, size = HEADER.unpack(recv_exact(self.conn, HEADER.size, data))
        return request, recv_exact(self.conn, size), list(fds)

    def _reply(self, request: int, payload: bytes):
        assert self.conn is not None
        self.conn.sendall(HEADER.pack(request, VERSION | REPLY, len(payload)) + payload)

    def _serve(self):
        try:
            self.conn, _ = self.listener.accept()
            while True:
                request, body, fds = self._recv()
                self._handle(request, body, fds)
        except (ConnectionError, OSError):
            pass

    def _handle(self, request: int, body: bytes, fds: list[int]):
        if request == H.GET_FEATURES:
            self._reply(request, struct.pack("<Q", 1 << H.F_VERSION_1))
        elif request == H.SET_MEM_TABLE:
            n = struct.unpack_from("<I", body)[0]
            for k in range(n):
                gpa, size, uaddr, offset = struct.unpack_from("<QQQQ", body, 8 + 32 * k)
                m = mmap.mmap(fds[k], size + offset)
                self.maps.append((uaddr, size, m, offset))
            for fd in fds:
                os.close(fd)
        elif request == H.SET_VRING_NUM:
            v, num = struct.unpack("<II", body[:8])
            if v < 2:
                self.vrings[v].num = num
        elif request == H.SET_VRING_ADDR:
            v, _flags, desc, used, avail, _log = struct.unpack("<IIQQQQ", body[:40])
            if v < 2:
                self.vrings[v].desc, self.vrings[v].used, self.vrings[v].avail = desc, used, avail
        elif request in (H.SET_VRING_KICK, H.SET_VRING_CALL):
            v = struct.unpack("<Q", body[:8])[0] & 0xFF
            fd = fds[0] if fds else -1
            if v < 2:
                if request == H.SET_VRING_KICK:
                    self.vrings[v].kick = fd
                else:
                    self.vrings[v].call = fd
            elif fd >= 0:
                os.close(fd)
            if all(r.kick >= 0 and r.call >= 0 and r.used for r in self.vrings):
                self.ready.set()
        elif request == H.GET_VRING_BASE:
            self._reply(request, body[:4] + struct.pack("<I", 0))
        else:
            for fd in fds:
                os.close(fd)

    # -- the front-end's memory
    def _locate(self, uaddr: int, n: int) -> tuple[mmap.mmap, int]:
        for base, size, m, offset in self.maps:
            if base <= uaddr and uaddr + n <= base + size:
                return m, offset + uaddr - base
        raise ValueError(f"{uaddr:#x}+{n} is not in the front-end's memory table")

    def read(self, uaddr: int, n: int) -> bytes:
        m, off = self._locate(uaddr, n)
        return m[off:off + n]

    def write(self, uaddr: int, data: bytes):
        m, off = self._locate(uaddr, len(data))
        m[off:off + len(data)] = data

    def avail_heads(self, v: int) -> list[int]:
        """The heads the front-end has made available on vring ``v`` so far."""
        r = self.vrings[v]
        idx = struct.unpack("<H", self.read(r.avail + 2, 2))[0]
        return [struct.unpack("<H", self.read(r.avail + 4 + 2 * (k % r.num), 2))[0]
                for k in range(min(idx, r.num))]

    def desc(self, v: int, i: int) -> tuple[int, int, int, int]:
        r = self.vrings[v]
        return struct.unpack("<QIHH", self.read(r.desc + 16 * (i % r.num), 16))

    def push_used(self, v: int, elements: list[tuple[int, int]], idx_step: int | None = None):
        """Write used elements (id, len) after the used index and move it by
        ``idx_step`` (default: their number); then signal the call eventfd."""
        r = self.vrings[v]
        idx = struct.unpack("<H", self.read(r.used + 2, 2))[0]
        for k, (i, length) in enumerate(elements):
            self.write(r.used + 4 + 8 * ((idx + k) % r.num), struct.pack("<II", i & 0xFFFFFFFF,
                                                                         length & 0xFFFFFFFF))
        step = len(elements) if idx_step is None else idx_step
        self.write(r.used + 2, struct.pack("<H", (idx + step) & 0xFFFF))
        if r.call >= 0:
            os.eventfd_write(r.call, 1)

    def close(self):
        for s in (self.conn, self.listener):
            if s is not None:
                s.close()
        self.thread.join(5)
        for _b, _s, m, _o in self.maps:
            m.close()
        for r in self.vrings:
            for fd in (r.call, r.kick):
                if fd >= 0:
                    os.close(fd)
        if os.path.exists(self.path):
            os.unlink(self.path)
