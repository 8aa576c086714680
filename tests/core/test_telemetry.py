"""DPDK telemetry of a library user's ports (no switch): Debian's dpdk-telemetry.py
against this test process; a port leaves the telemetry when it is closed."""
import json
import os
import subprocess
import time

import numpy as np
import pytest

import dpdkvirtio as dv
from dpdkvirtio import stats
from dpdkvirtio._core import telemetry
from tests.helpers import drain


def ask(prefix, *commands):
    r = subprocess.run(["/usr/bin/dpdk-telemetry.py", "-f", prefix],
                       input="".join(c + "\n" for c in commands), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [next(iter(json.loads(line).values())) for line in r.stdout.splitlines()
            if line.startswith("{")]


def test_python_burst_counters_in_dpdk_telemetry(eal, pair):
    v, u = pair
    burst = dv.Burst(32)
    frame = np.frombuffer(dv.udp_frame(100), dtype=np.uint8)
    sent = 0
    for _ in range(50):
        burst.alloc(u.mempool, 32, frame)
        sent += u.tx_burst(0, burst)
    got = drain(v)
    assert got == sent > 0
    v.core.telemetry_name = "guest0"
    names, port, by_path = ask(eal.file_prefix, "/dpdkvirtio/ports", "/dpdkvirtio/port,guest0",
                               f"/dpdkvirtio/port,{v.path}")
    assert "guest0" in names and u.name in names, names
    assert port["rx_packets"] == got and port["rx_bytes"] == 100 * got
    assert port["queues"]["q0"]["rx_packets"] == got and port["connected"] == 1
    assert by_path is None                       # renamed: found by its new name only
    u_reply, = ask(eal.file_prefix, f"/dpdkvirtio/port,{u.name}")
    assert u_reply["kind"] == "ethdev" and u_reply["tx_packets"] == sent


def test_closed_ports_and_freed_tables_leave_telemetry(eal, sockdir):
    v = dv.VhostUserPort(os.path.join(sockdir, "gone.sock"))
    table = dv.FlowStats(4)
    table.table.telemetry_name = "probe-table"
    listed = telemetry.registered()
    assert v.path in listed["ports"] and "probe-table" in listed["flows"]
    v.close()
    del table
    listed = telemetry.registered()
    assert v.path not in listed["ports"] and "probe-table" not in listed["flows"]
    names, tables, gone = ask(eal.file_prefix, "/dpdkvirtio/ports", "/dpdkvirtio/flows",
                              "/dpdkvirtio/flows,probe-table")
    assert v.path not in names and "probe-table" not in tables and gone is None


def test_a_forwarding_pmd_has_one_cycles_per_packet_everywhere(eal, pair, pmds):
    """An io PMD receives and sends each packet once: Pmd.perf and DPDK telemetry give the
    same busy cycles per packet (telemetry once divided by rx, Pmd.perf by rx + tx: half),
    from the same counters, by stats.packets_handled's definition."""
    v, u = pair
    a, b = pmds
    out = dv.VdevPort("net_null0", "size=64,copy=0")
    try:
        b.add_rxq(v, 0, "io", out_port=out)
        g = a.add_generator(u, 0, dv.Stream(dv.udp_frame(64), count=50_000))
        b.start(); a.start()
        assert g.wait_done(30)
        time.sleep(0.2)
        b.stop(); a.stop()
        perf = b.perf()
        rx, tx = perf["rx_packets"], perf["tx_packets"]
        assert rx == tx > 0
        tel, = ask(eal.file_prefix, f"/dpdkvirtio/pmd,{b.lcore}")
        assert (tel["busy_cycles"], tel["rx_packets"], tel["tx_packets"]) == (perf["busy_cycles"], rx, tx)
        assert tel["busy_cycles_per_packet"] == perf["busy_cycles"] // stats.packets_handled(rx, tx)
        assert abs(perf["cycles_per_packet"] - tel["busy_cycles_per_packet"]) < 1
    finally:
        b.remove(v)
        out.close()


def test_derived_metrics_known_answers():
    """stats' derived figures on readings with known answers (the one place ctl top,
    Pmd.perf and the benchmarks take them from)."""
    old = {"busy_cycles": 1000, "idle_cycles": 3000, "rx_packets": 10, "tx_packets": 4,
           "slept_ns": 0, "intr_wakeups": 5}
    cur = {"busy_cycles": 5000, "idle_cycles": 7000, "rx_packets": 30, "tx_packets": 54,
           "slept_ns": 250_000_000, "intr_wakeups": 25}
    m = stats.pmd_interval(cur, old, 0.5)
    # 4000 busy of 8000 cycles; 50 packets handled (a generator's 50 sent > 20 received)
    assert m == {"busy_pct": 50.0, "cycles_per_packet": 80.0, "mpps": 100 / 1e6,
                 "slept_pct": 50.0, "wakeups_per_s": 40.0}
    assert stats.pmd_interval(old, old, 1.0)["cycles_per_packet"] is None
    assert stats.rates(cur, old, 2.0, ("rx_packets",)) == {"rx_packets": 10.0}
    with pytest.raises(ValueError, match="positive"):
        stats.rates(cur, old, 0.0, ("rx_packets",))
    assert stats.busy_pct(0, 0) == 0.0 and stats.busy_pct(1, 3) == 25.0
