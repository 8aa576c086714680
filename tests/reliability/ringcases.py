"""The case families of the hostile-guest fuzz: each ``fam_*`` writes one kind of bad
ring contents through a ``Ctx`` (the case's rng, guest memory and driver) and kicks;
``ringfuzz.Runner`` runs them and judges. docs/reliability.md has the table of families.
"""

from __future__ import annotations

import os
import random
import struct
import threading
import time

from tests.helpers import cpus
from tests.reliability import hostile as H

NEEDS_CSUM = 1
NET_HDR = H.NET_HDR_SIZE
SHORT_HEADER_REACH = 4096      # > 11 + the largest packet ringfuzz.Runner._send sends


def case_seed(seed: int, index: int | str) -> str:
    return f"ringfuzz/{seed}/{index}"


class Ctx:
    """What a family writes with: the case's rng, guest memory and driver, and helpers
    for buffers, headers and indirect tables (all in the ring region or data regions)."""

    def __init__(self, rng: random.Random, mem: H.GuestMemory, drv: H.Driver):
        self.rng, self.mem, self.drv = rng, mem, drv
        self.tx, self.rx = drv.rings[1], drv.rings[0]
        self._hdr_next = 0x80000
        self._table_next = 0x20000
        self.headers: list[bytes] = []
        self.table_entries: list[tuple[int, int, int, int]] = []
        self.threads: list[threading.Thread] = []
        self.posted: list[list[tuple[int, int, int]]] = []     # chains made available
        self.placement_note = ""          # where ring_placement put the rings (set by the runner)
        self.reader_cpu = cpus()[0]       # where the target dequeues (set by the runner)
        self.stop = threading.Event()

    # -- buffers
    def buf(self, n: int | None = None, margin: int = 0) -> tuple[int, int]:
        """A buffer inside one data region, ``margin`` bytes or more before its end:
        (gpa, length)."""
        rng = self.rng
        n = rng.choice([14, 60, 64, 200, 1500, 2048, 4000]) if n is None else n
        r = rng.choice([r for r in self.mem.data if r.size >= n + margin])
        return r.gpa + rng.randrange(r.size - n - margin + 1), n

    def bad_buf(self) -> tuple[int, int, str]:
        """A buffer at least partly outside guest memory: (gpa, length, where)."""
        rng = self.rng
        a, b, c = self.mem.data
        n = rng.choice([1, 64, 1500, 4096, 65536])
        where = rng.choice(["gap_low", "gap_mid", "beyond", "straddle_a", "straddle_c",
                            "wrap", "high"])
        if where == "gap_low":                          # between the ring region and a
            gpa = self.mem.ring.end + rng.randrange(a.gpa - self.mem.ring.end - n)
        elif where == "gap_mid":                        # between a and b
            gpa = a.end + rng.randrange(b.gpa - a.end - n)
        elif where == "beyond":
            gpa = c.end + rng.randrange(1 << 30)
        elif where == "straddle_a":                     # a's end into the gap
            n = max(n, 2)
            gpa = a.end - rng.randrange(1, n)
        elif where == "straddle_c":                     # c's end into nothing
            n = max(n, 2)
            gpa = c.end - rng.randrange(1, n)
        elif where == "wrap":                           # addr + len wraps 2^64
            n = max(n, 2)
            gpa = 2**64 - rng.randrange(1, n)
        else:
            gpa = rng.getrandbits(64) | (1 << 63)
        return gpa, n, where

    def header(self, **fields) -> int:
        """A virtio-net header (virtio_net_hdr_mrg_rxbuf) in the ring region; its gpa.
        Without ``fields`` its bytes stay the case's keyed memory (a back-end that did not
        negotiate offloads ignores them, and a header of zeros would let a zero page pass
        for header bytes); with them the other fields are 0."""
        gpa = self._hdr_next
        self._hdr_next += 16
        if not fields:
            return gpa
        f = dict(flags=0, gso_type=0, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0,
                 num_buffers=0)
        f.update(fields)
        data = struct.pack("<BBHHHHH", f["flags"] & 0xFF, f["gso_type"] & 0xFF, f["hdr_len"] & 0xFFFF,
                           f["gso_size"] & 0xFFFF, f["csum_start"] & 0xFFFF,
                           f["csum_offset"] & 0xFFFF, f["num_buffers"] & 0xFFFF)
        self.mem.write(gpa, data)
        self.headers.append(data)
        return gpa

    def table(self, entries: list[tuple[int, int, int, int]]) -> int:
        """An indirect table of (addr, len, flags, next) in the ring region; its gpa. On a
        packed ring ``next`` is written as the buffer id."""
        gpa = self._table_next
        self._table_next += (16 * len(entries) + 0xFFF) & ~0xFFF
        self.table_entries += entries
        self.mem.described += [(addr & (2**64 - 1), length & 0xFFFFFFFF)
                               for addr, length, _f, _n in entries]
        body = b""
        for addr, length, flags, nxt in entries:
            tail = (struct.pack("<HH", nxt & 0xFFFF, flags & 0xFFFF) if self.tx.packed
                    else struct.pack("<HH", flags & 0xFFFF, nxt & 0xFFFF))
            body += struct.pack("<QI", addr & (2**64 - 1), length & 0xFFFFFFFF) + tail
        self.mem.write(gpa, body)
        return gpa

    def packet(self, extra: list[tuple[int, int, int]] | None = None) -> list[tuple[int, int, int]]:
        """A well-formed tx chain: a 12-byte header descriptor, then 1..3 data buffers."""
        out = [(self.header(), H.NET_HDR_SIZE, 0)]
        for _ in range(self.rng.randrange(1, 4)):
            out.append((*self.buf(), 0))
        return out + (extra or [])

    def post(self, chains: list[list[tuple[int, int, int]]], ring=None):
        """Make the chains available on ``ring`` (the tx ring by default) and kick."""
        ring = ring or self.tx
        self.posted += chains
        heads = [ring.chain(c) for c in chains]
        if not ring.packed:
            ring.offer(heads)
        self.drv.kick_vring(1 if ring is self.tx else 0)
        return heads

    def background(self, fn, cpu: int | None = None):
        """Run ``fn(stop_event)`` in a thread while the target works (TOCTOU, storms);
        ``cpu``: the thread runs there only."""
        def run(stop):
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})        # 0: this thread
            fn(stop)
        t = threading.Thread(target=run, args=(self.stop,), daemon=True)
        self.threads.append(t)
        t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)


# -- the families (tx side unless named rx_): each writes and kicks; returns a note ----------

def fam_desc_loop(c: Ctx):
    """A chain that loops: split: a descriptor's next points back into its own chain
    (self, two-, n-cycles); packed: every slot of the ring carries NEXT."""
    rng = c.rng
    if c.tx.packed:
        chain = [(*c.buf(), 0) for _ in range(c.tx.size)]
        c.tx.chain(chain)                                # NEXT on all but the last...
        c.tx.set_desc(c.tx.size - 1, *chain[-1][:2], H.NEXT | H.PACKED_AVAIL, 0)
        c.drv.kick_vring(1)
        return "all-NEXT ring"
    n = rng.choice([1, 2, 3, rng.randrange(4, c.tx.size + 1)])
    chain = c.packet()[:1] + [(*c.buf(), 0) for _ in range(n - 1)] if n > 1 else [(*c.buf(), 0)]
    head = c.tx.chain(chain)
    last = (head + len(chain) - 1) % c.tx.size
    back = (head + rng.randrange(len(chain))) % c.tx.size
    addr, length, _ = chain[-1]
    c.tx.set_desc(last, addr, length, H.NEXT, back)
    c.tx.offer([head])
    c.drv.kick_vring(1)
    return f"{len(chain)}-cycle"



def fam_chain_too_long(c: Ctx):
    """More descriptors than the ring has: an indirect table of size+k entries, or (packed)
    a direct chain running over the end of the ring."""
    rng = c.rng
    n = c.tx.size + rng.choice([1, 2, rng.randrange(3, 4 * c.tx.size)])
    if c.tx.packed and rng.random() < 0.5:
        c.tx.chain([(*c.buf(64), 0) for _ in range(c.tx.size + 1)][: c.tx.size])
        c.drv.kick_vring(1)
        return "direct, whole ring"
    entries = [(c.header(), H.NET_HDR_SIZE, H.NEXT, 1)]
    entries += [(*c.buf(64), H.NEXT, k + 2) for k in range(n - 1)]
    entries[-1] = (*entries[-1][:2], 0, 0)
    c.post([[(c.table(entries), 16 * n, H.INDIRECT)]])
    return f"indirect {n}"


def fam_next_out_of_range(c: Ctx):
    """split: next >= ring size; packed: buffer ids out of range and repeated."""
    rng = c.rng
    if c.tx.packed:
        for _ in range(rng.randrange(1, 8)):
            c.tx.chain(c.packet(), buffer_id=rng.choice([c.tx.size, 0xFFFF, rng.getrandbits(16), 0]))
        c.drv.kick_vring(1)
        return "bad ids"
    chain = c.packet()
    head = c.tx.chain(chain)
    k = rng.randrange(len(chain))
    addr, length, _ = chain[k]
    c.tx.set_desc((head + k) % c.tx.size, addr, length, H.NEXT,
                  rng.choice([c.tx.size, c.tx.size + 1, 0xFFFF, rng.randrange(c.tx.size, 0x10000)]))
    c.tx.offer([head])
    c.drv.kick_vring(1)
    return f"next out of range at {k}"


def fam_indirect_outside(c: Ctx):
    """An indirect descriptor whose table lies outside guest memory (gaps, beyond,
    straddling a region's end, wrapping 2^64)."""
    gpa, _n, where = c.bad_buf()
    length = c.rng.choice([16, 32, 16 * 16, 4096])
    c.post([c.packet()[:1] + [(gpa, length, H.INDIRECT)]] if c.rng.random() < 0.3
           else [[(gpa, length, H.INDIRECT)]])
    return where


def fam_indirect_nested(c: Ctx):
    """An indirect table holding INDIRECT descriptors (nested), or an INDIRECT descriptor
    with NEXT, or after direct ones."""
    rng = c.rng
    variant = rng.randrange(3)
    entries = [(*c.buf(), 0, 0)]
    if variant != 2:               # the header, when the table starts the chain
        entries.insert(0, (c.header(), H.NET_HDR_SIZE, H.NEXT, 1))
    inner = c.table(entries)
    if variant == 0:
        outer = c.table([(inner, 32, H.INDIRECT, 0)])
        c.post([[(outer, 16, H.INDIRECT)]])
    elif variant == 1:
        c.post([[(inner, 32, H.INDIRECT | H.NEXT)] + [(*c.buf(), 0)]])
    else:
        c.post([c.packet() + [(inner, 32, H.INDIRECT)]])
    return ["nested", "indirect+next", "after direct"][variant]


def fam_indirect_length(c: Ctx):
    """An indirect table whose length is 0, not a multiple of 16, larger than the table
    that follows, or 2^32 - 1."""
    rng = c.rng
    entries = [(c.header(), H.NET_HDR_SIZE, H.NEXT, 1), (*c.buf(), 0, 0)]
    length = rng.choice([0, 1, 8, 15, 17, 31, 33, 16 * 2 + rng.randrange(1, 16),
                         16 * (c.tx.size + 1), 0xFFFFFFFF, 0xFFFFFFF0])
    c.post([[(c.table(entries), length, H.INDIRECT)]])
    return f"len {length}"


def fam_addr_wrap(c: Ctx):
    """A data buffer whose addr + len wraps 2^64."""
    k = c.rng.randrange(1, 4096)
    c.post([c.packet()[:1] + [(2**64 - k, k + c.rng.choice([1, 64, 4096]), 0)]])
    return f"2^64-{k}"


def fam_addr_gap(c: Ctx):
    """A data buffer in a gap between regions or beyond all memory."""
    gpa, n, where = c.bad_buf()
    c.post([c.packet() + [(gpa, n, 0)]] if c.rng.random() < 0.5 else [c.packet()[:1] + [(gpa, n, 0)]])
    return where


def fam_addr_straddle(c: Ctx):
    """Buffers across region ends: b into c (adjacent in guest-physical space, separate
    mappings: a valid buffer), a into the gap, c into nothing."""
    rng = c.rng
    a, b, cc = c.mem.data
    where = rng.choice(["b_into_c", "a_into_gap", "c_into_nothing"])
    n = rng.choice([2, 64, 1500, 8192])
    k = rng.randrange(1, n)
    gpa = {"b_into_c": b.end - k, "a_into_gap": a.end - k, "c_into_nothing": cc.end - k}[where]
    c.post([c.packet()[:1] + [(gpa, n, 0)]])
    return where


def fam_lengths(c: Ctx):
    """Lengths 0, 1, 11 (shorter than the header), 2^32 - 1 in the header and data
    descriptors; a packet that is only a header."""
    rng = c.rng
    hdr_len = rng.choice([0, 1, 11, 12, 13, 0xFFFFFFFF])
    hdr = c.header()
    chain = [(hdr, hdr_len, 0)]
    for _ in range(rng.randrange(0, 4)):
        gpa, _ = c.buf(64)
        chain.append((gpa, rng.choice([0, 1, 11, 64, 0xFFFFFFFF, 0x80000000]), 0))
    c.post([chain])
    return f"hdr {hdr_len}, data {[x[1] for x in chain[1:]]}"


def fam_avail_index(c: Ctx):
    """split: the avail index jumps by more than the ring size, entries >= ring size;
    packed: descriptors with the wrong AVAIL/USED bits for the wrap counter."""
    rng = c.rng
    if c.tx.packed:
        for _ in range(rng.randrange(1, 6)):
            c.tx.chain(c.packet(), raw_flags=True)       # neither AVAIL nor USED set
            slot = (c.tx.avail_idx - 1) % c.tx.size
            addr, length = c.buf()
            c.tx.set_desc(slot, addr, length, rng.choice([H.PACKED_USED, H.PACKED_AVAIL | H.PACKED_USED,
                                                          0xFFFF, rng.getrandbits(16)]), rng.getrandbits(16))
        c.drv.kick_vring(1)
        return "bad wrap bits"
    heads = [c.tx.chain(c.packet()) for _ in range(rng.randrange(0, 4))]
    heads += [rng.choice([c.tx.size, 0xFFFF, rng.randrange(c.tx.size, 0x10000)])
              for _ in range(rng.randrange(1, 4))]
    rng.shuffle(heads)
    step = rng.choice([c.tx.size + 1, 2 * c.tx.size, 0xFFFF, 0x8000, len(heads)])
    c.tx.offer(heads, idx_step=step)
    c.drv.kick_vring(1)
    return f"step {step}"


def fam_net_header(c: Ctx):
    """(on the port offering host offloads) headers with garbage flags, GSO type/size,
    hdr_len, csum_start/offset (past the packet: CVE-2024-11614) and num_buffers."""
    rng = c.rng
    chains = []
    for _ in range(rng.randrange(1, 5)):
        n = rng.choice([1, 14, 60, 64, 200, 1500])
        fields = dict(flags=rng.choice([NEEDS_CSUM, 2, 3, 0xFF, rng.getrandbits(8)]),
                      gso_type=rng.choice([0, 1, 3, 4, 5, 0x80, 0x81, 0xFF, rng.getrandbits(8)]),
                      hdr_len=rng.choice([0, 14, 0xFFFF, rng.getrandbits(16)]),
                      gso_size=rng.choice([0, 1, 0xFFFF, rng.getrandbits(16)]),
                      csum_start=rng.choice([0, n - 1, n, n + 1, 0xFFFF, rng.getrandbits(16),
                                             rng.randrange(n + 1)]),
                      csum_offset=rng.choice([0, 6, 16, 0xFFFE, 0xFFFF, rng.getrandbits(16)]),
                      num_buffers=rng.getrandbits(16))
        chains.append([(c.header(**fields), H.NET_HDR_SIZE, 0), (*c.buf(n), 0)])
    c.post(chains)
    return f"{len(chains)} headers"


def fam_ring_placement(c: Ctx):
    """(at the handshake) rings placed in a gap, across the ring region's end, at
    2^64 - k, unaligned or overlapping each other; see ``placement``."""
    c.post([c.packet()])
    return c.placement_note


def placement(rng: random.Random, mem: H.GuestMemory) -> tuple[dict, str]:
    """Bad ring addresses for SET_VRING_ADDR: {vring: (desc, used, avail)} and a note."""
    v = rng.randrange(2)
    base = 0x8000 * v
    desc, used, avail = base, base + 0x2000, base + 0x1000
    where = rng.choice(["used_straddles_end", "desc_in_gap", "avail_beyond", "used_wraps",
                        "unaligned", "overlapping", "desc_straddles_end"])
    if where == "used_straddles_end":
        used = mem.ring.end - rng.randrange(1, 2054)
    elif where == "desc_in_gap":
        desc = mem.ring.end + rng.randrange(0x100000)
    elif where == "avail_beyond":
        avail = mem.data[-1].end + rng.randrange(1 << 20)
    elif where == "used_wraps":
        used = 2**64 - H.USER_BASE - rng.randrange(1, 2054)
    elif where == "unaligned":
        desc, used, avail = desc + rng.randrange(1, 16), used + rng.randrange(1, 4), avail + 1
    elif where == "overlapping":
        used = avail = desc
    else:
        desc = mem.ring.end - rng.randrange(1, 4096)
    return {v: (desc, used, avail)}, where


def fam_toctou(c: Ctx):
    """Valid chains whose descriptors a second thread keeps rewriting and restoring while
    the back-end reads them (so that it reads either, or half of each): addresses out of
    memory, lengths 2^32 - 1, NEXT/INDIRECT flags, next indices."""
    rng = random.Random(c.rng.random())
    chains = [c.packet() for _ in range(rng.randrange(4, 32))]
    heads = c.post(chains)
    ring = c.tx
    slots = sorted({s % ring.size for h in heads for s in (h, h + 1)})
    originals = {s: c.mem.read(ring.desc + 16 * s, 16) for s in slots}
    for s, raw in originals.items():
        c.mem.rewritten(ring.desc + 16 * s, *struct.unpack_from("<QI", raw))
    bad = [c.bad_buf() for _ in range(8)]            # drawn from the case's own rng
    good = [c.buf() for _ in range(8)]

    def rewrite(slot, addr, length, *rest):
        c.mem.rewritten(ring.desc + 16 * slot, addr, length)   # torn reads, before they can happen
        ring.set_desc(slot, addr, length, *rest)

    def churn(stop):
        k = 0
        while not stop.is_set():
            for h in heads:
                addr, length, _where = bad[k % len(bad)]
                other = good[k % len(good)][0]
                k += 1
                choice = k % 4
                nxt, head = (h + 1) % ring.size, h % ring.size
                if ring.packed:
                    rewrite(nxt, addr, length, rng.getrandbits(16), rng.getrandbits(16))
                elif choice == 0:
                    rewrite(nxt, addr, length, 0)
                elif choice == 1:
                    rewrite(nxt, other, 0xFFFFFFFF, H.NEXT, h)
                elif choice == 2:
                    rewrite(head, addr, length, H.INDIRECT)
                else:
                    rewrite(nxt, other, 64, H.NEXT, rng.getrandbits(16))
                for s in (head, nxt):                 # and back: the back-end may read either
                    c.mem.write(ring.desc + 16 * s, originals[s])
            time.sleep(0)                             # the GIL, for the case's RPCs
    # not on the CPU of the target's thread that dequeues: the two must run at the same
    # time for a rewrite to land in the middle of a read
    c.background(churn, cpu=[cpu for cpu in cpus() if cpu != c.reader_cpu][-1])
    return f"{len(heads)} chains churned"


def fam_kick_storm(c: Ctx):
    """Thousands of kicks while a thread moves the avail index back and forth over valid
    and invalid entries."""
    rng = random.Random(c.rng.random())
    heads = c.post([c.packet() for _ in range(8)])

    def storm(stop):
        while not stop.is_set():
            c.drv.kick_vring(1, 200)
            if not c.tx.packed:
                c.tx.offer([rng.choice(heads + [0xFFFF])], idx_step=rng.choice([1, -1 & 0xFFFF, 300]))
            time.sleep(0)
    c.background(storm)
    return "storm"


def fam_reconfigure(c: Ctx):
    """While the back-end works: SET_VRING_NUM/BASE/ADDR with new or bad values, a new
    memory table without the data regions, GET_VRING_BASE (stops the ring), kicks."""
    rng = c.rng
    c.post([c.packet() for _ in range(rng.randrange(1, 16))])
    drv = c.drv
    steps = []
    for _ in range(rng.randrange(1, 4)):
        op = rng.choice(["num", "base", "addr", "mem", "get_base"])
        v = rng.randrange(2)
        if op == "num":
            num = rng.choice([0, 1, 3, 255, 32768, 65535])
            drv.send(H.SET_VRING_NUM, struct.pack("<II", v, num))
            drv.told_max_num = max(drv.told_max_num, num)
        elif op == "base":
            drv.send(H.SET_VRING_BASE, struct.pack("<II", v, rng.getrandbits(32)))
        elif op == "addr":
            table, _ = placement(rng, c.mem)
            desc, used, avail = list(table.values())[0]
            drv.told_addresses.append((desc, used, avail))
            drv.send(H.SET_VRING_ADDR, struct.pack("<IIQQQQ", v, 0, (H.USER_BASE + desc) % 2**64,
                                                   (H.USER_BASE + used) % 2**64,
                                                   (H.USER_BASE + avail) % 2**64, 0))
        elif op == "mem":
            ring = c.mem.ring
            drv.send(H.SET_MEM_TABLE, struct.pack("<IIQQQQ", 1, 0, ring.gpa, ring.size,
                                                  H.USER_BASE + ring.gpa, ring.offset), [ring.fd])
        else:
            drv.send(H.GET_VRING_BASE, struct.pack("<II", v, 0))
        steps.append(op)
    drv.kick_vring(1, 3)
    return ",".join(steps)


# rx indirect descriptor lengths drawn on packed rings (split: 0, 15, 16, 2^32 - 1)
PACKED_INDIRECT_LENGTHS = [16, 0xFFFFFFFF]


def fam_rx_buffers(c: Ctx):
    """(the guest's rx ring) buffers too small for the packet (mergeable), without
    WRITE, looping, next out of range, outside memory, indirect garbage."""
    rng = c.rng
    ring = c.rx
    variant = rng.choice(["tiny", "readonly", "loop", "next", "outside", "indirect", "mixed"])
    chains = []
    for _ in range(rng.randrange(1, 24)):
        if variant == "tiny" or (variant == "mixed" and rng.random() < 0.5):
            # away from region ends: DPDK 22.11 writes past a buffer that follows one
            # shorter than the header (docs/reliability.md, problem 8); here that write
            # stays in guest memory, test_rx_short_header_chain_known_dpdk_issue shows
            # the rest
            chains.append([(*c.buf(rng.choice([1, 2, 11, 12, 13, 64]), margin=SHORT_HEADER_REACH),
                            H.WRITE)])
        elif variant == "readonly":
            chains.append([(*c.buf(2048), 0)])
        elif variant == "outside":
            gpa, n, _ = c.bad_buf()
            chains.append([(gpa, n, H.WRITE)])
        elif variant == "indirect":
            gpa, n, _ = c.bad_buf()
            # a packed ring's indirect descriptor shorter than one entry (0 or 15 bytes)
            # makes DPDK 22.11 write into the table or crash (docs/reliability.md,
            # problem 11; test_packed_rx_empty_indirect_known_dpdk_issue shows it)
            lengths = PACKED_INDIRECT_LENGTHS if ring.packed else [0, 15, 16, 0xFFFFFFFF]
            chains.append([(rng.choice([gpa, c.table([(*c.buf(2048), H.WRITE | H.INDIRECT, 0)])]),
                            rng.choice(lengths), H.INDIRECT | H.WRITE)])
        else:
            chains.append([(*c.buf(2048), H.WRITE)])
    heads = [ring.chain(ch) for ch in chains]
    if not ring.packed:
        if variant in ("loop", "next"):
            h = heads[rng.randrange(len(heads))]
            ring.set_desc(h, c.buf(2048)[0], 2048, H.WRITE | H.NEXT,
                          h if variant == "loop" else rng.randrange(ring.size, 0x10000))
        ring.offer(heads)
    offered = [(gpa, n, f) for ch in chains for gpa, n, f in ch if not f & H.INDIRECT]
    offered += [(gpa, n, f) for gpa, n, f, _ in c.table_entries]
    c.offered = [(gpa, n) for gpa, n, _f in offered if gpa < 2**63]
    c.read_only = [(gpa, n) for gpa, n, f in offered if gpa < 2**63 and not f & H.WRITE]
    c.rx_chains = len(chains)
    c.drv.kick_vring(0)
    return variant


FAMILIES = {
    "desc_loop": fam_desc_loop, "chain_too_long": fam_chain_too_long,
    "next_out_of_range": fam_next_out_of_range, "indirect_outside": fam_indirect_outside,
    "indirect_nested": fam_indirect_nested, "indirect_length": fam_indirect_length,
    "addr_wrap": fam_addr_wrap, "addr_gap": fam_addr_gap, "addr_straddle": fam_addr_straddle,
    "lengths": fam_lengths, "avail_index": fam_avail_index, "net_header": fam_net_header,
    "ring_placement": fam_ring_placement, "toctou": fam_toctou, "kick_storm": fam_kick_storm,
    "reconfigure": fam_reconfigure, "rx_buffers": fam_rx_buffers,
}
OFFLOAD_FAMILIES = {"net_header"}          # run against the port offering host offloads
RX_FAMILIES = {"rx_buffers"}
MAY_REFUSE = {"ring_placement"}
