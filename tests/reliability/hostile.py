"""A hostile virtio-net driver: a vhost-user front-end in Python that completes the real
handshake with guest memory it owns (memfds, regions with gaps between them), sets up
split or packed rings, and then writes adversarial ring contents and kicks.

The guest memory (``GuestMemory``): one ring region holding every ring, indirect table
and virtio-net header the driver writes, and three data regions filled with a *pattern*:
the byte at guest-physical address g is ``0x80 + g % 61`` (0x80..0xBC). Data buffers only
ever point into data regions (or outside all memory), never into the ring region, so a
back-end that copies only guest memory can only produce pattern bytes: anything else in
a dequeued packet is memory that was not the guest's (``tests/reliability/ringfuzz.py``
checks that). Region B is backed from the middle of its memfd (``mmap_offset`` 1 MiB; the
first MiB of the file is zeros) and region C is adjacent to B in guest-physical space but
a separate mapping in the back-end.

Every case derives from (seed, index) (``case_seed``), so one case replays alone:

    python -m tests.reliability.ringfuzz SOCKET SEED INDEX
"""

from __future__ import annotations

import mmap
import os
import socket
import struct

import numpy as np

from tests.reliability.vhostfuzz import HEADER, VERSION, _send

# feature bits (virtio 1.1 §5.1.3, §6)
F_CSUM, F_HOST_TSO4, F_HOST_TSO6, F_HOST_UFO = 0, 11, 12, 14
F_MRG_RXBUF, F_INDIRECT_DESC, F_VERSION_1, F_RING_PACKED = 15, 28, 32, 34
HOST_OFFLOADS = (1 << F_CSUM) | (1 << F_HOST_TSO4) | (1 << F_HOST_TSO6) | (1 << F_HOST_UFO)

# descriptor flags
NEXT, WRITE, INDIRECT = 1, 2, 4
PACKED_AVAIL, PACKED_USED = 1 << 7, 1 << 15
AVAIL_F_NO_INTERRUPT = 1

NET_HDR_SIZE = 12                 # virtio_net_hdr_mrg_rxbuf (VERSION_1)
RING_SIZE = 256
PATTERN_LO, PATTERN_HI = 0x80, 0x80 + 60

# requests (QEMU docs/interop/vhost-user.rst)
GET_FEATURES, SET_FEATURES, SET_OWNER, SET_MEM_TABLE = 1, 2, 3, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL = 12, 13

RING_AREA = 0x10000               # the vrings, at the start of the ring region
USER_BASE = 0x7F00_0000_0000      # the driver's "virtual" addresses: USER_BASE + gpa
MiB = 1 << 20


def pattern(gpa: int, n: int) -> np.ndarray:
    """The pattern bytes of guest-physical addresses gpa..gpa+n-1."""
    return (PATTERN_LO + (np.arange(gpa, gpa + n, dtype=np.uint64) % 61)).astype(np.uint8)


def recv_exact(sock: socket.socket, n: int, start: bytes = b"") -> bytes:
    """``n`` bytes from ``sock`` (after ``start``, bytes already read). Raises
    ConnectionError when the peer closes the connection first."""
    buf = start
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        buf += chunk
    return buf


class Region:
    __slots__ = ("name", "gpa", "size", "fd", "offset", "map", "view", "pristine")

    def __init__(self, name: str, gpa: int, size: int, offset: int = 0, fill_pattern=True):
        self.name, self.gpa, self.size, self.offset = name, gpa, size, offset
        self.fd = os.memfd_create(f"hostile-{name}", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, offset + size)
        self.map = mmap.mmap(self.fd, offset + size)
        self.view = np.frombuffer(self.map, np.uint8)[offset:]
        self.pristine = pattern(gpa, size) if fill_pattern else np.zeros(size, np.uint8)
        self.view[:] = self.pristine

    @property
    def end(self) -> int:
        return self.gpa + self.size

    def close(self):
        del self.view
        self.map.close()
        os.close(self.fd)


class GuestMemory:
    """The guest's memory: ``ring`` (the vrings in its first RING_AREA bytes, zeroed;
    then indirect tables and headers written over the pattern) and data regions ``a``,
    ``b``, ``c`` (pattern). The gap between a and b is unmapped; b and c touch."""

    def __init__(self):
        self.ring = Region("ring", 0x0, 1 * MiB)
        self.ring.pristine[:RING_AREA] = 0          # the rings start zeroed
        self.ring.view[:] = self.ring.pristine
        self.data = [Region("a", 0x0100_0000, 2 * MiB),
                     Region("b", 0x0400_0000, 1 * MiB, offset=1 * MiB),
                     Region("c", 0x0410_0000, 64 << 10)]
        self.regions = [self.ring] + self.data

    def reset(self):
        for r in self.regions:
            r.view[:] = r.pristine

    def _find(self, gpa: int, n: int) -> tuple[Region, int]:
        for r in self.regions:
            if r.gpa <= gpa and gpa + n <= r.end:
                return r, gpa - r.gpa
        raise ValueError(f"{gpa:#x}+{n} is not inside one region")

    def write(self, gpa: int, data: bytes):
        r, off = self._find(gpa, len(data))
        r.view[off:off + len(data)] = np.frombuffer(data, np.uint8)

    def read(self, gpa: int, n: int) -> bytes:
        r, off = self._find(gpa, n)
        return r.view[off:off + n].tobytes()

    def changed_outside(self, allowed: list[tuple[int, int]]) -> list[tuple[str, int, int]]:
        """Data-region bytes that differ from the pattern outside the ``allowed`` (gpa,
        length) ranges: [(region, offset, byte)] (the first 8)."""
        out = []
        for r in self.data:
            diff = r.view != r.pristine
            for gpa, n in allowed:
                lo, hi = max(gpa, r.gpa), min(gpa + n, r.end)
                if lo < hi:
                    diff[lo - r.gpa:hi - r.gpa] = False
            for off in np.flatnonzero(diff)[:8 - len(out)]:
                out.append((r.name, int(off), int(r.view[off])))
        return out

    def changed_inside(self, ranges: list[tuple[int, int]]) -> bool:
        """Whether any data-region byte inside the (gpa, length) ranges differs from the
        pattern."""
        for r in self.data:
            for gpa, n in ranges:
                lo, hi = max(gpa, r.gpa), min(gpa + n, r.end)
                if lo < hi and (r.view[lo - r.gpa:hi - r.gpa] != r.pristine[lo - r.gpa:hi - r.gpa]).any():
                    return True
        return False

    def ring_bytes(self) -> bytes:
        """The ring region as it is now (rings, tables and headers the driver wrote)."""
        return self.ring.view.tobytes()

    def changed_values(self) -> np.ndarray:
        """The values of every data-region byte that differs from the pattern."""
        return np.concatenate([r.view[r.view != r.pristine] for r in self.data])

    def table(self) -> bytes:
        """The SET_MEM_TABLE payload."""
        body = struct.pack("<II", len(self.regions), 0)
        for r in self.regions:
            body += struct.pack("<QQQQ", r.gpa, r.size, USER_BASE + r.gpa, r.offset)
        return body

    def close(self):
        for r in self.regions:
            r.close()


class SplitRing:
    """The driver's side of a split virtqueue at ``base`` (guest-physical) in the ring
    region: descriptor table, avail ring, used ring."""

    packed = False

    def __init__(self, mem: GuestMemory, base: int, size: int = RING_SIZE):
        self.mem, self.size = mem, size
        self.desc, self.avail, self.used = base, base + 0x1000, base + 0x2000
        self.avail_idx = 0
        self.next_free = 0
        mem.write(self.avail, struct.pack("<HH", AVAIL_F_NO_INTERRUPT, 0))

    def addresses(self) -> tuple[int, int, int]:
        return self.desc, self.used, self.avail

    def set_desc(self, i: int, addr: int, length: int, flags: int, nxt: int = 0, table=None):
        self.mem.write((self.desc if table is None else table) + 16 * i,
                       struct.pack("<QIHH", addr & (2**64 - 1), length & 0xFFFFFFFF,
                                   flags & 0xFFFF, nxt & 0xFFFF))

    def chain(self, bufs: list[tuple[int, int, int]]) -> int:
        """Descriptors (addr, len, flags) linked with NEXT from the next free slots;
        returns the head's index."""
        head = self.next_free
        for k, (addr, length, flags) in enumerate(bufs):
            i = (head + k) % self.size
            last = k == len(bufs) - 1
            self.set_desc(i, addr, length, flags | (0 if last else NEXT), (i + 1) % self.size)
        self.next_free = (head + len(bufs)) % self.size
        return head

    def offer(self, heads: list[int], idx_step: int | None = None):
        """Put ``heads`` in the avail ring and move its index by ``idx_step`` (default:
        by how many there are)."""
        for k, h in enumerate(heads):
            self.mem.write(self.avail + 4 + 2 * ((self.avail_idx + k) % self.size),
                           struct.pack("<H", h & 0xFFFF))
        self.avail_idx = (self.avail_idx + (len(heads) if idx_step is None else idx_step)) & 0xFFFF
        self.mem.write(self.avail + 2, struct.pack("<H", self.avail_idx))

    def used_entries(self) -> list[tuple[int, int]]:
        """(id, len) of every used element the back-end wrote (up to the ring size)."""
        idx = struct.unpack("<H", self.mem.read(self.used + 2, 2))[0]
        n = min(idx, self.size)
        return [struct.unpack("<II", self.mem.read(self.used + 4 + 8 * k, 8)) for k in range(n)]


class PackedRing:
    """The driver's side of a packed virtqueue: descriptor ring, driver and device event
    suppression areas. Chains are placed at consecutive slots from the driver's index."""

    packed = True

    def __init__(self, mem: GuestMemory, base: int, size: int = RING_SIZE):
        self.mem, self.size = mem, size
        self.desc, self.driver_area, self.device_area = base, base + 0x1000, base + 0x2000
        self.avail_idx, self.wrap = 0, 1
        mem.write(self.driver_area, struct.pack("<HH", 0, 1))    # RING_EVENT_FLAGS_DISABLE

    def addresses(self) -> tuple[int, int, int]:
        return self.desc, self.device_area, self.driver_area

    def _flags(self, flags: int, wrap: int) -> int:
        return flags | (PACKED_AVAIL if wrap else PACKED_USED)

    def set_desc(self, i: int, addr: int, length: int, flags: int, buffer_id: int = 0, table=None):
        self.mem.write((self.desc if table is None else table) + 16 * (i % self.size if table is None else i),
                       struct.pack("<QIHH", addr & (2**64 - 1), length & 0xFFFFFFFF,
                                   buffer_id & 0xFFFF, flags & 0xFFFF))

    def chain(self, bufs: list[tuple[int, int, int]], buffer_id: int | None = None,
              raw_flags: bool = False) -> int:
        """A chain at the next slots, made available (the head's flags written last);
        returns the buffer id (the head's slot unless given)."""
        bid = self.avail_idx if buffer_id is None else buffer_id
        slots = []
        idx, wrap = self.avail_idx, self.wrap
        for k, (addr, length, flags) in enumerate(bufs):
            last = k == len(bufs) - 1
            f = flags | (0 if last else NEXT)
            slots.append((idx, addr, length, f if raw_flags else self._flags(f, wrap)))
            idx += 1
            if idx >= self.size:
                idx, wrap = idx - self.size, wrap ^ 1
        for i, addr, length, f in reversed(slots):          # the head last
            self.set_desc(i, addr, length, f, bid)
        self.avail_idx, self.wrap = idx, wrap
        return bid

    def used_entries(self) -> list[tuple[int, int]]:
        """(id, len) of descriptors the back-end marked used in its first lap (AVAIL and
        USED both set)."""
        out = []
        for i in range(self.size):
            _addr, length, bid, flags = struct.unpack("<QIHH", self.mem.read(self.desc + 16 * i, 16))
            if flags & PACKED_AVAIL and flags & PACKED_USED:
                out.append((bid, length))
        return out


class Driver:
    """One vhost-user connection of the hostile driver: the handshake, two vrings (0:
    the guest's rx, 1: its tx), kicks. ``closed_by_peer`` tells whether the back-end
    hung up on us."""

    def __init__(self, path: str, mem: GuestMemory, want: int, packed: bool,
                 timeout_s: float = 5.0):
        self.mem = mem
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_s)
        self.sock.connect(path)
        self.kick = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in range(2)]
        self.call = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in range(2)]
        self.offered = self.features = 0
        self.want, self.packed_wanted = want, packed
        self.rings: list = []

    # -- messages
    def send(self, request: int, payload: bytes = b"", fds=()) -> bool:
        """Send one message; False if the back-end has closed the connection."""
        try:
            _send(self.sock, HEADER.pack(request, VERSION, len(payload)) + payload, list(fds))
            return True
        except OSError:
            return False

    def _reply(self) -> bytes:
        head = recv_exact(self.sock, HEADER.size)
        size = HEADER.unpack(head)[2]
        return recv_exact(self.sock, size)

    def handshake(self, ring_addresses=None):
        """GET/SET_FEATURES, SET_OWNER, SET_MEM_TABLE, then NUM/BASE/ADDR/KICK/CALL for
        vrings 0 and 1. ``ring_addresses``: {vring: (desc, used, avail) gpa} overriding
        where the back-end is told the rings are (the rings this driver writes stay)."""
        self.send(GET_FEATURES)
        self.offered = struct.unpack("<Q", self._reply())[0]
        packed = self.packed_wanted and bool(self.offered >> F_RING_PACKED & 1)
        want = self.want | (1 << F_VERSION_1) | ((1 << F_RING_PACKED) if packed else 0)
        self.features = want & self.offered
        self.send(SET_OWNER)
        self.send(SET_FEATURES, struct.pack("<Q", self.features))
        self.send(SET_MEM_TABLE, self.mem.table(), [r.fd for r in self.mem.regions])
        cls = PackedRing if packed else SplitRing
        self.rings = [cls(self.mem, 0x8000 * v) for v in (0, 1)]
        for v, ring in enumerate(self.rings):
            desc, used, avail = (ring_addresses or {}).get(v, ring.addresses())
            self.send(SET_VRING_NUM, struct.pack("<II", v, ring.size))
            self.send(SET_VRING_BASE, struct.pack("<II", v, 0x8000 if packed else 0))
            self.send(SET_VRING_ADDR, struct.pack("<IIQQQQ", v, 0, USER_BASE + desc,
                                                  USER_BASE + used, USER_BASE + avail, 0))
            self.send(SET_VRING_KICK, struct.pack("<Q", v), [self.kick[v]])
            self.send(SET_VRING_CALL, struct.pack("<Q", v), [self.call[v]])

    @property
    def packed(self) -> bool:
        return bool(self.features >> F_RING_PACKED & 1)

    def kick_vring(self, v: int, times: int = 1):
        for _ in range(times):
            os.eventfd_write(self.kick[v], 1)

    def closed_by_peer(self) -> bool:
        """True when the back-end has closed the connection (reads what it sent)."""
        self.sock.setblocking(False)
        try:
            while True:
                if not self.sock.recv(4096):
                    return True
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        finally:
            self.sock.settimeout(5.0)

    def close(self):
        self.sock.close()
        for fd in self.kick + self.call:
            os.close(fd)
