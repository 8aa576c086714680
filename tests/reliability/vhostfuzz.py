"""A seeded generator of malformed vhost-user traffic (docs/interop/vhost-user.rst of QEMU):
bad headers, wrong version bits, oversize and short sizes, wrong fd counts, fd floods,
random payloads for every message type, valid prefixes followed by garbage, and
disconnects in the middle of a message. Each case is one connection to the server.

Every byte of a case derives from (seed, index): ``case_seed`` makes the case's own seed,
so one case replays alone:

    python -m tests.reliability.vhostfuzz SOCKET_PATH SEED INDEX
"""

from __future__ import annotations

import array
import os
import random
import select
import socket
import struct
import time

HEADER = struct.Struct("<III")         # request, flags, size
VERSION = 0x1
REPLY = 0x4
NEED_REPLY = 0x8
MAX_FDS = 8

# request numbers (master -> slave) and the payload a well-formed message carries
REQUESTS = {
    1: ("GET_FEATURES", 0), 2: ("SET_FEATURES", 8), 3: ("SET_OWNER", 0), 4: ("RESET_OWNER", 0),
    5: ("SET_MEM_TABLE", 8 + 32 * 8), 6: ("SET_LOG_BASE", 16), 7: ("SET_LOG_FD", 0),
    8: ("SET_VRING_NUM", 8), 9: ("SET_VRING_ADDR", 40), 10: ("SET_VRING_BASE", 8),
    11: ("GET_VRING_BASE", 8), 12: ("SET_VRING_KICK", 8), 13: ("SET_VRING_CALL", 8),
    14: ("SET_VRING_ERR", 8), 15: ("GET_PROTOCOL_FEATURES", 0), 16: ("SET_PROTOCOL_FEATURES", 8),
    17: ("GET_QUEUE_NUM", 0), 18: ("SET_VRING_ENABLE", 8), 19: ("SEND_RARP", 8),
    20: ("NET_SET_MTU", 8), 21: ("SET_SLAVE_REQ_FD", 0), 22: ("IOTLB_MSG", 24),
    23: ("SET_VRING_ENDIAN", 8), 24: ("GET_CONFIG", 12 + 256), 25: ("SET_CONFIG", 12 + 256),
    26: ("CREATE_CRYPTO_SESSION", 64), 27: ("CLOSE_CRYPTO_SESSION", 8), 28: ("POSTCOPY_ADVISE", 0),
    29: ("POSTCOPY_LISTEN", 0), 30: ("POSTCOPY_END", 0), 31: ("GET_INFLIGHT_FD", 24),
    32: ("SET_INFLIGHT_FD", 24), 33: ("GPU_SET_SOCKET", 0), 34: ("RESET_DEVICE", 0),
    36: ("VRING_KICK", 8), 37: ("GET_MAX_MEM_SLOTS", 0), 38: ("ADD_MEM_REG", 40),
    39: ("REM_MEM_REG", 40), 40: ("SET_STATUS", 8), 41: ("GET_STATUS", 0),
}
KINDS = ["short_header", "bad_version", "oversize", "short_size", "fd_mismatch", "fd_flood",
         "random_payload", "valid_prefix_then_garbage", "mid_message_disconnect",
         "bad_mem_table", "bad_vring", "unknown_request"]


def _fds(rng: random.Random, n: int) -> list[int]:
    out = []
    for _ in range(n):
        kind = rng.randrange(3)
        if kind == 0:
            fd = os.memfd_create("dvfuzz", os.MFD_CLOEXEC)
            os.ftruncate(fd, rng.choice([0, 4096, 2 << 20]))
            out.append(fd)
        elif kind == 1:
            out.append(os.eventfd(0, os.EFD_CLOEXEC))
        else:
            r, w = os.pipe()
            os.close(w)
            out.append(r)
    return out


def _send(sock, data: bytes, fds=()):
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(data)


def _msg(request: int, payload: bytes, flags: int = VERSION, size: int | None = None) -> bytes:
    return HEADER.pack(request, flags, len(payload) if size is None else size) + payload


def _mem_table(rng: random.Random, nregions: int) -> bytes:
    regions = b""
    for _ in range(8):
        regions += struct.pack("<QQQQ", rng.getrandbits(64) & ~0xFFF, rng.choice([0, 4096, 2 << 20,
                               rng.getrandbits(64)]), rng.getrandbits(48) << 12,
                               rng.choice([0, 4096, rng.getrandbits(32)]))
    return struct.pack("<II", nregions, 0) + regions


def case_seed(seed: int, index: int) -> str:
    """The seed of case ``index`` of a run seeded with ``seed`` (random.Random accepts it)."""
    return f"vhostfuzz/{seed}/{index}"


def case_messages(rng: random.Random, kind: str):
    """Yield (bytes, fds, then_close_early) steps for one case."""
    req = rng.choice(list(REQUESTS))
    name, size = REQUESTS[req]
    if kind == "short_header":
        yield _msg(req, b"")[:rng.randrange(1, HEADER.size)], [], True
    elif kind == "bad_version":
        yield _msg(req, rng.randbytes(size), flags=rng.choice([0, 2, 3, 0xFF, 0xFFFFFFFF])), [], False
    elif kind == "oversize":
        yield _msg(req, rng.randbytes(rng.randrange(0, 64)), size=rng.choice(
            [0x1000, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF, size + 1 + rng.randrange(4096)])), [], True
    elif kind == "short_size":
        yield _msg(req, rng.randbytes(max(0, size - 1 - rng.randrange(max(1, size)))) if size else b"",
                   size=max(0, size - 1 - rng.randrange(max(1, size))) if size else 0), [], False
    elif kind == "fd_mismatch":
        yield _msg(req, rng.randbytes(size)), _fds(rng, rng.choice([1, 2, MAX_FDS, MAX_FDS + 1])), False
    elif kind == "fd_flood":
        for _ in range(rng.randrange(5, 40)):
            r2 = rng.choice(list(REQUESTS))
            yield _msg(r2, rng.randbytes(REQUESTS[r2][1])), _fds(rng, rng.randrange(1, MAX_FDS + 1)), False
    elif kind == "random_payload":
        for _ in range(rng.randrange(1, 6)):
            r2 = rng.choice(list(REQUESTS))
            flags = VERSION | (NEED_REPLY if rng.random() < 0.5 else 0)
            yield _msg(r2, rng.randbytes(REQUESTS[r2][1]), flags=flags), [], False
    elif kind == "valid_prefix_then_garbage":
        yield _msg(1, b""), [], False                                  # GET_FEATURES
        yield _msg(3, b""), [], False                                  # SET_OWNER
        yield _msg(2, struct.pack("<Q", rng.getrandbits(64))), [], False
        yield _msg(15, b""), [], False
        yield rng.randbytes(rng.randrange(1, 300)), [], True
    elif kind == "mid_message_disconnect":
        full = _msg(req, rng.randbytes(max(size, 8)))
        yield full[:rng.randrange(HEADER.size, len(full))], [], True
    elif kind == "bad_mem_table":
        yield _msg(3, b""), [], False
        n = rng.choice([0, 1, 8, 9, 255, 0xFFFFFFFF])
        fds = _fds(rng, rng.choice([0, 1, min(n, MAX_FDS) if n < 0xFF else MAX_FDS]))
        yield _msg(5, _mem_table(rng, n)), fds, False
    elif kind == "bad_vring":
        yield _msg(3, b""), [], False
        idx = rng.choice([0, 1, 255, 256, 0xFFFF, 0x10000, 0xFFFFFFFF])
        yield _msg(8, struct.pack("<II", idx, rng.choice([0, 1, 255, 1024, 32768, 0xFFFFFFFF]))), [], False
        yield _msg(9, struct.pack("<IIQQQQ", idx, 0, *(rng.getrandbits(64) for _ in range(4)))), [], False
        yield _msg(10, struct.pack("<II", idx, rng.getrandbits(32))), [], False
        yield _msg(12, struct.pack("<Q", idx | rng.choice([0, 0x100]))), _fds(rng, rng.choice([0, 1])), False
        yield _msg(18, struct.pack("<II", idx, 1)), [], False
    else:                                                              # unknown_request
        request = rng.choice([0, 35, 42, 100, 0xFFFF, 0xFFFFFFFF])
        yield _msg(request, rng.randbytes(rng.randrange(64))), [], False


VRING_INDEX_REQUESTS = {8, 9, 10, 11, 18}     # payload starts with a u32 vring index
SET_INFLIGHT_FD = 32
VHOST_MAX_VRING = 256


def dpdk_keeps_fds(data: bytes, n_fds: int) -> int:
    """How many of the fds sent with this message DPDK 22.11 (and 23.11) keeps for good:
    a message naming a vring index out of range fails in
    vhost_user_check_and_alloc_queue_pair, before any handler (and before the
    application's pre-message hook), and the fds it carried are never closed."""
    if n_fds == 0 or len(data) < HEADER.size + 4:
        return 0
    request = HEADER.unpack_from(data)[0]
    if request in VRING_INDEX_REQUESTS:
        index = struct.unpack_from("<I", data, HEADER.size)[0]
    elif request == SET_INFLIGHT_FD and len(data) >= HEADER.size + 20:
        index = (struct.unpack_from("<H", data, HEADER.size + 16)[0] - 1) & 0xFFFFFFFF
    else:
        return 0
    return min(n_fds, MAX_FDS) if index >= VHOST_MAX_VRING else 0


class CaseResult:
    """What one case did. ``read``: the server accepted the connection and read it to the
    end (it closed the connection: on a malformed message, or at our end of stream).
    ``exposed``: fds DPDK 22.11 may keep from this case (``dpdk_keeps_fds`` of the first
    message naming an out-of-range vring index that was sent: the server closes the
    connection there, so nothing after it is read)."""

    __slots__ = ("kind", "connected", "read", "exposed", "messages_sent")

    def __init__(self, kind):
        self.kind, self.connected, self.read, self.exposed, self.messages_sent = kind, False, False, 0, 0

    def __repr__(self):
        return (f"<case {self.kind} connected={self.connected} read={self.read} "
                f"sent={self.messages_sent} exposed={self.exposed}>")


def _out_of_range(data: bytes) -> bool:
    return dpdk_keeps_fds(data, 1) > 0


def _send_case(s: socket.socket, rng: random.Random, result: CaseResult):
    """Send one case's messages on a connected socket, then end the stream (SHUT_WR)."""
    opened: list[int] = []
    try:
        counted = False
        for data, fds, early in case_messages(rng, result.kind):
            opened += fds
            try:
                _send(s, data, fds)
            except OSError:
                break                              # the server closed on us: it read enough
            result.messages_sent += 1
            if not counted and _out_of_range(data):
                result.exposed = dpdk_keeps_fds(data, len(fds))
                counted = True                     # the server closes the connection here
            if early:
                break
            if rng.random() < 0.3 and select.select([s], [], [], 0)[0]:
                try:
                    s.recv(4096)                   # replies, if any (never waits)
                except OSError:
                    pass
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    finally:
        for fd in opened:                          # the kernel holds those in flight
            try:
                os.close(fd)
            except OSError:
                pass


def _drain(s: socket.socket) -> bool | None:
    """Read what the server sent: True at its close (EOF or reset), None if more may come."""
    s.setblocking(False)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return True
    except (BlockingIOError, InterruptedError):
        return None
    except ConnectionResetError:
        return True


def run_cases(path: str, seeds, kinds=None, outstanding: int = 64,
              timeout_s: float = 30.0) -> list[CaseResult]:
    """Cases (one per seed) against the server socket at ``path``, up to ``outstanding``
    connections at a time. A case is ``read`` once the server has closed its connection:
    it read the stream to its end, or to the message it refused. Connect errors raise: a
    server that stops accepting is a failure, not a case."""
    seeds = list(seeds)
    results: list[CaseResult | None] = [None] * len(seeds)
    pending: dict[socket.socket, tuple[int, float]] = {}
    nxt = 0
    try:
        while nxt < len(seeds) or pending:
            while nxt < len(seeds) and len(pending) < outstanding:
                rng = random.Random(seeds[nxt])
                r = CaseResult(kinds[nxt] if kinds else rng.choice(KINDS))
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(timeout_s)
                s.connect(path)
                r.connected = True
                _send_case(s, rng, r)
                results[nxt] = r
                pending[s] = (nxt, time.monotonic() + timeout_s)
                nxt += 1
            ready, _, _ = select.select(list(pending), [], [], 0.05)
            now = time.monotonic()
            for s in list(pending):
                i, deadline = pending[s]
                done = _drain(s) if s in ready else None
                if done or now > deadline:
                    results[i].read = bool(done)
                    del pending[s]
                    s.close()
    finally:
        for s in pending:
            s.close()
    return results


def run_case(path: str, seed, kind: str | None = None, timeout_s: float = 10.0) -> CaseResult:
    """One case, alone (replays a case of a run: ``case_seed(seed, index)``)."""
    return run_cases(path, [seed], [kind] if kind else None, 1, timeout_s)[0]


def main(argv=None):
    import sys
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m tests.reliability.vhostfuzz SOCKET_PATH SEED INDEX", file=sys.stderr)
        return 2
    path, seed, index = args[0], int(args[1]), int(args[2])
    print(run_case(path, case_seed(seed, index)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
