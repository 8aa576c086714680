"""Capture to pcapng at runtime, against real DPDK ports, read back by tshark (Debian's),
scapy and our own reader."""
import os
import shutil
import subprocess
import time

import numpy as np
import pytest

import dpdkvirtio as dv
from dpdkvirtio import marker, pcapfile
from dpdkvirtio.errors import ConfigError, PortStateError
from tests import helpers

N = 10_000


def _tshark(path, *fields):
    exe = shutil.which("tshark")
    assert exe, "tshark is not installed: run scripts/setup-host.sh"
    cmd = [exe, "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return [line.split("\t") for line in out.stdout.splitlines()]


def _rows(n, size=90):
    """n distinct UDP frames (source port 1..n, the index in the first and last payload
    bytes: a copy that misses an end shows)."""
    data = np.zeros((n, size), np.uint8)
    for i in range(n):
        f = bytearray(dv.udp_frame(size, sport=1 + i % 65535))
        f[42:46] = i.to_bytes(4, "big")
        f[-4:] = (i * 2654435761 % (1 << 32)).to_bytes(4, "big")
        data[i] = np.frombuffer(bytes(f), np.uint8)
    return data


def _send_rows(port, data, drain_port=None, gap_s=0.0):
    """Send every row from the Python thread, 64 at a time ``gap_s`` apart (draining
    drain_port meanwhile)."""
    burst, sink = dv.Burst(64), dv.Burst(64)
    deadline = time.monotonic() + 30
    for start in range(0, len(data), 64):
        assert burst.alloc_rows(port.mempool, np.ascontiguousarray(data[start:start + 64])) > 0
        while len(burst):
            assert time.monotonic() < deadline
            port.tx_burst(0, burst, drop_unsent=False)
            if drain_port is not None and drain_port.rx_burst(0, sink):
                sink.free()
        time.sleep(gap_s)
    while drain_port is not None and drain_port.rx_burst(0, sink):
        sink.free()


def test_capture_both_directions_read_by_tshark_scapy_and_us(pair, pmds, tmp_path):
    """rx polled by a PMD, tx sent from Python: 10,000 each way, every byte kept. Sent at
    about 60 kpps each way: below what the writer takes on this 2-CPU host, where it
    shares a CPU with the sending thread (the full-rate test is about counting)."""
    v, u = pair
    _, b = pmds
    to_guest, from_guest = _rows(N), _rows(N, 70)
    path = tmp_path / "both.pcapng"
    b.add_rxq(v, 0, "rxonly")
    b.start()
    t0_ns = time.time_ns()
    with v.capture(path, direction="both") as cap:
        _send_rows(u, from_guest, gap_s=0.001)       # into v's rx (the PMD polls it)
        _send_rows(v, to_guest, drain_port=u, gap_s=0.001)   # out of v's tx (Python)
        helpers.settle(v, "rx_packets", quiet=0.2, timeout=10.0)
    result = cap.stop()
    t1_ns = time.time_ns()
    b.stop()
    assert result["interfaces"] == {"rx": {"seen": N, "dropped": 0},
                                    "tx": {"seen": N, "dropped": 0}}, result
    assert result["written"] == 2 * N

    # What the writer put in the file, by a walk of its blocks written here (little-endian,
    # as we write): per Enhanced Packet Block, its interface and its ns timestamp.
    written = _epb_stamps(path)
    assert len(written) == 2 * N
    rows = _tshark(path, "frame.interface_id", "frame.interface_name", "frame.time_epoch",
                   "frame.len", "udp.srcport")
    assert len(rows) == 2 * N
    # tshark reads every timestamp as written, to the nanosecond (compared as decimal
    # strings: a float of seconds since the epoch cannot hold nanoseconds)
    assert [(int(i), _ns(t)) for i, _, t, _, _ in rows] == written
    by_iface = {}
    for _, name, t, length, sport in rows:
        by_iface.setdefault(name, []).append((_ns(t), int(length), int(sport)))
    assert sorted(by_iface) == [f"{v.name}:rx", f"{v.name}:tx"]
    for name, sent in ((f"{v.name}:rx", from_guest), (f"{v.name}:tx", to_guest)):
        got = by_iface[name]
        assert len(got) == N
        assert [s for _, _, s in got] == [1 + i % 65535 for i in range(N)]
        assert all(length == sent.shape[1] for _, length, _ in got)
        # per interface, in the order the data path saw the packets: never decreasing
        # (docs/capture.md: two packets may share a nanosecond)
        stamps = [t for t, _, _ in got]
        assert all(b >= a for a, b in zip(stamps, stamps[1:]))

    pk = pcapfile.read(path)                         # our reader: bytes, stats, wall clock
    assert list(zip(pk.interface.tolist(), pk.timestamps_ns.tolist())) == written
    assert t0_ns <= pk.timestamps_ns.min() and pk.timestamps_ns.max() <= t1_ns
    names = [i.name for i in pk.interfaces]
    for d, sent in (("rx", from_guest), ("tx", to_guest)):
        idx = names.index(f"{v.name}:{d}")
        frames = [f for f, i in zip(pk.frames, pk.interface) if i == idx]
        assert frames == [bytes(r) for r in sent]
        assert pk.stats[idx] == {"ifrecv": N, "ifdrop": 0}

    from scapy.utils import PcapNgReader
    with PcapNgReader(str(path)) as r:
        got = [(bytes(p), int(p.time * 1_000_000_000)) for p in r]
    assert got == list(zip(pk.frames, [ns for _, ns in written]))   # in file order


def _ns(epoch: str) -> int:
    """tshark's frame.time_epoch ("1796373139.904695001") as integer nanoseconds."""
    sec, frac = epoch.split(".")
    assert len(frac) == 9, epoch
    return int(sec) * 1_000_000_000 + int(frac)


def _epb_stamps(path) -> list[tuple[int, int]]:
    """(interface id, timestamp) of every Enhanced Packet Block of a little-endian pcapng
    file whose interfaces are in nanoseconds: read here, not by the reader under test."""
    import struct
    data, off, out = path.read_bytes(), 0, []
    while off < len(data):
        btype, length = struct.unpack_from("<II", data, off)
        if btype == 6:
            iface, hi, lo = struct.unpack_from("<III", data, off + 8)
            out.append((iface, hi << 32 | lo))
        off += length
    return out


def _udp_checksums_valid(rows: np.ndarray) -> np.ndarray:
    """Per row (IPv4/UDP frames, no IP options): the UDP checksum verifies, computed here
    (the one's-complement sum over the pseudo-header and the datagram is 0xFFFF)."""
    udp_len = (rows[:, 38].astype(np.uint32) << 8) | rows[:, 39]
    assert (udp_len == rows.shape[1] - 34).all()
    words = lambda b: (b[:, 0::2].astype(np.uint32) << 8) | b[:, 1::2]      # noqa: E731
    total = (words(rows[:, 26:34]).sum(axis=1) + 17 + udp_len
             + words(rows[:, 34:]).sum(axis=1))
    while (total >> 16).any():
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def test_capture_at_full_rate_keeps_or_counts_every_packet(pair, pmds, tmp_path):
    """A PMD receives 2,000,000 measured packets (flow 7, sequence numbers 0..) as fast as
    the generator goes: conservation holds, and what the capture did not keep is counted,
    in the file's statistics too. What the file holds is an in-order subset of what was
    sent, no packet twice, each one intact: the template's bytes but for its sequence
    number and TSC, and a UDP checksum that verifies (computed here); tshark counts the
    same packets."""
    v, u = pair
    a, b = pmds
    total = 2_000_000
    b.add_rxq(v, 0, "rxonly")
    template = dv.udp_frame(64)
    g = a.add_generator(u, 0, dv.Stream(template, count=total, flow_id=7))
    path = tmp_path / "rate.pcapng"
    b.start()
    cap = v.capture(path, snaplen=128)
    a.start()
    assert g.wait_done(60)
    got = helpers.settle(v, "rx_packets", quiet=0.3, timeout=20.0)
    result = cap.stop()
    a.stop(); b.stop()
    assert got + sum(u.drops().values()) == total and got == u.stats()["tx_packets"]
    st = result["interfaces"]["rx"]
    assert st["seen"] == got
    assert result["written"] + st["dropped"] == st["seen"], result
    pk = pcapfile.read(path)
    assert len(pk) == result["written"] == len(_tshark(path, "frame.number"))
    assert pk.stats[0] == {"ifrecv": st["seen"], "ifdrop": st["dropped"]}
    rows = np.frombuffer(b"".join(pk.frames), np.uint8).reshape(len(pk), len(template))
    seqs = rows[:, marker.SEQ_OFFSET:marker.SEQ_OFFSET + 8].copy().view("<u8").ravel()
    assert (np.diff(seqs.astype(np.int64)) > 0).all(), "out of order or twice in the file"
    assert seqs.max() < total
    marked = np.frombuffer(marker.mark_template(template, 7), np.uint8)
    fixed = np.r_[0:40, 42:marker.SEQ_OFFSET]     # all but the UDP checksum, sequence, TSC
    assert (rows[:, fixed] == marked[fixed]).all(), "a packet's fixed bytes changed"
    assert _udp_checksums_valid(rows).all(), "a UDP checksum does not verify"
    print(f"\nfull-rate capture: {got} received, {result['written']} written, "
          f"{st['dropped']} counted as not captured; sequence numbers {seqs.min()}..{seqs.max()}")


def test_stop_writes_everything_queued(pair):
    """The writer is held up by a pipe nobody reads yet; the ring fills; stop() then
    writes every queued copy before the statistics."""
    import io
    import threading
    v, u = pair
    r_fd, w_fd = os.pipe()
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(r_fd, 1 << 16), b"")))
    try:
        cap = v.capture(w_fd)                          # a descriptor: not closed by it
        _send_rows(u, _rows(3000), drain_port=v)
        assert v.core.capture_tap.queued() > 1000      # held up: most are still queued
        reader.start()
        result = cap.stop()
    finally:
        os.close(w_fd)
        reader.join(30)
        os.close(r_fd)
    assert result["interfaces"]["rx"] == {"seen": 3000, "dropped": 0}
    assert result["written"] == 3000
    assert len(pcapfile.read(io.BytesIO(b"".join(chunks)))) == 3000


def test_copies_that_cannot_be_formatted_are_counted_not_written(pair, tmp_path):
    """The writer's format buffers are all taken (as a formatting that used them up would):
    the 200 copies drained meanwhile are counted in ``format_failed``, none is written;
    given back, the next 100 are written, and written + dropped + format_failed == seen,
    in the result and in what tshark reads; no buffer of either pool stays taken."""
    v, u = pair
    path = tmp_path / "fmt.pcapng"
    cap = v.capture(path)
    tap = v.core.capture_tap
    assert tap.hold_format_buffers() == 127
    _send_rows(u, _rows(200), drain_port=v)
    deadline = time.monotonic() + 10
    while tap.queued():                               # the writer took them all
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert tap.buffers_in_use() == (0, 127)          # the copies went back unformatted
    tap.release_format_buffers()
    _send_rows(u, _rows(100), drain_port=v)
    result = cap.stop()
    assert tap.buffers_in_use() == (0, 0)
    st = result["interfaces"]["rx"]
    assert (result["format_failed"], result["written"], st) == (200, 100, {"seen": 300, "dropped": 0}), result
    rows = _tshark(path, "frame.number")
    assert len(rows) == 100


def test_capture_to_memory_with_limits(pair, tmp_path):
    v, u = pair
    data = _rows(300)
    with v.capture(None, direction="rx", snaplen=60, count=100) as cap:
        _send_rows(u, data, drain_port=v)             # v's rx queue is Python's
        assert v.stats()["rx_packets"] == 300
        assert cap.wait(10)                           # the count ended it
    pk = cap.packets()
    assert len(pk) == 100 and pk.frames == [bytes(r[:60]) for r in data[:100]]
    assert set(pk.orig_lengths.tolist()) == {90}
    arr, lengths = pk.arrays()
    assert arr.shape == (100, 60) and set(lengths.tolist()) == {60}
    cap.close()


def test_capture_refuses_bad_input_and_leaks_nothing(pair, tmp_path):
    v, u = pair
    for kw, text in (({"snaplen": 0}, "snaplen must be"), ({"direction": "up"}, "direction"),
                     ({"count": -1}, "count must be")):
        with pytest.raises(ConfigError, match=text):
            v.capture(tmp_path / "x.pcapng", **kw)
    with pytest.raises(FileNotFoundError):
        v.capture(tmp_path / "no" / "such" / "dir.pcapng")
    fds = len(os.listdir("/proc/self/fd"))
    cap = v.capture(tmp_path / "a.pcapng")
    with pytest.raises(ConfigError, match="already running"):
        v.capture(tmp_path / "b.pcapng")
    assert not (tmp_path / "b.pcapng").exists()
    cap.stop()
    assert len(os.listdir("/proc/self/fd")) == fds
    assert cap.stop()["written"] == 0                # idempotent
    # the data plane is unaffected: traffic still flows, uncaptured
    tap_before = v.core.capture_tap.totals()
    before = v.stats()["rx_packets"]
    _send_rows(u, _rows(64), drain_port=v)
    assert v.stats()["rx_packets"] - before == 64
    assert v.core.capture_tap.totals() == tap_before          # nothing copied
    # a closed port
    w = dv.VhostUserPort(os.path.join(os.path.dirname(v.path), "closed.sock"))
    w.close()
    with pytest.raises(PortStateError, match="closed"):
        w.capture(tmp_path / "c.pcapng")


def test_a_running_capture_ends_with_its_port(eal, sockdir, tmp_path):
    v = dv.VhostUserPort(os.path.join(sockdir, "cl.sock"))
    cap = v.capture(tmp_path / "cl.pcapng")
    v.close()                                         # stops the capture first
    assert not cap.running and cap.stop()["written"] == 0
    pk = pcapfile.read(tmp_path / "cl.pcapng")
    assert len(pk) == 0 and pk.interfaces[0].name == f"{v.name}:rx"
    assert pk.stats == {0: {"ifrecv": 0, "ifdrop": 0}}


def test_scapy_templates_names_and_decoding(pair, pmds):
    """A scapy packet as the template, a field variable by scapy's name, the capture
    decoded back into scapy packets with right checksums."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    v, u = pair
    a, b = pmds
    tmpl = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
            / IP(src="127.0.0.1", dst="127.0.0.2") / UDP(sport=5000, dport=6000) / (b"x" * 40))
    stream = dv.Stream(tmpl, count=100, pps=50_000, vars=[dv.FieldVar("UDP.sport", 5000, 5099)])
    b.add_rxq(v, 0, "rxonly")
    g = a.add_generator(u, 0, stream)
    b.start()
    with v.capture(None) as cap:
        a.start()
        assert g.wait_done(10)
        helpers.settle(v, "rx_packets", quiet=0.2, timeout=10.0)
    a.stop(); b.stop()
    pkts = cap.packets().to_scapy()
    cap.close()
    assert [p[UDP].sport for p in pkts] == list(range(5000, 5100))
    assert all(p[IP].dst == "127.0.0.2" and bytes(p[UDP].payload) == b"x" * 40 for p in pkts)
    for p in pkts:                                     # scapy recomputes: the same sums
        q = p.copy()
        del q[IP].chksum, q[UDP].chksum
        again = Ether(bytes(q))
        assert (again[IP].chksum, again[UDP].chksum) == (p[IP].chksum, p[UDP].chksum)
    with pytest.raises(ConfigError, match="scapy's"):
        dv.FieldVar("TCP.sport", 1, 2)


def test_capture_filter_keeps_what_it_matches(pair, tmp_path):
    """A pcap filter (libpcap compiles it, DPDK's rte_bpf runs it in the data path): the
    matches are kept, every packet is counted as seen, the file says so."""
    v, u = pair
    path = tmp_path / "f.pcapng"
    expr = "udp src port 7 or udp src port 100"
    with v.capture(path, filter=expr) as cap:
        _send_rows(u, _rows(300), drain_port=v)      # source ports 1..300
    result = cap.stop()
    assert result["interfaces"] == {"rx": {"seen": 300, "accepted": 2, "dropped": 0}}, result
    assert result["written"] == 2
    assert _tshark(path, "udp.srcport") == [["7"], ["100"]]
    pk = pcapfile.read(path)
    assert pk.stats[0] == {"ifrecv": 300, "ifdrop": 0, "filteraccept": 2}
    with pytest.raises(ConfigError, match="capture filter 'udp port banana'"):
        v.capture(tmp_path / "bad.pcapng", filter="udp port banana")
    assert not v.core.capture_tap.capturing             # the refused one left nothing on
    with v.capture(None) as cap:                          # and the next needs no filter
        _send_rows(u, _rows(10), drain_port=v)
    assert cap.stop()["written"] == 10 and len(cap.packets()) == 10
    cap.close()


def test_duration_and_max_bytes_end_a_capture_by_themselves(pair, pmds, tmp_path):
    """A generator runs throughout. duration_s=0.3 ends the capture after 0.3 s by the
    kernel's clock (not before, and within 0.3 s after), and every packet tshark reads
    from the file was stamped inside that time. max_bytes=200,000 ends the next one once
    its file holds that much: at least that, and at most one drain (64 blocks, under 256
    bytes each for these packets) and the statistics blocks more."""
    v, u = pair
    a, b = pmds
    b.add_rxq(v, 0, "rxonly")
    a.add_generator(u, 0, dv.Stream(dv.udp_frame(64), pps=200_000))
    b.start(); a.start()
    try:
        timed = tmp_path / "timed.pcapng"
        t0, wall0 = time.monotonic(), time.time_ns()
        cap = v.capture(timed, snaplen=128, duration_s=0.3)
        assert cap.wait(5)
        took = time.monotonic() - t0
        result = cap.stop()
        assert 0.3 <= took <= 0.6, took
        stamps = [_ns(row[0]) for row in _tshark(timed, "frame.time_epoch")]
        assert len(stamps) == result["written"] > 0, (result, v.stats())
        assert wall0 - 1_000_000 <= min(stamps) and max(stamps) <= wall0 + int(took * 1e9) + 1_000_000, \
            (f"stamps {min(stamps) - wall0} .. {max(stamps) - wall0} ns after the start; "
             f"the capture took {took * 1e9:.0f} ns")
        sized = tmp_path / "sized.pcapng"
        cap = v.capture(sized, snaplen=128, max_bytes=200_000)
        assert cap.wait(5)
        result = cap.stop()
        size = sized.stat().st_size
        assert result["bytes"] == size and 200_000 <= size <= 200_000 + 64 * 256 + 2 * 256, size
        assert len(_tshark(sized, "frame.number")) == result["written"]
    finally:
        a.stop(); b.stop()
