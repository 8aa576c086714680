"""The hostile-guest fuzz's judge: what a vhost-user back-end may deliver from the
guest's rings and write into the guest's memory, decided byte for byte against what the
driver wrote (``hostile.GuestMemory``: every word of guest memory is ``mix(gpa) ^ key``
for the case's key, and ``expected`` is the memory as the driver wrote it).

Guest to host (a dequeued packet, ``explain_packet``): the packet must be the bytes of
whole buffers that descriptors of this case named (``GuestMemory.described``: rings and
indirect tables, every version a TOCTOU thread wrote), one after another, as the guest
holds them, where the first buffer may lose its first 0..12 bytes (the virtio-net header
the back-end consumes, which may span buffers), and no buffer more often in one packet
than descriptors named it.
Allowed besides: dropping any chain, and
on the port offering host offloads the two bytes of a software checksum at the place a
header of this case asked for one. Not allowed: truncating a buffer, a byte from another
address, another case, a zero page, the mempool's canary or the host. The ring area
explains nothing unless a descriptor named it.

Host to guest (``expected_rx_writes``): the back-end may write its used ring (split) or
descriptor ring and device area (packed) where it was told they are, and into the buffers
of the chains its used elements name: per packet a virtio-net header (ten zero bytes and
``num_buffers``) and the packet's bytes, in order, filling each element's buffers up to
the element's length (where offered buffers overlap, any of the values written there).
Every other byte of guest memory, the ring region included, stays as the driver wrote it.
"""

from __future__ import annotations

import struct
from collections import defaultdict

import numpy as np

from tests.reliability import hostile as H

NET_HDR = H.NET_HDR_SIZE
MAX_SPAN = 8 << 20                 # larger than all guest memory: never a candidate


class Candidates:
    """The buffers this case described that lie wholly in guest memory, indexed by
    their first bytes (and, for a packet's first buffer, by the bytes after 1..12 header
    bytes)."""

    def __init__(self, mem: H.GuestMemory):
        self.mem = mem
        self.bufs: list[bytes] = []
        self.times: list[int] = []          # how many descriptors named each buffer
        self.at_start: dict[bytes, list[int]] = defaultdict(list)    # first 8 bytes (k=0)
        self.at_first: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
        seen: dict[tuple[int, int], int] = {}
        for gpa, n in mem.described:
            if (gpa, n) in seen:
                self.times[seen[(gpa, n)]] += 1
                continue
            if n == 0 or n > MAX_SPAN:
                continue
            data = mem.expected_span(gpa, n)
            if data is None:
                continue
            i = seen[(gpa, n)] = len(self.bufs)
            self.times.append(1)
            self.bufs.append(data)
            self.at_start[data[:8]].append(i)
            for k in range(0, min(NET_HDR, n - 1) + 1):
                self.at_first[data[k:k + 8]].append((i, k))
        # the key lengths below 8 that exist (buffers, or their rest, shorter than 8)
        self.short_start = sorted({len(key) for key in self.at_start if len(key) < 8})
        self.short_first = sorted({len(key) for key in self.at_first if len(key) < 8})
        self.explained: dict[bytes, tuple[bool, int]] = {}      # a chain dequeued again

    def following(self, packet: bytes, p: int, first: bool, wild: set[int],
                  truncated: bool = False):
        """(buffer, position after it) for each buffer that matches the packet at ``p``
        (whole, to its end; the first may start 0..12 bytes in; with ``truncated`` the
        packet may end inside the last)."""
        out = []
        if wild:
            # the checksum bytes may sit in the first 8: compare every buffer, masked
            pairs = [(i, k) for i in range(len(self.bufs))
                     for k in (range(0, min(NET_HDR, len(self.bufs[i]) - 1) + 1) if first else (0,))]
        elif first:
            pairs = list(self.at_first.get(packet[p:p + 8], ()))
            for r in self.short_first:
                pairs += [(i, k) for i, k in self.at_first.get(packet[p:p + r], ())
                          if len(self.bufs[i]) - k == r]
        else:
            pairs = [(i, 0) for i in self.at_start.get(packet[p:p + 8], ())]
            for r in self.short_start:
                pairs += [(i, 0) for i in self.at_start.get(packet[p:p + r], ())
                          if len(self.bufs[i]) == r]
        for i, k in pairs:
            want = self.bufs[i][k:]
            end = p + len(want)
            if end > len(packet):
                rest = packet[p:]
                if truncated and (want.startswith(rest) or (
                        wild and _equal_but(rest, want[:len(rest)], p, wild))):
                    out.append((i, len(packet)))
                continue
            got = packet[p:end]
            if got == want or (wild and _equal_but(got, want, p, wild)):
                out.append((i, end))
        return out


def _equal_but(got: bytes, want: bytes, p: int, wild: set[int]) -> bool:
    return all(a == b or (p + j) in wild for j, (a, b) in enumerate(zip(got, want)))


MAX_STEPS = 20_000                 # a search longer than this is a failure to explain


def explain_packet(packet: bytes, cands: Candidates, wild: set[int] = frozenset(),
                   truncated: bool = False) -> tuple[bool, int]:
    """Whether ``packet`` is a sequence of whole described buffers, each no more often
    than descriptors named it (see the module); ``truncated``: a capture's copy cut at
    its snap length, whose last buffer may end early. Returns (explained, the longest
    explained prefix)."""
    if not packet:
        return True, 0
    if not wild and not truncated and packet in cands.explained:
        return cands.explained[packet]
    verdict = _search(packet, cands, wild, truncated)
    if not truncated:
        cands.explained[packet] = verdict
    return verdict


def _search(packet: bytes, cands: Candidates, wild, truncated=False) -> tuple[bool, int]:
    best, steps = 0, 0
    stack: list[tuple[int, tuple]] = [(0, ())]
    while stack and steps < MAX_STEPS:
        p, used = stack.pop()
        steps += 1
        best = max(best, p)
        for i, end in cands.following(packet, p, not used, wild, truncated):
            if used.count(i) >= cands.times[i]:
                continue
            if end == len(packet):
                return True, end
            stack.append((end, used + (i,)))
    return False, best


def describe_bytes(data: bytes, key: int, canary: int) -> str:
    """Where bytes that no buffer explains come from, as far as can be told: guest memory
    of this case (which address), zeros, the canary, or unknown."""
    if not data.strip(b"\0"):
        return "zeros"
    if not data.strip(bytes([canary])):
        return f"the mempool canary {canary:#x} (bytes the back-end never wrote)"
    for s in range(min(8, len(data) - 7)):
        word = int.from_bytes(data[s:s + 8], "little")
        gpa = H.unmix(word ^ key)
        if gpa % 8 == 0 and gpa < 1 << 32:
            return f"this case's guest memory at {gpa - s:#x}"
    return "not this case's guest memory"


# -- host to guest -----------------------------------------------------------------------

def _walk_split(mem: H.GuestMemory, ring, head: int) -> list[tuple[int, int, int]] | None:
    """The buffers of the chain at ``head`` of a split ring as the driver wrote it:
    [(addr, len, flags)], or None when there is no chain to follow (an index out of range,
    a loop, an indirect table outside memory or of fewer than one or more than ``size``
    entries). Read leniently where the driver broke a rule and following it harms no one
    (virtio 1.1 §2.6.5.3.1): an INDIRECT flag inside a table or after the head names a
    plain buffer, NEXT beside INDIRECT is ignored, a table's length counts whole entries."""
    def desc(base, i):
        raw = mem.expected_span(base + 16 * i, 16)
        return None if raw is None else struct.unpack("<QIHH", raw)
    if head >= ring.size:
        return None
    out, i, seen = [], head, 0
    while True:
        d = desc(ring.desc, i)
        seen += 1
        if d is None or seen > ring.size:
            return None
        addr, length, flags, nxt = d
        if flags & H.INDIRECT and not out:
            n = length // 16
            if not 1 <= n <= ring.size:
                return None
            j, inner = 0, 0
            while True:
                e = desc(addr, j) if j < n else None
                inner += 1
                if e is None or inner > n:
                    return None
                out.append(e[:3])
                if not e[2] & H.NEXT:
                    return out
                j = e[3]
        out.append((addr, length, flags))
        if not flags & H.NEXT:
            return out
        i = nxt
        if i >= ring.size:
            return None


def device_areas(drv: H.Driver) -> list[tuple[int, int]]:
    """(gpa, length) the back-end may write as a device: per vring, where it was told
    the used ring is (split) or the descriptor ring and device area are (packed), for the
    largest ring size it was told."""
    out = []
    for desc, used, _avail in drv.told_addresses:
        if drv.packed:
            out += [(desc, 16 * drv.told_max_num), (used, 4)]
        else:
            out.append((used, 6 + 8 * drv.told_max_num))
    return out


def expected_rx_writes(mem: H.GuestMemory, drv: H.Driver, used: list[tuple[int, int]],
                       frames: list[bytes]):
    """What the used elements ``used`` (id, len), in order, say the back-end wrote for
    ``frames`` (the packets it took, in order): ([(gpa, bytes)], read-only buffers
    written, problems). Packets use mergeable buffers (every case negotiates them)."""
    ring = drv.rings[0]
    writes, problems = [], []
    read_only = False
    chains = {}
    for k, (bid, _length) in enumerate(used):
        chain = _walk_split(mem, ring, bid) if not ring.packed else ring.chains.get(bid)
        if chain is not None and ring.packed:
            chain = _resolve_packed(mem, chain)
        if chain is None:
            problems.append(f"used element {k} names id {bid}, which is not a valid chain")
            return writes, read_only, problems
        chains[k] = chain
    k = 0
    for j, frame in enumerate(frames):
        need = NET_HDR + len(frame)
        taken, elems = 0, []
        while taken < need:
            if k >= len(used):
                problems.append(f"packet {j} of {len(frames)} taken, but its bytes are not all "
                                f"in used elements ({taken} of {need})")
                return writes, read_only, problems
            elems.append(k)
            taken += used[k][1]
            k += 1
        if taken != need:
            problems.append(f"packet {j}: used lengths {[used[e][1] for e in elems]} add up to "
                            f"{taken}, not {need}")
            return writes, read_only, problems
        stream = bytes(10) + struct.pack("<H", len(elems)) + frame
        pos = 0
        for e in elems:
            left = used[e][1]
            for addr, length, flags in chains[e]:
                if left == 0:
                    break
                n = min(left, length)
                if mem.expected_span(addr, n) is None:
                    problems.append(f"used element {e} would put bytes outside guest memory at "
                                    f"{addr:#x}+{n}")
                    return writes, read_only, problems
                writes.append((addr, stream[pos:pos + n]))
                read_only |= not flags & H.WRITE
                pos, left = pos + n, left - n
            if left:
                problems.append(f"used element {e} claims {used[e][1]} bytes, more than its "
                                f"buffers hold")
                return writes, read_only, problems
    if k != len(used):
        problems.append(f"{len(used) - k} used elements beyond the {len(frames)} packets taken")
    return writes, read_only, problems


def _resolve_packed(mem: H.GuestMemory, chain):
    """A packed chain's buffers, an indirect table at its head read as the driver wrote it
    (as leniently as ``_walk_split``; a table shorter than one entry is an empty chain,
    used with length 0)."""
    out = []
    for k, (addr, length, flags) in enumerate(chain):
        if flags & H.INDIRECT and k == 0:
            n = length // 16
            if n == 0:
                return []               # DPDK 22.11 takes it as a chain of no buffers
            raw = mem.expected_span(addr, 16 * n) if n <= 256 else None
            if raw is None:
                return None
            for o in range(0, 16 * n, 16):
                a, size, _id, f = struct.unpack("<QIHH", raw[o:o + 16])
                out.append((a, size, f))
            return out
        out.append((addr, length, flags))
    return out


def unexpected_writes(mem: H.GuestMemory, writes: list[tuple[int, bytes]],
                      exempt: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Bytes of guest memory that differ from the driver's writes plus ``writes``, outside
    ``exempt``: [(gpa, found, expected)] (the first 16). Where the guest offered
    overlapping buffers, any of the values written there is accepted (the order in which
    a back-end fills buffers of one batch is its own)."""
    after = {r.name: r.expected.copy() for r in mem.regions}
    times = {r.name: np.zeros(r.size, np.uint8) for r in mem.regions}
    pieces = []
    for gpa, data in writes:
        for r in mem.regions:
            lo, hi = max(gpa, r.gpa), min(gpa + len(data), r.end)
            if lo < hi:
                after[r.name][lo - r.gpa:hi - r.gpa] = memoryview(data)[lo - gpa:hi - gpa]
                times[r.name][lo - r.gpa:hi - r.gpa] += 1
                pieces.append((r, lo, memoryview(data)[lo - gpa:hi - gpa]))
    out = []
    for r in mem.regions:
        diff = r.view != after[r.name]
        for gpa, n in exempt:
            lo, hi = max(gpa, r.gpa), min(gpa + n, r.end)
            if lo < hi:
                diff[lo - r.gpa:hi - r.gpa] = False
        overlap = diff & (times[r.name] > 1)
        for o in overlap.nonzero()[0].tolist():
            found = int(r.view[o])
            if any(q is r and lo <= r.gpa + o < lo + len(piece) and piece[r.gpa + o - lo] == found
                   for q, lo, piece in pieces):
                diff[o] = False
        for o in diff.nonzero()[0][:16 - len(out)].tolist():
            out.append((r.gpa + o, int(r.view[o]), int(after[r.name][o])))
    return out
