"""The hostile-guest oracle (tests/reliability/oracle.py) on packets and memory states
made here: what it must accept, and each kind of wrong byte it must catch (the positive
controls of the live run, without a back-end)."""

import struct

import pytest

from tests.reliability import hostile as H
from tests.reliability import oracle

KEY = 0x1234_5678_9ABC_DEF1


@pytest.fixture
def mem():
    m = H.GuestMemory()
    m.reset(KEY)
    yield m
    m.close()


def chain_bytes(mem, bufs):
    return b"".join(mem.expected_span(g, n) for g, n in bufs)


def describe(mem, bufs):
    mem.described += bufs
    return oracle.Candidates(mem)


def test_mix_is_a_bijection_and_unmix_inverts_it():
    import numpy as np
    words = np.array([0, 1, 8, 0x0400_0000, 2**64 - 1, 0xDEAD_BEEF_0000_0008], np.uint64)
    assert [H.unmix(int(v)) for v in H.mix(words)] == [int(w) for w in words]
    assert len(set(H.mix(np.arange(0, 1 << 20, 8, dtype=np.uint64)).tolist())) == 1 << 17


def test_a_chain_as_described_is_explained(mem):
    a, b, c = mem.data
    hdr = (mem.ring.gpa + 0x80000, 12)
    bufs = [(a.gpa + 100, 60), (b.end - 10, 30), (a.gpa + 5000, 1500)]   # b into c: one span
    cands = describe(mem, [hdr] + bufs)
    packet = chain_bytes(mem, bufs)
    assert oracle.explain_packet(packet, cands) == (True, len(packet))
    # a header descriptor longer than the header: its 13th byte is the packet's first
    cands = describe(mem, [(hdr[0], 13)])
    assert oracle.explain_packet(mem.expected_span(hdr[0] + 12, 1) + packet, cands)[0]
    # short buffers (fewer than 8 bytes) match too
    cands = describe(mem, [(a.gpa + 9001, 3)])
    assert oracle.explain_packet(packet + mem.expected_span(a.gpa + 9001, 3), cands)[0]


def test_a_descriptor_read_while_rewritten_may_pair_any_versions_fields(mem):
    """A TOCTOU slot that held (x, 1500) and then (y, 64): a back-end reading the address
    and the length apart may deliver x's first 64 bytes or y's 1500 (found by seed
    1860133079, case 3464); a length the slot never held is still flagged."""
    a, b, _c = mem.data
    x, y, slot = a.gpa + 4096, b.gpa + 64, mem.ring.gpa + 0x2000
    hdr = (mem.ring.gpa + 0x80000, 12)
    mem.described.append(hdr)
    mem.rewritten(slot, x, 1500)
    mem.rewritten(slot, y, 64)
    cands = oracle.Candidates(mem)
    for gpa, n in [(x, 64), (y, 1500), (x, 1500), (y, 64)]:
        packet = mem.expected_span(gpa, n)
        assert oracle.explain_packet(packet, cands) == (True, n), (hex(gpa), n)
    assert not oracle.explain_packet(mem.expected_span(x, 65), cands)[0]


@pytest.mark.parametrize("wrong", ["flipped", "shifted", "stale", "zeros", "truncated",
                                   "ring_area", "canary", "extra", "repeated"])
def test_each_kind_of_wrong_byte_is_caught(mem, wrong):
    a, b, _c = mem.data
    bufs = [(a.gpa + 4096, 1500), (b.gpa + 64, 200)]
    cands = describe(mem, [(mem.ring.gpa + 0x80000, 12)] + bufs)
    good = chain_bytes(mem, bufs)
    if wrong == "flipped":
        bad = good[:700] + bytes([good[700] ^ 1]) + good[701:]
    elif wrong == "shifted":            # the back-end mapped b 8 bytes off
        bad = good[:1500] + mem.expected_span(b.gpa + 72, 200)
    elif wrong == "stale":              # b as an earlier case left it
        bad = good[:1500] + H.keyed(b.gpa + 64, 200, KEY ^ 0x5A5A).tobytes()
    elif wrong == "zeros":
        bad = good[:1500] + bytes(200)
    elif wrong == "truncated":
        bad = good[:-1]
    elif wrong == "ring_area":          # zeros a descriptor never named
        bad = good + mem.expected_span(0x100, 16)
    elif wrong == "canary":
        bad = good[:1500] + b"\xcc" * 200
    elif wrong == "repeated":           # one buffer twice: a chain loop followed
        bad = good + good[1500:]
    else:
        bad = good + good[:1]
    ok, prefix = oracle.explain_packet(bad, cands)
    assert not ok and prefix <= 1700, (wrong, prefix)
    assert oracle.explain_packet(good, cands) == (True, len(good))


def test_describe_names_the_source(mem):
    a = mem.data[0]
    assert oracle.describe_bytes(mem.expected_span(a.gpa + 13, 16), KEY, 0xCC) == \
        f"this case's guest memory at {a.gpa + 13:#x}"
    assert oracle.describe_bytes(bytes(16), KEY, 0xCC) == "zeros"
    assert "canary" in oracle.describe_bytes(b"\xcc" * 16, KEY, 0xCC)
    assert oracle.describe_bytes(H.keyed(a.gpa, 16, KEY ^ 1).tobytes(), KEY, 0xCC) == \
        "not this case's guest memory"


def test_checksum_bytes_only_where_a_header_asked(mem):
    a = mem.data[0]
    bufs = [(a.gpa + 64, 100)]
    cands = describe(mem, bufs)
    good = chain_bytes(mem, bufs)
    csum = good[:40] + b"\x12\x34" + good[42:]
    assert oracle.explain_packet(csum, cands, {40, 41})[0]
    assert not oracle.explain_packet(csum, cands, {50, 51})[0]


class _Drv:
    """What oracle.device_areas and expected_rx_writes read of a driver."""

    def __init__(self, ring):
        self.rings, self.packed = [ring], False
        self.told_addresses = [ring.addresses()]
        self.told_max_num = ring.size


def _device_writes_split(mem, ring, elements):
    """Play a correct back-end: write each (head, bytes) into the chain's buffers and a
    used element. The writes go to the memory only (not the driver's expected image)."""
    for k, (head, data) in enumerate(elements):
        pos = 0
        for addr, length, _flags in oracle._walk_split(mem, ring, head):
            n = min(length, len(data) - pos)
            r, off = mem._find(addr, n)
            r.view[off:off + n] = list(data[pos:pos + n])
            pos += n
        r, off = mem._find(ring.used + 4 + 8 * k, 8)
        r.view[off:off + 8] = list(struct.pack("<II", head, len(data)))
    r, off = mem._find(ring.used + 2, 2)
    r.view[off:off + 2] = list(struct.pack("<H", len(elements)))


def test_rx_writes_as_the_used_ring_says_and_nothing_else(mem):
    a = mem.data[0]
    ring = H.SplitRing(mem, 0x0)
    heads = [ring.chain([(a.gpa + 4096 * k, 1024, H.WRITE)]) for k in range(4)]
    ring.offer(heads)
    drv = _Drv(ring)
    frames = [bytes(range(256)) * 3, b"\x01" * 1500]           # 768 + 12; 1500 + 12 (two)
    hdr = [bytes(10) + struct.pack("<H", n) for n in (1, 2)]
    stream1 = hdr[1] + frames[1]
    _device_writes_split(mem, ring, [(heads[0], hdr[0] + frames[0]), (heads[1], stream1[:1024]),
                                     (heads[2], stream1[1024:])])
    used = ring.used_entries()
    writes, read_only, problems = oracle.expected_rx_writes(mem, drv, used, frames)
    assert (problems, read_only) == ([], False)
    assert oracle.unexpected_writes(mem, writes, oracle.device_areas(drv)) == []
    # one byte anywhere else, the ring region included, is caught
    for gpa in (a.gpa + 4096 * 3, a.gpa + 1024, 0x20000, ring.avail + 2):
        r, off = mem._find(gpa, 1)
        r.view[off] ^= 0xFF
        assert [w[0] for w in oracle.unexpected_writes(mem, writes, oracle.device_areas(drv))] == [gpa]
        r.view[off] ^= 0xFF
    # a wrong byte of a packet, and a wrong num_buffers, are caught
    r, off = mem._find(a.gpa + 12 + 5, 1)
    r.view[off] ^= 1
    assert oracle.unexpected_writes(mem, writes, oracle.device_areas(drv))
    r.view[off] ^= 1
    writes2, _ro, _p = oracle.expected_rx_writes(mem, drv, used, [frames[0], frames[1][:-1] + b"\x02"])
    assert oracle.unexpected_writes(mem, writes2, oracle.device_areas(drv))
    # used lengths that do not add up to the packets taken are a problem
    assert oracle.expected_rx_writes(mem, drv, used, frames[:1])[2]
    assert oracle.expected_rx_writes(mem, drv, used[:2], frames)[2]


def test_overlapping_rx_buffers_take_either_write(mem):
    """Where the guest offered overlapping buffers, the back-end's order is its own: either
    packet's byte is accepted there, and only there."""
    a = mem.data[0]
    ring = H.SplitRing(mem, 0x0)
    heads = [ring.chain([(a.gpa + 100, 1024, H.WRITE)]), ring.chain([(a.gpa + 600, 1024, H.WRITE)])]
    ring.offer(heads)
    drv = _Drv(ring)
    frames = [b"\x11" * 500, b"\x22" * 500]
    hdr = bytes(10) + struct.pack("<H", 1)
    # the second packet's header first, then the first packet over it (a batch's order)
    _device_writes_split(mem, ring, [(heads[1], hdr + frames[1]), (heads[0], hdr + frames[0])])
    used = [(heads[0], 512), (heads[1], 512)]
    writes, _ro, problems = oracle.expected_rx_writes(mem, drv, used, frames)
    assert problems == []
    assert oracle.unexpected_writes(mem, writes, oracle.device_areas(drv)) == []
    r, off = mem._find(a.gpa + 605, 1)
    r.view[off] = 0x33                                   # neither packet's byte
    assert [w[0] for w in oracle.unexpected_writes(mem, writes, oracle.device_areas(drv))] == [a.gpa + 605]
