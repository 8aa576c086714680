"""A real Linux guest (QEMU TCG, Debian's cloud kernel, its virtio-net driver) on our
vhost-user port: both directions with exact counts and payload checks, multi-queue,
server and client mode, a reboot, QEMU killed mid-traffic, more than 16 queues."""
import os
import struct
import time

import numpy as np
import pytest

import dpdkvirtio as dv
from dpdkvirtio.peers import front_back
from tests import helpers
from tests.guest import guestlib

pytestmark = [pytest.mark.slow, pytest.mark.guest]
FRONT, BACK = front_back()


@pytest.fixture(scope="module")
def art():
    try:
        return guestlib.prepare()
    except guestlib.GuestUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def pmd(eal):
    p = dv.Pmd(cpu=BACK)
    yield p
    p.close()


def pattern_frames(n, size=128, first_seq=0):
    """Raw frames as dvguest checks them: type 0x88B5, seq, byte i = (seq + i) & 0xff."""
    rows = np.zeros((n, size), dtype=np.uint8)
    for k in range(n):
        seq = first_seq + k
        head = bytes.fromhex("020000000002" "020000000001" "88b5") + struct.pack("!I", seq)
        rows[k, :18] = np.frombuffer(head, np.uint8)
        rows[k, 18:] = (seq + np.arange(18, size)) & 0xFF
    return rows


def check_pattern(frame: bytes) -> int:
    assert frame[12:14] == b"\x88\xb5"
    seq = struct.unpack_from("!I", frame, 14)[0]
    body = np.frombuffer(frame[18:], np.uint8)
    assert (body == ((seq + np.arange(18, len(frame))) & 0xFF)).all(), f"bad payload in {seq}"
    return seq


def test_guest_pktgen_to_us_exact(eal, sockdir, pmd, art):
    port = dv.VhostUserPort(os.path.join(sockdir, "g.sock"))
    try:
        with guestlib.Guest(art, port.path, cpu=FRONT) as g:
            assert port.wait_running(30)
            pmd.add_rxq(port, 0, "rxonly")
            pmd.start()
            before = g.netstats()
            sent = g.pktgen(50_000)
            got = helpers.settle(port, quiet=0.5)
            after = g.netstats()
            assert sent == 50_000
            assert got == sent == after["tx_packets"] - before["tx_packets"]
            pmd.stop()
    finally:
        pmd.remove(port)
        port.close()


def test_us_to_guest_generator_exact(eal, sockdir, pmd, art):
    port = dv.VhostUserPort(os.path.join(sockdir, "g.sock"))
    try:
        with guestlib.Guest(art, port.path, cpu=FRONT) as g:
            assert port.wait_running(30)
            before = g.netstats()
            gen = pmd.add_generator(port, 0, dv.Stream(dv.udp_frame(64), count=20_000,
                                                       mode="single_burst", pps=20_000))
            pmd.start()
            assert gen.wait_done(60)
            pmd.stop()
            s = port.stats()
            assert gen.built == 20_000 == s["tx_packets"] + s["tx_dropped"]
            # what we counted as delivered is what the guest's driver received (TCG: the
            # guest may still be working through its ring; wait until its count settles)
            got = helpers.wait_still(lambda: g.netstats()["rx_packets"] - before["rx_packets"],
                             quiet_s=1.0, timeout_s=60)
            assert got == s["tx_packets"] > 0
    finally:
        pmd.remove(port)
        port.close()


def test_both_directions_with_payload_checks(eal, sockdir, art):
    port = dv.VhostUserPort(os.path.join(sockdir, "g.sock"))
    try:
        with guestlib.Guest(art, port.path, cpu=FRONT) as g:
            assert port.wait_running(30)
            n = 2000
            # us -> guest: the guest checks every payload
            g.send(f"dvguest rx eth0 {n} 60")
            g.expect("DVRX listening")
            rows = pattern_frames(n)
            b = dv.Burst(32)
            sent = 0
            for k in range(0, n, 32):
                b.alloc_rows(port.mempool, rows[k:k + 32])
                while len(b):
                    sent += port.tx_burst(0, b, drop_unsent=False)
                    time.sleep(0.002)
            m = g.expect(r"DVRX ok=(\d+) bad=(\d+) ordered=(\d+)", 90)
            assert sent == n and int(m.group(1)) == n and int(m.group(2)) == 0
            assert m.group(3) == "1"
            # guest -> us: we check every payload
            g.send(f"dvguest tx eth0 {n} 200")
            seen, rx = [], dv.Burst(32)
            deadline = time.monotonic() + 60
            while len(seen) < n and time.monotonic() < deadline:
                k = port.rx_burst(0, rx)
                for i in range(k):
                    f = rx.packet(i)
                    if f[12:14] == b"\x88\xb5":
                        assert len(f) == 200
                        seen.append(check_pattern(f))
                rx.free()
            g.expect(r"DVTX sent=(\d+)")
            assert seen == list(range(n))
    finally:
        port.close()


def test_multiqueue_two_vcpus(eal, sockdir, pmd, art):
    port = dv.VhostUserPort(os.path.join(sockdir, "g.sock"), queues=2)
    try:
        with guestlib.Guest(art, port.path, queues=2, smp=2, cpu=FRONT) as g:
            assert port.wait_running(30)
            deadline = time.monotonic() + 30
            while port.status()["enabled_vrings"] != [0, 1, 2, 3] and time.monotonic() < deadline:
                time.sleep(0.1)
            assert port.status()["enabled_vrings"] == [0, 1, 2, 3]
            dv.assign_rxqs(port, [pmd])
            pmd.start()
            s0 = g.pktgen(20_000, queue=0, thread=0)
            s1 = g.pktgen(30_000, queue=1, thread=1)
            helpers.settle(port, quiet=0.5)
            per_queue = port.counters["rx_packets"].tolist()
            assert per_queue == [s0, s1] == [20_000, 30_000]
            pmd.stop()
    finally:
        pmd.remove(port)
        port.close()


def test_our_port_in_client_mode(eal, sockdir, pmd, art):
    path = os.path.join(sockdir, "qemu.sock")
    port = dv.VhostUserClientPort(path)
    try:
        with guestlib.Guest(art, path, qemu_server=True, cpu=FRONT) as g:
            assert port.wait_running(30)
            pmd.add_rxq(port, 0)
            pmd.start()
            sent = g.pktgen(30_000)
            assert helpers.settle(port, quiet=0.5) == sent == 30_000
            pmd.stop()
    finally:
        pmd.remove(port)
        port.close()
        if os.path.exists(path):
            os.unlink(path)                 # QEMU's server socket


def test_guest_reboot_reconnects(eal, sockdir, pmd, art):
    port = dv.VhostUserPort(os.path.join(sockdir, "g.sock"))
    try:
        with guestlib.Guest(art, port.path, cpu=FRONT) as g:
            assert port.wait_running(30)
            pmd.add_rxq(port, 0)
            pmd.start()
            first = g.pktgen(20_000)
            assert helpers.settle(port, quiet=0.5) == first
            g.reboot()
            assert port.wait_running(60)
            second = g.pktgen(20_000)
            assert helpers.settle(port, quiet=0.5) == first + second == 40_000
            assert port.status()["devices"] >= 2
            pmd.stop()
    finally:
        pmd.remove(port)
        port.close()


def test_qemu_killed_mid_traffic(eal, sockdir, pmd, art):
    port = dv.VhostUserPort(os.path.join(sockdir, "g.sock"))
    base = port.mempool.in_use
    try:
        g = guestlib.Guest(art, port.path, cpu=FRONT)
        try:
            assert port.wait_running(30)
            pmd.add_rxq(port, 0)
            gen = pmd.add_generator(port, 0, dv.Stream(dv.udp_frame(64), pps=50_000))
            pmd.start()
            g.pktgen(0, wait=False)                           # endless, guest -> us
            time.sleep(1.5)
            assert port.stats()["rx_packets"] > 0
        finally:
            g.kill()                                          # mid-traffic, both ways
        assert port.wait_stopped(30)
        gen.pause()                                           # returns once it has stopped
        s = port.stats()
        assert gen.built == s["tx_packets"] + s["tx_dropped"]
        assert s["tx_not_ready_drops"] + s["tx_failure_drops"] == s["tx_dropped"]
        assert port.mempool.in_use == base                    # nothing leaked
        # the port takes the next guest
        with guestlib.Guest(art, port.path, cpu=FRONT) as g2:
            assert port.wait_running(30)
            rx0 = port.stats()["rx_packets"]
            assert g2.pktgen(10_000) == 10_000
            assert helpers.settle(port, quiet=0.5) - rx0 == 10_000
        pmd.stop()
    finally:
        pmd.remove(port)
        port.close()


def test_more_than_16_queues(eal, sockdir, pmd, art):
    q = 20
    port = dv.VhostUserPort(os.path.join(sockdir, "g.sock"), queues=q)
    try:
        with guestlib.Guest(art, port.path, queues=q, cpu=FRONT) as g:
            assert port.wait_running(30)
            out = g.sh(f"dvguest channels eth0 {q}")
            assert f"combined={q}" in out
            deadline = time.monotonic() + 30
            while len(port.status()["enabled_vrings"]) < 2 * q and time.monotonic() < deadline:
                time.sleep(0.1)
            assert port.status()["enabled_vrings"] == list(range(2 * q))
            dv.assign_rxqs(port, [pmd])
            pmd.start()
            before = g.netstats()
            sent = g.pktgen(10_000, queue=17)
            helpers.settle(port, quiet=0.5)
            per_queue = port.counters["rx_packets"].tolist()
            after = g.netstats()
            # pktgen moves its queue from 0 up to queue_map_max one frame at a time: one
            # frame each on queues 1..16, the rest on 17 (every queue up to 17 is used)
            expected = [0] + [1] * 16 + [sent - 16] + [0] * (q - 18)
            assert sent == 10_000 == after["tx_packets"] - before["tx_packets"]
            assert per_queue == expected
            pmd.stop()
    finally:
        pmd.remove(port)
        port.close()


def test_round_trip_latency_through_the_guest_driver(eal, sockdir, pmd, art):
    """A measured stream from our generator, reflected by the guest (dvguest reflect: its
    virtio-net driver receives and sends it back), accounted by our rxonly: per-flow
    counts exact, no reordering, the histogram holds every packet (TCG: slow, so the
    latencies are only checked for order, not size)."""
    port = dv.VhostUserPort(os.path.join(sockdir, "g.sock"))
    n = 2000
    try:
        with guestlib.Guest(art, port.path, cpu=FRONT) as g:
            assert port.wait_running(30)
            g.send(f"dvguest reflect eth0 {n} 120")
            g.expect("DVREFLECT listening")
            flows = dv.FlowStats(max_flows=8)
            pmd.add_rxq(port, 0, "rxonly", flows=flows)
            gen = pmd.add_generator(port, 0, dv.Stream(dv.udp_frame(64), flow_id=6, count=n,
                                                       pps=1000))
            pmd.start()
            m = g.expect(r"DVREFLECT reflected=(\d+) other=(\d+) failed=(\d+)", 150)
            reflected = int(m.group(1))
            helpers.settle(port, quiet=0.5)
            pmd.stop()
            f = flows.flow(6, sent=gen.built)
            assert gen.built == n and sum(port.drops().values()) == 0
            assert reflected == n and int(m.group(3)) == 0
            assert f["received"] == n and f["lost_total"] == 0, f
            assert f["out_of_order"] == f["duplicates"] == f["stale"] == 0
            assert int(flows.histograms[6].sum()) == f["received"]
            assert 0 < f["lat_min_ns"] <= f["p50_ns"] <= f["p99_ns"] <= f["lat_max_ns"]
            assert flows.unknown_flow == 0
    finally:
        pmd.remove(port)
        port.close()


def test_guest_kicks_wake_an_interrupt_mode_pmd(eal, sockdir, pmd, art):
    """A real guest's virtio-net driver kicks (ioeventfd-style, through the kick eventfd
    QEMU hands over) and those kicks are what wakes our PMD in interrupt mode: exact
    counts at a low rate, the PMD's thread mostly asleep meanwhile."""
    port = dv.VhostUserPort(os.path.join(sockdir, "g.sock"))
    try:
        with guestlib.Guest(art, port.path, cpu=FRONT) as g:
            assert port.wait_running(30)
            pmd.mode = "interrupt"
            pmd.add_rxq(port, 0, "rxonly")
            pmd.start()
            time.sleep(0.5)
            assert helpers.lcore_cpu_share(pmd.lcore, 1.0) <= 0.05
            before, cpu0, t0 = pmd.sleep_show(), helpers.lcore_cpu_seconds(pmd.lcore), time.monotonic()
            sent = g.pktgen(3000, delay_ns=300_000)              # ~3 kpps
            got = helpers.settle(port, quiet=0.5)
            after = pmd.sleep_show()
            share = (helpers.lcore_cpu_seconds(pmd.lcore) - cpu0) / (time.monotonic() - t0)
            assert sent == 3000 and got == 3000
            assert after["intr_wakeups"] - before["intr_wakeups"] > 100, (before, after)
            assert share < 0.5, share                            # polling: 1.0
            # and the guest helper, as fast as the guest goes: still exact
            g.send("dvguest tx eth0 2000 200")
            g.expect(r"DVTX sent=2000", 90)
            assert helpers.settle(port, quiet=0.5) == 5000
            pmd.stop()
    finally:
        pmd.remove(port)
        port.close()
