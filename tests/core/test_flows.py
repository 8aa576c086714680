"""Measured streams: the marker stamped by the C generator and by Python senders, per-flow
accounting in PMD receivers and in the Python burst API, against real DPDK ports."""
import os
import time

import numpy as np
import pytest

import dpdkvirtio as dv
from dpdkvirtio import flows as dvflows
from dpdkvirtio import marker, packets
from dpdkvirtio.errors import ConfigError, PmdError
from tests import helpers

FRONT, BACK = helpers.front_back()
REL_ERROR = 1 / 128            # the histogram's stated bound (half of a 1/64-wide bucket)


@pytest.fixture
def two_pairs(eal, sockdir):
    """(v1, u1, v2, u2): two vhost-user/virtio-user pairs in this process."""
    ports = []
    try:
        for name in ("a", "b"):
            v = dv.VhostUserPort(os.path.join(sockdir, f"{name}.sock"))
            ports.append(v)
            u = dv.VirtioUserPort(v.path, queue_size=1024)
            ports.append(u)
            assert v.wait_running(10) and u.wait_link_up(5)
        yield tuple(ports)
    finally:
        for p in reversed(ports):
            p.close()


def _wait_received(fs, flow_id, n, timeout=20.0):
    deadline = time.monotonic() + timeout
    while fs.flow(flow_id)["received"] + fs.flow(flow_id)["lost"] < n:
        assert time.monotonic() < deadline, f"flow {flow_id}: {fs.flow(flow_id)}"
        time.sleep(0.01)


def _send_all(port, burst, timeout_s=10.0):
    """tx_burst until the whole burst is taken (a forwarder that loses nothing itself)."""
    deadline = time.monotonic() + timeout_s
    while len(burst):
        assert time.monotonic() < deadline, "the peer never took the packets"
        port.tx_burst(0, burst, drop_unsent=False)


@pytest.fixture
def on_front_cpu():
    """Run this (busy-looping) Python thread beside the generator's PMD, not the
    receiver's: a starved receiver would drop packets the test did not mean to drop."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {FRONT})
    yield
    os.sched_setaffinity(0, before)


def test_three_measured_flows_exact(pair, pmds):
    """3 measured flows (one of 10^6 packets) and an unmeasured one into one queue: per flow
    received + lost == sent with no reordering or duplicates, and what is lost is exactly
    what the sending port counted as dropped (its ring full while the receiver was
    descheduled; on an idle host that is 0)."""
    v, u = pair
    a, b = pmds
    fs = dv.FlowStats(max_flows=8)
    b.add_rxq(v, 0, "rxonly", flows=fs)
    gens = [a.add_generator(u, 0, dv.Stream(dv.udp_frame(64), flow_id=fid, count=n, pps=pps))
            for fid, n, pps in ((0, 1_000_000, 1e6), (5, 30_000, 2e5), (7, 10_000, 1e5))]
    plain = a.add_generator(u, 0, dv.Stream(dv.udp_frame(64), count=5_000, pps=1e5))
    b.start()
    a.start()
    for g in gens + [plain]:
        assert g.wait_done(30)
    helpers.settle(v, "rx_packets", quiet=0.3, timeout=20.0)
    a.stop(); b.stop()
    assert gens[0].built == 1_000_000
    lost = 0
    for g in gens:
        f = fs.flow(g.flow_id, sent=g.built)
        assert (f["out_of_order"], f["duplicates"], f["stale"]) == (0, 0, 0), f
        assert f["sent"] == f["received"] + f["lost_total"] == g.built
        assert f["bytes"] == 64 * f["received"]
        assert int(fs.histograms[g.flow_id].sum()) == f["received"]
        assert 0 < f["lat_min_ns"] <= f["p50_ns"] <= f["p99_ns"] <= f["p99.99_ns"] <= f["lat_max_ns"]
        assert f["lat_min_ns"] <= f["lat_mean_ns"] <= f["lat_max_ns"]
        assert f["clock_errors"] == 0
        lost += f["lost_total"]
    assert fs.unknown_flow == 0
    assert lost + (5_000 - fs.unmeasured) == sum(u.drops().values())
    assert fs.active() == [0, 5, 7]
    assert v.stats()["rx_packets"] == 1_045_000 - sum(u.drops().values())


def test_stamp_is_valid_udp_and_sequence_counts_up(pair, pmds):
    """What the C generator writes: marker fields where marker.py says, checksums right."""
    v, u = pair
    a, _ = pmds
    a.add_generator(u, 0, dv.Stream(dv.udp_frame(80, sport=7), flow_id=513, count=300, pps=2e4,
                                    vars=[dv.FieldVar("udp.sport", 1, 9)]))
    t0 = dvflows.tsc()
    a.start()
    b = dv.Burst(64)
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 300 and time.monotonic() < deadline:
        if v.rx_burst(0, b):
            got += [b.packet(i) for i in range(len(b))]
            b.free()
    t1 = dvflows.tsc()
    a.stop()
    assert len(got) == 300
    parsed = [marker.parse(f) for f in got]
    assert [p[0] for p in parsed] == [513] * 300
    assert [p[1] for p in parsed] == list(range(300))
    assert all(t0 <= p[2] <= t1 for p in parsed)
    assert all(packets.ipv4_checksum_ok(f) and packets.udp_checksum_ok(f) for f in got)
    assert [packets.field(f, "udp.sport") for f in got[:10]] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 1]


def test_loss_counted_per_flow_through_a_dropping_forwarder(two_pairs, pmds, on_front_cpu):
    """Generator -> u1 -> v1 -> Python loop dropping every k-th packet of each flow ->
    v2 -> u2 -> PMD rxonly with a flow table: per flow, received is what the loop kept and
    lost what it dropped, plus what the generator could not send (a full ring while this
    loop was descheduled: counted by u1, and every one of them a gap in some flow)."""
    v1, u1, v2, u2 = two_pairs
    a, b = pmds
    fs = dv.FlowStats(max_flows=4)
    b.add_rxq(u2, 0, "rxonly", flows=fs)
    k = {1: 7, 2: 3}
    sent = {1: 20_001, 2: 9_001}          # the last packet of each flow is kept
    gens = {fid: a.add_generator(u1, 0, dv.Stream(dv.udp_frame(64), flow_id=fid, count=n,
                                                  pps=5e4)) for fid, n in sent.items()}
    b.start(); a.start()
    rx, tx = dv.Burst(64), dv.Burst(64)
    seen = {1: 0, 2: 0}
    dropped = {1: 0, 2: 0}
    deadline = time.monotonic() + 30
    while sum(seen.values()) < sum(sent.values()) - sum(u1.drops().values()):
        assert time.monotonic() < deadline, (seen, u1.drops())
        if not v1.rx_burst(0, rx):
            continue
        data, lengths = rx.to_numpy(128)
        rx.free()
        keep = []
        for i, row in enumerate(data):
            fid = int(row[marker.FLOW_OFFSET]) << 8 | int(row[marker.FLOW_OFFSET + 1])
            if seen[fid] % k[fid] == k[fid] - 1:
                dropped[fid] += 1
            else:
                keep.append(i)
            seen[fid] += 1
        if keep:
            assert tx.alloc_rows(v2.mempool, np.ascontiguousarray(data[keep]),
                                 np.ascontiguousarray(lengths[keep])) == len(keep)
            _send_all(v2, tx)
    deadline = time.monotonic() + 20
    while any(fs.flow(fid)["received"] < seen[fid] - dropped[fid] for fid in sent):
        assert time.monotonic() < deadline, {fid: fs.flow(fid) for fid in sent}
        time.sleep(0.01)
    a.stop(); b.stop()
    at_sender = sum(u1.drops().values())
    assert sum(seen.values()) + at_sender == sum(sent.values())
    assert dropped == {fid: seen[fid] // k[fid] for fid in k}
    not_sent = 0
    for fid, g in gens.items():
        f = fs.flow(fid, sent=g.built)
        assert g.built == sent[fid]
        assert f["received"] == seen[fid] - dropped[fid], f
        assert f["lost_total"] >= dropped[fid], f
        not_sent += f["lost_total"] - dropped[fid]
        assert f["out_of_order"] == 0 and f["duplicates"] == 0
        assert int(fs.histograms[fid].sum()) == f["received"]
    assert not_sent == at_sender, (not_sent, u1.drops())


def test_reordering_duplicates_and_stale_from_a_python_sender(pair):
    """Python sends known sequence numbers; the Python receiver accounts each burst."""
    v, u = pair
    fs = dv.FlowStats(max_flows=4)
    seqs = [0, 1, 2, 4, 3, 5, 5, 6, 9, 7, 8, 8, 10, 2000, 10, 1500, 1500, 2001, 2002, 2003, 2002]
    _send_and_account(u, v, fs, seqs, 3)
    f = fs.flow(3, sent=2004)
    # 0..10: 4 before 3, 9 before 7 and 8 -> 3 out of order, 5 and 8 twice -> 2 duplicates;
    # 2000 skips 11..1999 (1989 lost), 10 is 1991 behind (> 1024: stale), 1500 fills a gap
    # (out of order, one less lost), 1500 again is a duplicate; 2001..2003 follow in order
    # (one run: same sender TSC) and 2002 again is a duplicate.
    assert (f["received"], f["lost"], f["out_of_order"], f["duplicates"], f["stale"]) == \
        (16, 1988, 4, 4, 1), f
    assert f["sent"] == f["received"] + f["lost_total"] and f["next_seq"] == 2004
    assert int(fs.histograms[3].sum()) == 16


def _send_and_account(u, v, fs, seqs, flow_id):
    """Send frames stamped with ``seqs`` from u in one burst (one sender TSC); receive
    them all on v from Python, accounting each burst in ``fs``."""
    frames = marker.stamp(dv.udp_frame(64), flow_id, seqs, dvflows.tsc())
    tx, rx = dv.Burst(64), dv.Burst(64)
    assert tx.alloc_rows(u.mempool, frames) == len(seqs)
    _send_all(u, tx)
    deadline, got = time.monotonic() + 5, 0
    while got < len(seqs):
        assert time.monotonic() < deadline
        n = v.rx_burst(0, rx)
        if n:
            fs.account(rx)
            got += n
            rx.free()


def test_a_late_packet_after_reset_is_stale_not_a_filled_gap(pair):
    """After reset() the next packet starts the count; a packet sent before the reset that
    arrives after it filled no gap of this epoch: it is stale, and ``lost`` (a uint64)
    does not wrap below 0."""
    v, u = pair
    fs = dv.FlowStats(max_flows=2)
    _send_and_account(u, v, fs, [0, 1, 2, 3, 5], 1)           # 4 is late
    assert fs.flow(1)["lost"] == 1
    fs.reset()
    _send_and_account(u, v, fs, [6, 7, 4, 9, 8], 1)           # 4 arrives after the reset
    f = fs.flow(1)
    assert (f["received"], f["lost"], f["out_of_order"], f["stale"]) == (4, 0, 1, 1), f
    assert f["next_seq"] == 10


def _account_stamped(u, v, fs, flow_id, tscs, now):
    """Send one measured packet per sender TSC in ``tscs`` (sequence numbers in order),
    account them at the receive TSC ``now``; every one must arrive."""
    tx, rx = dv.Burst(64), dv.Burst(64)
    got = 0
    for start in range(0, len(tscs), 64):
        chunk = tscs[start:start + 64]
        frames = marker.stamp(dv.udp_frame(64), flow_id, range(start, start + len(chunk)), chunk)
        assert tx.alloc_rows(u.mempool, frames) == len(chunk)
        _send_all(u, tx)
        deadline = time.monotonic() + 5
        while got < start + len(chunk):
            assert time.monotonic() < deadline
            if v.rx_burst(0, rx):
                fs.account(rx, rx_tsc=now)
                got += len(rx)
                rx.free()


def test_histogram_percentiles_within_the_stated_error(pair):
    """Known latencies from 1 ns to 10 s (stamps back-dated from a fixed receive TSC):
    every percentile within REL_ERROR of numpy's, min/max exact."""
    v, u = pair
    fs = dv.FlowStats(max_flows=1)
    hz = dvflows.tsc_hz()
    rng = np.random.default_rng(7)
    lat_ns = np.unique(np.round(10 ** rng.uniform(0, 10, 4000)).astype(np.int64))
    now = dvflows.tsc() + 20 * hz
    tscs = [now - round(int(ns) * hz / 1e9) for ns in lat_ns]
    exact = np.array([fs.table.ticks_to_ns(now - t) for t in tscs], dtype=np.float64)
    # the conversion itself: within 1 ns of the exact value (plus the TSC rounding above)
    assert np.all(np.abs(exact - np.array([(now - t) * 1e9 / hz for t in tscs])) <= 1 + 1e-9 * exact)
    _account_stamped(u, v, fs, 0, tscs, now)
    f = fs.flow(0)
    assert f["received"] == len(lat_ns) and f["lost"] == 0
    assert f["lat_min_ns"] == exact.min() and f["lat_max_ns"] == exact.max()
    qs = [1, 10, 25, 50, 75, 90, 99, 99.9, 100]
    got_p = fs.percentiles(0, qs)
    want = np.percentile(exact, qs, method="inverted_cdf")
    for q, w in zip(qs, want):
        assert abs(got_p[q] - w) <= REL_ERROR * w + 0.5, (q, got_p[q], w)
    assert f["jitter_ns"] > 0


def test_mean_and_jitter_against_an_rfc3550_reference(pair):
    """Latencies in random order, with runs of equal stamps (the accounting's fast path
    for packets that share a sender TSC): the mean is exact, and the jitter equals RFC
    3550 6.4.1's J += (|D| - J)/16 computed here in floating point from the same
    latencies, but for the C estimate's integer truncation (under 1 ns, never negative)."""
    v, u = pair
    fs = dv.FlowStats(max_flows=1)
    hz = dvflows.tsc_hz()
    rng = np.random.default_rng()
    seed = int(rng.integers(1 << 31))
    print(f"jitter reference seed {seed}")
    rng = np.random.default_rng(seed)
    now = dvflows.tsc() + 20 * hz
    tscs = []
    while len(tscs) < 3000:
        ns = int(10 ** rng.uniform(2, 7))
        tscs += [now - round(ns * hz / 1e9)] * int(rng.choice([1, 1, 1, 2, 5]))
    _account_stamped(u, v, fs, 0, tscs, now)
    lat = [fs.table.ticks_to_ns(now - t) for t in tscs]
    jitter = 0.0
    for previous, current in zip(lat, lat[1:]):
        jitter += (abs(current - previous) - jitter) / 16
    f = fs.flow(0)
    assert (f["received"], f["lost"], f["lat_sum_ns"]) == (len(lat), 0, sum(lat)), seed
    assert f["lat_mean_ns"] == sum(lat) / len(lat)
    assert 0 <= f["jitter_ns"] - jitter < 1, (seed, f["jitter_ns"], jitter)


def test_tail_loss_is_what_the_sender_sent_past_the_last_arrival(pair):
    """A flow whose last packets never arrive: no later packet reveals them, so ``lost``
    counts only the gap inside; given the sender's count, ``tail_lost`` is the rest and
    sent == received + lost_total."""
    v, u = pair
    fs = dv.FlowStats(max_flows=2)
    sent = 100
    arrived = [s for s in range(93) if s != 40]                # 40 in the middle, 93..99 at the end
    _send_and_account(u, v, fs, arrived[:60], 1)
    _send_and_account(u, v, fs, arrived[60:], 1)
    f = fs.flow(1, sent=sent)
    assert (f["received"], f["lost"], f["tail_lost"], f["lost_total"]) == (92, 1, 7, 8), f
    assert f["sent"] == f["received"] + f["lost_total"]
    assert fs.summary({1: sent})[1]["tail_lost"] == 7


def test_known_delay_through_a_holding_forwarder(two_pairs, pmds, on_front_cpu):
    """A Python loop sends measured packets (stamped as sent) into u1, takes them from v1,
    holds every burst >= 20 ms and forwards it to v2; the PMD receiving on u2 measures:
    latency min >= 20 ms, p50 within the histogram's error of the latency the forwarder
    measured as it sent. No poller shares this thread's CPU (a generator PMD there would
    preempt it between its clock read and its send)."""
    v1, u1, v2, u2 = two_pairs
    _, b = pmds
    hold_s, n, per_ms = 0.020, 600, 6
    fs = dv.FlowStats(max_flows=2)
    b.add_rxq(u2, 0, "rxonly", flows=fs)
    b.start()
    hz = dvflows.tsc_hz()
    rx, tx, out = dv.Burst(64), dv.Burst(64), dv.Burst(64)
    template = dv.udp_frame(64)
    held = []                       # (due TSC, rows, lengths)
    fwd_lat = []
    sent = forwarded = 0
    next_send = dvflows.tsc()
    deadline = time.monotonic() + 20
    while forwarded < n:
        assert time.monotonic() < deadline
        now = dvflows.tsc()
        if sent < n and now >= next_send:
            frames = marker.stamp(template, 1, range(sent, sent + per_ms), dvflows.tsc())
            assert out.alloc_rows(u1.mempool, frames) == per_ms
            _send_all(u1, out)
            sent += per_ms
            next_send = now + hz // 1000
        if v1.rx_burst(0, rx):
            arrived = dvflows.tsc()
            data, lengths = rx.to_numpy(64)
            rx.free()
            held.append((arrived + int(hold_s * hz), data, lengths))
        if held and dvflows.tsc() >= held[0][0]:
            _, data, lengths = held.pop(0)
            assert tx.alloc_rows(v2.mempool, data, lengths) == len(data)
            t = dvflows.tsc()
            _send_all(v2, tx)
            fwd_lat += [(t - marker.parse(row.tobytes())[2]) * 1e9 / hz for row in data]
            forwarded += len(data)
    _wait_received(fs, 1, n)
    b.stop()
    f = fs.flow(1, sent=n)
    assert f["received"] == n and f["lost_total"] == 0
    assert f["lat_min_ns"] >= hold_s * 1e9
    p50_fwd = float(np.percentile(fwd_lat, 50, method="inverted_cdf"))
    assert abs(f["p50_ns"] - p50_fwd) <= REL_ERROR * p50_fwd, (f["p50_ns"], p50_fwd)


def test_reset_by_the_running_writer(pair, pmds):
    """reset() mid-traffic is done by the PMD that writes the table: counts restart and
    sequence tracking restarts with the next packet (no phantom loss: whatever is counted
    lost afterwards is what the sending port dropped afterwards)."""
    v, u = pair
    a, b = pmds
    fs = dv.FlowStats(max_flows=2)
    b.add_rxq(v, 0, "rxonly", flows=fs)
    g = a.add_generator(u, 0, dv.Stream(dv.udp_frame(64), flow_id=1, pps=2e5))
    b.start(); a.start()
    _wait_received(fs, 1, 10_000)
    drops_before = sum(u.drops().values())
    # Packets in the ring at the reset are counted in the new epoch, and a gap between two of
    # them is loss there: the drops that made it must be after drops_before. So let the
    # ring (256 slots) turn over twice after that reading before resetting: a drop seen
    # earlier then lies below every sequence number still in flight. (Without this, a host
    # stall that filled the ring just before the reading counted its 30 drops as lost.)
    _wait_received(fs, 1, fs.flow(1)["received"] + fs.flow(1)["lost"] + 2 * 256)
    fs.reset()
    after = fs.flow(1)
    assert after["received"] < 10_000
    assert after["lost"] <= sum(u.drops().values()) - drops_before
    _wait_received(fs, 1, 2_000)
    g.pause()
    sent = g.built
    # the tail may still be in the ring while the host holds the receiver's CPU (the host
    # takes it for hundreds of ms at times): wait until what is missing is what was dropped
    deadline = time.monotonic() + 10
    while fs.flow(1, sent=sent)["lost_total"] > sum(u.drops().values()) - drops_before:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    f = fs.flow(1, sent=sent)
    assert 0 < f["received"] < sent - 10_000 and f["received"] + f["lost"] >= 2_000
    assert f["lost_total"] <= sum(u.drops().values()) - drops_before, f
    assert f["duplicates"] == 0 and f["out_of_order"] == 0 and f["tail_lost"] == 0
    assert int(fs.histograms[1].sum()) == f["received"]
    a.stop(); b.stop()
    fs.reset()                      # writer stopped: done at once, here
    assert fs.counters["received"].sum() == 0 and fs.histograms.sum() == 0


def test_bad_measurement_input(pair, pmds):
    v, u = pair
    a, b = pmds
    for bad in (-1, 65536, 1.5, "3", True):
        with pytest.raises(ConfigError, match="flow_id"):
            dv.Stream(dv.udp_frame(64), flow_id=bad)
    with pytest.raises(ConfigError, match="at least 64 bytes"):
        dv.Stream(dv.udp_frame(60), flow_id=1)
    with pytest.raises(ConfigError, match="IPv4.*UDP"):
        dv.Stream(b"\x02" * 12 + b"\x88\xb5" + bytes(60), flow_id=1)
    with pytest.raises(ConfigError, match="overlaps the measurement marker"):
        dv.Stream(dv.udp_frame(64), flow_id=1, vars=[dv.FieldVar(offset=44, size=2, min=0, max=9)])
    with pytest.raises(ConfigError, match="min >= 64"):
        dv.Stream(dv.udp_frame(64), flow_id=1, size=dv.SizeVar(60, 100))
    for bad in (0, 65537, 2.0):
        with pytest.raises(ConfigError, match="max_flows"):
            dv.FlowStats(max_flows=bad)
    fs = dv.FlowStats(max_flows=4)
    for q in ([0], [101], [float("nan")], [-5]):
        with pytest.raises(ConfigError, match=r"\(0, 100\]"):
            fs.percentiles(1, q)
    for bad in (4, -1, 100_000, "1"):
        with pytest.raises(ConfigError, match="not in this table"):
            fs.percentiles(bad)
        with pytest.raises(ConfigError, match="not in this table"):
            fs.histogram(bad)
    assert fs.percentiles(2) == {50.0: None, 99.0: None, 99.9: None, 99.99: None}
    with pytest.raises(ConfigError, match="FlowStats"):
        b.add_rxq(v, 0, "rxonly", flows=object())
    b.add_rxq(v, 0, "rxonly", flows=fs)
    # one writer per table: a second receiver, or the Python thread, is refused
    with pytest.raises(ConfigError, match="one writer per table"):
        a.add_rxq(u, 0, "rxonly", flows=fs)
    assert u.core.owner(0, "rx") is None             # the refused add claimed nothing
    with pytest.raises(PmdError, match="written by the PMD"):
        fs.account(dv.Burst(4))
    b.remove(v)
    assert fs.writer is None
    fs.account(dv.Burst(4))                          # Python's again


def test_the_tsc_agrees_with_the_kernel_clock(eal):
    """Latency is TSC ticks over tsc_hz(): over 0.5 s the TSC, so converted, must agree
    with the kernel's CLOCK_MONOTONIC_RAW (an independent clock) within 1 %."""
    t0, k0 = dvflows.tsc(), time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
    time.sleep(0.5)
    t1, k1 = dvflows.tsc(), time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
    ratio = (t1 - t0) / dvflows.tsc_hz() / ((k1 - k0) / 1e9)
    assert abs(ratio - 1) < 0.01, f"TSC seconds / kernel seconds = {ratio:.5f}"


@pytest.mark.parametrize("flags, missing", [
    ("fpu tsc constant_tsc nonstop_tsc sse2", None),
    ("fpu tsc nonstop_tsc", "constant_tsc"),
    ("fpu tsc constant_tsc", "nonstop_tsc"),
    ("fpu tsc", "constant_tsc and nonstop_tsc"),
])
def test_a_tsc_that_is_not_invariant_refuses_latency(eal, tmp_path, monkeypatch, flags, missing):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    problem = dvflows.invariant_tsc_problem(str(cpuinfo))
    if missing is None:
        assert problem is None
        return
    assert problem is not None and f"lacks {missing}" in problem, problem
    assert "cannot read" in dvflows.invariant_tsc_problem(str(tmp_path / "none"))
    # a table is refused with that reason
    monkeypatch.setattr(dvflows, "invariant_tsc_problem", lambda *_: problem)
    with pytest.raises(ConfigError, match=f"latency measurement refused: .*lacks {missing}"):
        dv.FlowStats(4)
