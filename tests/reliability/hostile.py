"""A hostile virtio-net driver: a vhost-user front-end in Python that completes the real
handshake with guest memory it owns (memfds, regions with gaps between them), sets up
split or packed rings, and then writes adversarial ring contents and kicks.

The guest memory (``GuestMemory``): one ring region holding every ring, indirect table
and virtio-net header the driver writes, and three data regions. Each case gives every
8-byte word of guest memory a value of its own: ``mix(gpa) ^ key``, where ``mix`` is a
bijective 64-bit mixer of the word's guest-physical address and ``key`` the case's
64-bit key (``GuestMemory.reset``). So a byte read from the wrong address, from an
earlier case, from a zero page or from host memory differs from the byte the guest holds
there, and ``oracle`` compares what the back-end delivered with what the guest described,
byte for byte. ``GuestMemory`` also keeps ``expected``: the memory as the driver wrote
it, so that every byte the back-end wrote is ``view != expected``. Region B is backed
from the middle of its memfd (``mmap_offset`` 1 MiB; the first MiB of the file is zeros)
and region C is adjacent to B in guest-physical space but a separate mapping in the
back-end; every memfd has ``SLACK`` bytes after its region, so a back-end told a wrong
offset (the positive controls of ``ringfuzz``) reads other bytes of the file, not past
its end.

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
F_EVENT_IDX, F_IN_ORDER = 29, 35
HOST_OFFLOADS = (1 << F_CSUM) | (1 << F_HOST_TSO4) | (1 << F_HOST_TSO6) | (1 << F_HOST_UFO)

# descriptor flags
NEXT, WRITE, INDIRECT = 1, 2, 4
PACKED_AVAIL, PACKED_USED = 1 << 7, 1 << 15
AVAIL_F_NO_INTERRUPT = 1

NET_HDR_SIZE = 12                 # virtio_net_hdr_mrg_rxbuf (VERSION_1)
RING_SIZE = 256

# requests (QEMU docs/interop/vhost-user.rst)
GET_FEATURES, SET_FEATURES, SET_OWNER, SET_MEM_TABLE = 1, 2, 3, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL = 12, 13

RING_AREA = 0x10000               # the vrings, at the start of the ring region
USER_BASE = 0x7F00_0000_0000      # the driver's "virtual" addresses: USER_BASE + gpa
MiB = 1 << 20


_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_M1_INV, _M2_INV = pow(_M1, -1, 2**64), pow(_M2, -1, 2**64)
SLACK = 64 << 10                  # file bytes after each region (wrong-offset controls)


def mix(words: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser of uint64 ``words``: a bijection of 64-bit values."""
    z = words.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


def unmix(value: int) -> int:
    """The inverse of ``mix`` for one value (the address a word's value came from)."""
    def unshift(z: int, k: int) -> int:
        out = z
        for _ in range(64 // k + 1):
            out = z ^ (out >> k)
        return out & (2**64 - 1)
    z = unshift(value, 31)
    z = unshift((z * _M2_INV) & (2**64 - 1), 27)
    return unshift((z * _M1_INV) & (2**64 - 1), 30)


def keyed(gpa: int, n: int, key: int) -> np.ndarray:
    """The bytes of guest-physical addresses gpa..gpa+n-1 under ``key`` (gpa 8-aligned
    or not)."""
    first = gpa & ~7
    words = mix(np.arange(first, gpa + n + 7, 8, dtype=np.uint64)) ^ np.uint64(key)
    return words.view(np.uint8)[gpa - first:gpa - first + n]


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
    __slots__ = ("name", "gpa", "size", "fd", "offset", "map", "view", "view64", "base64",
                 "expected", "zeroed")

    def __init__(self, name: str, gpa: int, size: int, offset: int = 0, zeroed: int = 0):
        assert gpa % 8 == 0 and size % 8 == 0
        self.name, self.gpa, self.size, self.offset = name, gpa, size, offset
        self.zeroed = zeroed                          # the first bytes, zero in every case
        self.fd = os.memfd_create(f"hostile-{name}", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, offset + size + SLACK)
        self.map = mmap.mmap(self.fd, offset + size + SLACK)
        self.view = np.frombuffer(self.map, np.uint8)[offset:offset + size]
        self.view64 = self.view.view(np.uint64)
        self.base64 = mix(np.arange(gpa, gpa + size, 8, dtype=np.uint64))
        self.expected = np.zeros(size, np.uint8)     # the content as the driver wrote it

    @property
    def end(self) -> int:
        return self.gpa + self.size

    def reset(self, key: int):
        np.bitwise_xor(self.base64, np.uint64(key), out=self.expected.view(np.uint64))
        self.expected[:self.zeroed] = 0
        self.view[:] = self.expected

    def close(self):
        del self.view, self.view64
        self.map.close()
        os.close(self.fd)


class GuestMemory:
    """The guest's memory: ``ring`` (the vrings in its first RING_AREA bytes, zero at the
    start of every case; then indirect tables and headers the driver writes) and data
    regions ``a``, ``b``, ``c``. The gap between a and b is unmapped; b and c touch.
    ``described``: every (gpa, length) a descriptor written this case named (rings and
    indirect tables; the oracle's candidates for what a packet may be made of)."""

    def __init__(self):
        self.ring = Region("ring", 0x0, 1 * MiB, zeroed=RING_AREA)
        self.data = [Region("a", 0x0100_0000, 2 * MiB),
                     Region("b", 0x0400_0000, 1 * MiB, offset=1 * MiB),
                     Region("c", 0x0410_0000, 64 << 10)]
        self.regions = [self.ring] + self.data
        self.key = 0
        self.described: list[tuple[int, int]] = []
        self.reset(0)

    def reset(self, key: int):
        """Every word to ``mix(gpa) ^ key`` (the rings' area to zero); forgets what was
        described."""
        self.key = key
        for r in self.regions:
            r.reset(key)
        self.described = []
        self._slot_fields: dict[int, tuple[set[int], set[int]]] = {}

    def rewritten(self, slot_gpa: int, addr: int, length: int):
        """A descriptor at ``slot_gpa`` now holds (addr, length) while the back-end may be
        reading it: a reader takes the address and the length in separate loads, so each
        can come from any version the slot held. Every pairing of the versions' fields is
        described (and nothing else: a TOCTOU race is exact about what it can yield)."""
        addrs, lengths = self._slot_fields.setdefault(slot_gpa, (set(), set()))
        addr, length = addr & (2**64 - 1), length & 0xFFFFFFFF
        if addr not in addrs:
            addrs.add(addr)
            self.described += [(addr, n) for n in lengths]
        if length not in lengths:
            lengths.add(length)
            self.described += [(a, length) for a in addrs]

    def _find(self, gpa: int, n: int) -> tuple[Region, int]:
        for r in self.regions:
            if r.gpa <= gpa and gpa + n <= r.end:
                return r, gpa - r.gpa
        raise ValueError(f"{gpa:#x}+{n} is not inside one region")

    def write(self, gpa: int, data: bytes):
        """The driver writes (the guest's memory and its expected image both)."""
        r, off = self._find(gpa, len(data))
        arr = np.frombuffer(data, np.uint8)
        r.view[off:off + len(data)] = arr
        r.expected[off:off + len(data)] = arr

    def read(self, gpa: int, n: int) -> bytes:
        r, off = self._find(gpa, n)
        return r.view[off:off + n].tobytes()

    def expected_span(self, gpa: int, n: int) -> bytes | None:
        """What the guest holds at gpa..gpa+n-1 as the driver wrote it, across touching
        regions (b into c); None when any of it is not guest memory."""
        if n < 0 or gpa < 0 or gpa + n > 2**64:
            return None
        out = b""
        while n > 0:
            for r in self.regions:
                if r.gpa <= gpa < r.end:
                    take = min(n, r.end - gpa)
                    out += r.expected[gpa - r.gpa:gpa - r.gpa + take].tobytes()
                    gpa, n = gpa + take, n - take
                    break
            else:
                return None
        return out

    def device_writes(self, exempt: list[tuple[int, int]] = ()) -> list[tuple[int, int]]:
        """Every byte the back-end wrote (memory differing from what the driver wrote),
        outside the ``exempt`` (gpa, length) ranges: [(gpa, value)]."""
        out = []
        for r in self.regions:
            words = np.flatnonzero(r.view64 != r.expected.view(np.uint64))
            if not words.size:
                continue
            diff = np.zeros(r.size, bool)
            for w in words.tolist():
                diff[8 * w:8 * w + 8] = r.view[8 * w:8 * w + 8] != r.expected[8 * w:8 * w + 8]
            for gpa, n in exempt:
                lo, hi = max(gpa, r.gpa), min(gpa + n, r.end)
                if lo < hi:
                    diff[lo - r.gpa:hi - r.gpa] = False
            out += [(r.gpa + int(o), int(r.view[o])) for o in np.flatnonzero(diff)]
        return out

    def shadow(self, region: Region, content: np.ndarray | None) -> int:
        """A memfd holding ``content`` (zeros: None) where ``region`` keeps its bytes
        (same offset): what a back-end mapping it reads instead of the guest's memory.
        The caller closes the fd."""
        fd = os.memfd_create(f"hostile-shadow-{region.name}", os.MFD_CLOEXEC)
        os.ftruncate(fd, region.offset + region.size + SLACK)
        if content is not None:
            os.pwrite(fd, content.tobytes(), region.offset)
        return fd

    def table(self, override: dict | None = None) -> tuple[bytes, list[int]]:
        """The SET_MEM_TABLE payload and its fds. ``override``: {region name: (fd,
        mmap offset)} told to the back-end instead of the region's own (the positive
        controls: the back-end then reads other bytes than the guest holds)."""
        body = struct.pack("<II", len(self.regions), 0)
        fds = []
        for r in self.regions:
            fd, offset = (override or {}).get(r.name, (r.fd, r.offset))
            body += struct.pack("<QQQQ", r.gpa, r.size, USER_BASE + r.gpa, offset)
            fds.append(fd)
        return body, fds

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
        self.mem.described.append((addr & (2**64 - 1), length & 0xFFFFFFFF))
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
        self.chains: dict[int, list[tuple[int, int, int]]] = {}     # buffer id -> buffers
        mem.write(self.driver_area, struct.pack("<HH", 0, 1))    # RING_EVENT_FLAGS_DISABLE

    def addresses(self) -> tuple[int, int, int]:
        return self.desc, self.device_area, self.driver_area

    def _flags(self, flags: int, wrap: int) -> int:
        return flags | (PACKED_AVAIL if wrap else PACKED_USED)

    def set_desc(self, i: int, addr: int, length: int, flags: int, buffer_id: int = 0, table=None):
        self.mem.described.append((addr & (2**64 - 1), length & 0xFFFFFFFF))
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
        self.chains[bid & 0xFFFF] = list(bufs)
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
        # where the back-end was told the rings are, and the largest size it was told:
        # the areas it may write as a device (oracle.device_areas)
        self.told_addresses: list[tuple[int, int, int]] = []
        self.told_max_num = RING_SIZE

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

    def handshake(self, ring_addresses=None, memory_override=None):
        """GET/SET_FEATURES, SET_OWNER, SET_MEM_TABLE, then NUM/BASE/ADDR/KICK/CALL for
        vrings 0 and 1. ``ring_addresses``: {vring: (desc, used, avail) gpa} overriding
        where the back-end is told the rings are (the rings this driver writes stay).
        ``memory_override``: see ``GuestMemory.table``."""
        self.send(GET_FEATURES)
        self.offered = struct.unpack("<Q", self._reply())[0]
        packed = self.packed_wanted and bool(self.offered >> F_RING_PACKED & 1)
        want = self.want | (1 << F_VERSION_1) | ((1 << F_RING_PACKED) if packed else 0)
        self.features = want & self.offered
        self.send(SET_OWNER)
        self.send(SET_FEATURES, struct.pack("<Q", self.features))
        body, fds = self.mem.table(memory_override)
        self.send(SET_MEM_TABLE, body, fds)
        cls = PackedRing if packed else SplitRing
        self.rings = [cls(self.mem, 0x8000 * v) for v in (0, 1)]
        for v, ring in enumerate(self.rings):
            desc, used, avail = (ring_addresses or {}).get(v, ring.addresses())
            self.told_addresses.append((desc, used, avail))
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
