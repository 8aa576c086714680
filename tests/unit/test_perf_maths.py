"""The capacity arithmetic of the benchmarks (perf.capacity), without DPDK: busy cycles
per packet and busy share from cumulative readings, the bound of a side, the basis of a
scenario's ratio."""
import pytest

from perf import capacity


def test_window_from_busy_and_total_cycles():
    c0 = {"busy": 1_000, "total": 10_000, "packets": 10, "hz": None}
    c1 = {"busy": 951_000, "total": 1_010_000, "packets": 10_010, "hz": None}
    w = capacity.window(c0, c1, 0.5)
    assert w["cycles_per_packet"] == pytest.approx(95.0)
    assert w["busy_pct"] == pytest.approx(95.0)


def test_window_from_busy_cycles_and_the_clock():
    """testpmd reports busy cycles only: the window's length times its TSC rate is the whole."""
    c0 = {"busy": 0, "total": None, "packets": 0, "hz": None}
    c1 = {"busy": 1_200_000_000, "total": None, "packets": 30_000_000, "hz": 2_400_000_000}
    w = capacity.window(c0, c1, 1.0)
    assert w["cycles_per_packet"] == pytest.approx(40.0) and w["busy_pct"] == pytest.approx(50.0)
    assert capacity.window(c0, dict(c1, packets=0), 1.0)["cycles_per_packet"] is None
    assert capacity.window(c0, dict(c1, hz=None), 1.0)["busy_pct"] is None


def test_bound_at_95_percent():
    assert capacity.bound(95.0) == "self" and capacity.bound(99.9) == "self"
    assert capacity.bound(94.9) == "counterpart" and capacity.bound(None) is None


@pytest.mark.parametrize("ours_bound, peer_bound, basis, ratio", [
    ("self", "self", "mpps", 2.0),              # both at capacity: throughput says it
    ("self", "counterpart", "cycles", 1.5),     # one waited: what each spends per packet
    ("counterpart", "counterpart", "cycles", 1.5),
    (None, "self", "cycles", 1.5),
])
def test_ratio_basis(ours_bound, peer_bound, basis, ratio):
    assert capacity.summary_ratio(20.0, 10.0, 40.0, 60.0, ours_bound, peer_bound) == (ratio, basis)


def test_ratio_without_cycles_falls_back_to_throughput():
    assert capacity.summary_ratio(20.0, 10.0, None, 60.0, "counterpart", "self") == (2.0, "mpps")
    assert capacity.summary_ratio(None, 10.0, 40.0, 60.0, "self", "self") == (None, None)


def _device(capacity_pps, knee_loss=0.0):
    """A synthetic receiver: loses nothing up to its capacity, the excess beyond it."""
    def trial(rate):
        sent = int(rate)
        received = sent if rate <= capacity_pps else int(capacity_pps * (1 - knee_loss))
        return {"sent": sent, "received": received, "loss": (sent - received) / sent,
                "offered_pps": rate}
    return trial


def test_bisection_finds_the_ndr_of_a_synthetic_device():
    from perf.rfc2544 import bisect
    best, trials = bisect(_device(12.3e6), 0.0, 40e6, precision=0.01, max_iterations=20)
    assert [t["pps"] for t in trials[:3]] == [20e6, 10e6, 15e6]       # halving the interval
    assert 12.3e6 * 0.99 <= best["pps"] <= 12.3e6 and best["pass"]
    assert all(t["pass"] == (t["pps"] <= 12.3e6) for t in trials)
    hi = min(t["pps"] for t in trials if not t["pass"])
    assert (hi - best["pps"]) / hi < 0.01                              # stopped at the precision


def test_bisection_pdr_accepts_its_loss_ratio_and_stops_after_max_iterations():
    from perf.rfc2544 import bisect
    # beyond 10 Mpps the device loses a tenth of its capacity's worth: a 0.5 % PDR sits
    # just above the NDR
    best, trials = bisect(_device(10e6), 0.005, 40e6, precision=0.001, max_iterations=6)
    assert len(trials) == 6
    assert best["loss"] <= 0.005 and best["pps"] >= 10e6
    best, _ = bisect(_device(0.0), 0.0, 40e6, max_iterations=4)
    assert best is None                                                # nothing passes


def test_report_draws_the_plots(tmp_path):
    """perf report on synthetic records: the three PNGs, and no latency plot without
    latency."""
    import json
    import subprocess
    import sys

    from tests.helpers import REPO
    run = [{"scenario": "vhost-rx", "ours_mpps": 20.0, "peers": {"testpmd": 10.0},
            "ratios": {"testpmd": 2.0}, "ratio_bases": {"testpmd": "mpps"},
            "raw_mpps": {"ours": [19.0, 21.0], "testpmd": [10.0, 10.0]},
            "cycles_per_packet": {"ours": 40.0, "testpmd": 70.0}},
           {"scenario": "switch-fwd", "ours_mpps": 15.0, "peers": {"testpmd": 14.0, "ovs-dpdk": 8.0},
            "ratios": {"testpmd": 1.2, "ovs-dpdk": 2.1},
            "ratio_bases": {"testpmd": "cycles", "ovs-dpdk": "cycles"},
            "cycles_per_packet": {"ours": 100.0, "testpmd": 120.0, "ovs-dpdk": 210.0}}]
    lat = [{"pkt_size": 64, "side": "ours", "ndr_mpps": 9.0,
            "latency_ns": {"p50": 900, "p99": 20_000, "p999": 50_000, "max": 90_000}},
           {"scenario": "switch-latency", "latency_ns": {"ours": {
               "10%": {"p50": 800, "p99": 9_000, "p999": 20_000, "max": 40_000, "lost": 0}}}}]
    f1, f2, f3 = tmp_path / "run.json", tmp_path / "lat.json", tmp_path / "sw.json"
    f1.write_text(json.dumps(run))
    f2.write_text(json.dumps(lat[:1]))                 # rfc2544: one distribution
    f3.write_text(json.dumps(lat[1:]))                 # latency_ns[side][load]
    for f, want in ((f1, {"ratios.png", "cycles.png"}), (f2, {"latency.png"}),
                    (f3, {"latency.png"})):
        out = tmp_path / f.stem
        r = subprocess.run([sys.executable, "-m", "perf", "report", str(f), "-o", str(out)],
                           capture_output=True, text=True, cwd=str(REPO), timeout=120)
        assert r.returncode == 0, r.stderr
        assert {p.name for p in out.iterdir()} == want
        for p in out.iterdir():
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def _run(p99, lost=0, max_ns=None, steal=0.0, stalled=0.0):
    return {"p50": p99 // 10, "p99": p99, "p999": p99 * 2, "max": max_ns or p99 * 3,
            "lost": lost, "steal_ms": steal, "stalled_ms": stalled, "offered_mpps": 1.0}


def test_latency_trials_summarised_by_median():
    """perf latency: one disturbed trial (p99 100x) does not move the median; max is the
    largest, the range and every trial's steal are kept."""
    from perf.latency import summarise
    s = summarise([_run(20_000), _run(2_000_000, lost=900, max_ns=9_000_000, steal=20.0,
                        stalled=31.5), _run(30_000)])
    assert s["p99"] == 30_000 and s["p50"] == 3_000 and s["lost"] == 0
    assert s["max"] == 9_000_000 and s["p99_range"] == [20_000, 2_000_000]
    assert s["steal_ms"] == [0.0, 20.0, 0.0] and len(s["trials"]) == 3
    assert s["stalled_ms"] == [0.0, 31.5, 0.0]
    assert summarise([_run(20_000), _run(40_000)])["p99"] == 30_000       # even: the mean of two
    assert summarise([dict(_run(1), p99=None, max=None)])["p99_range"] is None


def test_latency_targets_per_load():
    from perf.latency import targets
    lat = {"ours": {"10%": {"p99": 40}, "50%": {"p99": 100}},
           "testpmd": {"10%": {"p99": 50}, "50%": {"p99": 90}},
           "ovs-dpdk": {"10%": {"p99": 80}, "50%": {"p99": 1000}}}
    t = targets(lat)
    assert t["10%"]["p99 <= testpmd"]["met"] and t["10%"]["p99 <= 0.5 x ovs-dpdk"]["met"]
    assert t["10%"]["p99 <= 0.5 x ovs-dpdk"]["limit_ns"] == 40
    assert not t["50%"]["p99 <= testpmd"]["met"] and t["50%"]["p99 <= 0.5 x ovs-dpdk"]["met"]
    assert set(t) == {"10%", "50%"}                            # loads nobody measured: absent
    assert targets({"ours": lat["ours"]}) == {}                # no peer, no goal
