"""perf/: every scenario in a short mode (well-formed record, positive rates; no speed
assertion), the comparison, the busy-poller guard, clean-up on interruption."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dpdkvirtio.peers import ovs_dpdk_available
from perf import cli, compare, host
from perf.scenarios import SCENARIOS
from perf.setups import Options
from tests.helpers import REPO, free_hugepages_mb

pytestmark = pytest.mark.testpmd

MODE = "hugepages" if free_hugepages_mb() >= 2048 else "no-huge"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_short_mode(name):
    o = Options(seconds=1.0, warmup_s=0.5, memory_mode=MODE, ports=2)
    rec = cli.run_scenario(name, o, trials=1, log=lambda s: None)
    for key in ("scenario", "ours_mpps", "peers", "ratio", "pkt_size", "queues", "memory_mode",
                "trials"):
        assert key in rec
    assert rec["scenario"] == name and rec["pkt_size"] == 64 and rec["trials"] == 1
    assert rec["ours_mpps"] > 0, rec
    assert rec["peers"]["testpmd"] > 0, rec
    assert rec["ratio_basis"] in ("mpps", "cycles") and rec["counterpart"]
    sides = ["ours", "testpmd"] + (["ovs-dpdk"] if rec["peers"].get("ovs-dpdk") else [])
    for side in sides:
        if side == "ours" and name.startswith("pyloop"):
            continue                                  # a Python loop has no cycle counters
        assert rec["cycles_per_packet"][side] > 0, (side, rec)
        assert 0 < rec["busy_pct"][side] <= 100 and rec["bound"][side] in ("self", "counterpart")
    if rec["ratio_basis"] == "mpps":
        assert rec["ratio"] == pytest.approx(rec["ours_mpps"] / rec["peers"]["testpmd"], rel=0.01)
        assert rec["ratio_of_medians"] == pytest.approx(rec["ratio"], rel=0.01)   # one trial
    else:
        assert rec["ratio"] == pytest.approx(rec["cycles_per_packet"]["testpmd"]
                                             / rec["cycles_per_packet"]["ours"], rel=0.01)
    if "ovs-dpdk" in SCENARIOS[name]:
        assert (rec["peers"]["ovs-dpdk"] or 0) > 0 if ovs_dpdk_available() \
            else rec["peers"]["ovs-dpdk"] is None
    if name == "scale-ports":
        assert rec["ports"] == 2 and rec["add_port_ms"]["max"] > 0
    json.dumps(rec)


def _rec(name, ratio, mpps, fp):
    return {"scenario": name, "pkt_size": 64, "queues": 1, "ratio": ratio, "ours_mpps": mpps,
            "peers": {"testpmd": mpps / ratio}, "host": fp}


def test_compare_flags_regression_and_passes_equal_run(tmp_path):
    fp = host.fingerprint()
    base = [_rec("vhost-rx", 1.10, 22.0, fp), _rec("vhost-tx", 1.00, 20.0, fp)]
    same = [_rec("vhost-rx", 1.09, 21.0, fp), _rec("vhost-tx", 1.01, 20.5, fp)]
    worse = [_rec("vhost-rx", 0.95, 19.0, fp), _rec("vhost-tx", 1.00, 20.0, fp)]
    b, s, w = (tmp_path / n for n in ("b.json", "s.json", "w.json"))
    for f, data in ((b, base), (s, same), (w, worse)):
        f.write_text(json.dumps(data))

    def run(*a):
        return subprocess.run([sys.executable, "-m", "perf", "compare", *map(str, a)],
                              capture_output=True, text=True, cwd=str(REPO))
    r = run(b, s, "--tolerance", "0.05")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(b, w, "--tolerance", "0.05")
    assert r.returncode == 1 and "REGRESSION" in r.stdout and "vhost-rx" in r.stdout
    rows, regressed = compare.compare(base, worse, 0.20)
    assert not regressed                                # within a wider tolerance


def test_compare_uses_ratios_across_hosts_and_absolute_on_the_same_host():
    fp = host.fingerprint()
    other = dict(fp, cpu_model="some other CPU")
    base = [_rec("vhost-rx", 1.0, 30.0, other)]
    new = [_rec("vhost-rx", 1.0, 10.0, fp)]             # slower host, same ratio: fine
    rows, regressed = compare.compare(base, new, 0.05, absolute=True)
    assert not regressed and rows[0].metric == "ratio"
    base = [_rec("vhost-rx", 1.0, 30.0, fp)]
    rows, regressed = compare.compare(base, new, 0.05, absolute=True)
    assert regressed and rows[0].metric == "ours_mpps" and rows[0].verdict == "REGRESSION"


def _busy_loop(cpu):
    return subprocess.Popen([sys.executable, "-c",
                             f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])


def test_busy_poller_guard_refuses():
    from perf.setups import BACK
    hog = _busy_loop(BACK)
    try:
        time.sleep(0.5)
        r = subprocess.run([sys.executable, "-m", "perf", "run", "vhost-rx", "--seconds", "1",
                            "--trials", "1"], capture_output=True, text=True, cwd=str(REPO),
                           timeout=60)
        assert r.returncode == 2
        assert "busy pollers" in r.stderr and f"pid {hog.pid}" in r.stderr
    finally:
        hog.kill()
        hog.wait()


def _is_agent(pid) -> bool:
    try:
        return b"dpdkvirtio.peers.agent_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _descendants(pid):
    out = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                out.add(int(p.name))
                out |= _descendants(int(p.name))
    return out


def test_interrupt_stops_every_process():
    proc = subprocess.Popen([sys.executable, "-m", "perf", "run", "vhost-rx", "--seconds", "60",
                             "--trials", "1"], cwd=str(REPO), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # our side is measured first: its two processes (back-end and front-end agents)
        # are running mid-trial once both exist (the 60 s trial is then interrupted)
        deadline = time.monotonic() + 30
        kids: set[int] = set()
        while time.monotonic() < deadline:
            kids = _descendants(proc.pid)
            if sum(_is_agent(k) for k in kids) >= 2:
                break
            time.sleep(0.2)
        assert sum(_is_agent(k) for k in kids) >= 2, f"the benchmark started {kids}"
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "stopped" in err
        time.sleep(0.5)
        alive = [k for k in kids if Path(f"/proc/{k}").exists()
                 and "State:\tZ" not in Path(f"/proc/{k}/status").read_text()]
        assert not alive, f"left running: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_compare_missing_and_extra_scenarios(tmp_path):
    fp = host.fingerprint()
    base = [_rec("vhost-rx", 1.0, 20.0, fp), _rec("vhost-tx", 1.0, 20.0, fp)]
    new = [_rec("vhost-rx", 1.0, 20.0, fp), _rec("virtio-tx", 2.0, 30.0, fp)]
    rows, regressed = compare.compare(base, new, 0.05)
    verdicts = {r.scenario.split()[0]: r.verdict for r in rows}
    assert verdicts == {"vhost-rx": "ok", "virtio-tx": "new", "vhost-tx": "MISSING"}
    assert regressed                                      # a vanished scenario fails CI
    rows, regressed = compare.compare(base[:1], new, 0.05)    # only an extra one: fine
    assert not regressed and {r.scenario.split()[0] for r in rows} == {"vhost-rx", "virtio-tx"}
    b, n = tmp_path / "b.json", tmp_path / "n.json"
    b.write_text(json.dumps(base))
    n.write_text(json.dumps(new))
    r = subprocess.run([sys.executable, "-m", "perf", "compare", str(b), str(n)],
                       capture_output=True, text=True, cwd=str(REPO))
    assert r.returncode == 1 and "MISSING" in r.stdout


def test_compare_writes_junit_and_markdown(tmp_path):
    """JUnit XML: one testcase per scenario and metric, a regression a failure, an
    improvement a property; the markdown summary says the same; exit status 1."""
    import xml.etree.ElementTree as ET
    fp = host.fingerprint()
    base = [_rec("vhost-rx", 1.0, 20.0, fp), _rec("vhost-tx", 1.0, 20.0, fp),
            _rec("virtio-tx", 1.0, 20.0, fp)]
    new = [_rec("vhost-rx", 0.80, 16.0, fp), _rec("vhost-tx", 1.30, 26.0, fp),
           _rec("virtio-tx", 1.01, 20.2, fp)]
    for b, n, cpp_b, cpp_n in ((base[0], new[0], 50.0, 80.0), (base[1], new[1], 60.0, 45.0)):
        b["cycles_per_packet"], n["cycles_per_packet"] = {"ours": cpp_b}, {"ours": cpp_n}
    bf, nf = tmp_path / "b.json", tmp_path / "n.json"
    bf.write_text(json.dumps(base))
    nf.write_text(json.dumps(new))
    junit, md = tmp_path / "perf.xml", tmp_path / "perf.md"
    r = subprocess.run([sys.executable, "-m", "perf", "compare", str(bf), str(nf),
                        "--tolerance", "0.05", "--junit", str(junit), "--markdown", str(md)],
                       capture_output=True, text=True, cwd=str(REPO),
                       env={**os.environ, "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")})
    assert r.returncode == 1, r.stdout + r.stderr
    suite = ET.parse(junit).getroot()
    cases = {(c.get("classname").split()[0], c.get("name")): c for c in suite.iter("testcase")}
    assert set(cases) == {("vhost-rx", "ratio"), ("vhost-rx", "cycles_per_packet.ours"),
                          ("vhost-tx", "ratio"), ("vhost-tx", "cycles_per_packet.ours"),
                          ("virtio-tx", "ratio")}
    failed = {k for k, c in cases.items() if c.find("failure") is not None}
    assert failed == {("vhost-rx", "ratio"), ("vhost-rx", "cycles_per_packet.ours")}
    assert suite.get("tests") == "5" and suite.get("failures") == "2"
    better = {k for k, c in cases.items() if c.find("properties/property[@name='improvement']")
              is not None}
    assert better == {("vhost-tx", "ratio"), ("vhost-tx", "cycles_per_packet.ours")}
    text = md.read_text()
    assert text.startswith("### perf compare: 2 regression(s) or failure(s) beyond 5%")
    assert "stored baseline: verdicts hold only when host noise is below the tolerance" in text
    assert "| vhost-rx 64B q1 p1 | ratio | 1.000 | 0.800 | -20.0% | ❌ REGRESSION |" in text
    assert "| vhost-tx 64B q1 p1 | cycles_per_packet.ours | 60.000 | 45.000 | +25.0% | ✅ better |" \
        in text
    assert (tmp_path / "summary.md").read_text() == text


def test_compare_fails_on_failed_sides_and_missing_baselines(tmp_path):
    """A side that failed is a failure (exit 2), never "no data"; a missing baseline too,
    unless --allow-missing; the caveat names the noise measured within the new run."""
    fp = host.fingerprint()
    base = [_rec("vhost-rx", 1.0, 20.0, fp)]
    failed = [{**_rec("vhost-rx", 1.0, 20.0, fp), "ratio": None, "ours_mpps": None,
               "errors": {"ours": "agent exited (1)"}}]
    rows, regressed = compare.compare(base, failed, 0.05)
    assert regressed and rows[0].verdict == "FAILED"
    assert compare.failed_sides(failed) == ["vhost-rx [ours]: agent exited (1)"]
    unsupported = [{**_rec("scale-ports", 1.0, 20.0, fp),
                    "errors": {"testpmd": "unsupported: at most 32 ports"}}]
    assert compare.failed_sides(unsupported) == []
    noisy = [{**_rec("vhost-rx", 1.0, 20.0, fp), "raw_mpps": {"ours": [9.0, 10.0, 12.0]}}]
    assert compare.run_noise(noisy) == pytest.approx(0.3)
    assert "was 30.0%" in compare.markdown([], 0.05, compare.run_noise(noisy))
    b, f = tmp_path / "b.json", tmp_path / "f.json"
    b.write_text(json.dumps(base))
    f.write_text(json.dumps(failed))

    def run(*a):
        return subprocess.run([sys.executable, "-m", "perf", "compare", *map(str, a)],
                              capture_output=True, text=True, cwd=str(REPO))
    r = run(b, f)
    assert r.returncode == 2 and "vhost-rx [ours]: agent exited (1)" in r.stdout, r.stdout
    r = run(tmp_path / "none.json", b)
    assert r.returncode == 2 and "--allow-missing" in r.stderr, r.stdout + r.stderr
    r = run(tmp_path / "none.json", b, "--allow-missing")
    assert r.returncode == 0 and "nothing compared" in r.stdout, r.stdout + r.stderr


def test_fingerprint_key_names_the_host_kind():
    fp = host.fingerprint()
    key = host.fingerprint_key(fp)
    assert re.fullmatch(r"\d+cpu-[0-9a-f]{12}", key) and key == host.fingerprint_key(dict(fp))
    assert host.fingerprint_key({**fp, "kernel": fp["kernel"] + "x"}) != key
    assert host.fingerprint_key({**fp, "hugepages_2m_free": -1}) == key    # not what differs
    r = subprocess.run([sys.executable, "-m", "perf", "fingerprint"], capture_output=True,
                       text=True, cwd=str(REPO))
    assert r.returncode == 0 and r.stdout.strip() == key


def test_summary_and_sample_rate_maths():
    from perf import stats
    assert stats.summary([]) == {"median": None, "min": None, "max": None}
    assert stats.summary([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0}
    # a synthetic counter moving at exactly 1e6 packets/s of wall time, busy 3/4 of cycles
    t0 = time.monotonic()
    def cycles():
        ns = (time.monotonic() - t0) * 1e9
        return {"busy": int(3 * ns), "total": int(4 * ns), "packets": int(ns / 100), "hz": None}
    r = stats.sample_rate(lambda: int((time.monotonic() - t0) * 1e6), seconds=0.6, warmup_s=0.1,
                          period_s=0.2, cycles=cycles)
    assert len(r["periods"]) == 3
    assert all(abs(p - 1e6) / 1e6 < 0.01 for p in r["periods"]), r["periods"]
    assert r["pps"] == pytest.approx(1e6, rel=0.01)
    assert r["busy_pct"] == pytest.approx(75.0, abs=0.5)
    assert r["cycles_per_packet"] == pytest.approx(300.0, rel=0.01)


def test_run_scenario_records_unsupported_and_pairs_trials(monkeypatch):
    """A side that raises Unsupported is recorded as null with its reason; the others'
    paired ratios are the median of per-trial ratios (synthetic sides, exact rates)."""
    import contextlib

    from perf.scenarios import Unsupported

    def side(rate_pps):
        @contextlib.contextmanager
        def setup(o):
            t0 = time.monotonic()
            yield lambda: int((time.monotonic() - t0) * rate_pps)
        return setup

    @contextlib.contextmanager
    def unsupported(o):
        raise Unsupported("needs more ports than it has")
        yield
    monkeypatch.setitem(SCENARIOS, "synthetic", {"ours": side(3e6), "testpmd": side(2e6),
                                                "ovs-dpdk": unsupported, "what": "test"})
    monkeypatch.setattr(cli, "_available_sides",
                        lambda name: {k: v for k, v in SCENARIOS[name].items() if k != "what"})
    rec = cli.run_scenario("synthetic", Options(seconds=0.3, warmup_s=0.05), trials=2,
                           log=lambda s: None)
    assert rec["ours_mpps"] == pytest.approx(3.0, rel=0.02)
    assert rec["peers"]["testpmd"] == pytest.approx(2.0, rel=0.02)
    assert rec["ratio"] == pytest.approx(1.5, rel=0.02) and len(rec["raw_mpps"]["ours"]) == 2
    assert rec["peers"]["ovs-dpdk"] is None and "ovs-dpdk" not in rec["ratios"]
    assert rec["errors"] == {"ovs-dpdk": "unsupported: needs more ports than it has"}


def test_list_names_every_scenario():
    r = subprocess.run([sys.executable, "-m", "perf", "list"], capture_output=True, text=True,
                       cwd=str(REPO))
    assert r.returncode == 0
    listed = [l.split()[0] for l in r.stdout.splitlines() if l.strip()]
    assert listed == list(SCENARIOS)


def test_run_json_file(tmp_path):
    out = tmp_path / "run.json"
    r = subprocess.run([sys.executable, "-m", "perf", "run", "vhost-tx", "--seconds", "1",
                        "--warmup", "0.5", "--trials", "1", "--memory-mode", MODE, "--json",
                        str(out)], capture_output=True, text=True, cwd=str(REPO), timeout=300)
    assert r.returncode == 0, r.stderr
    # not a terminal: one plain progress line per measured side, no bar control characters
    steps = re.findall(r"^perf run: (\d)/2 \[\d:\d\d:\d\d elapsed(, ETA \d:\d\d:\d\d)?\] ",
                       r.stdout, re.M)
    assert [int(k) for k, _ in steps] == [1, 2] and "\r" not in r.stdout, r.stdout
    records = json.loads(out.read_text())
    assert [x["scenario"] for x in records] == ["vhost-tx"]
    assert records[0]["ours_mpps"] > 0 and records[0]["peers"]["testpmd"] > 0
    assert host.same_host(records[0]["host"], host.fingerprint())


def test_ndr_search():
    r = cli.ndr(Options(memory_mode=MODE), loss=0.0, trial_s=0.3, max_iterations=3,
                ceiling_pps=400_000, step=lambda s: None)
    assert r["scenario"] == "ndr" and len(r["trials"]) == 3
    rates = [t["pps"] for t in r["trials"]]
    assert rates[0] == 200_000 and rates[1] in (100_000, 300_000)   # a binary search
    for t in r["trials"]:
        assert t["sent"] == max(1, int(t["pps"] * 0.3)) and 0 <= t["received"] <= t["sent"]
        assert t["loss"] == pytest.approx((t["sent"] - t["received"]) / t["sent"])
    passed = [t for t in r["trials"] if t["loss"] == 0]
    assert passed and r["rate_mpps"] == pytest.approx(
        min(passed[-1]["pps"], passed[-1]["offered_pps"]) / 1e6, abs=1e-3)


def test_rfc2544_short_run_records(tmp_path):
    """One short real run (structure only: speed is never asserted in a test)."""
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    r = subprocess.run([sys.executable, "-m", "perf", "rfc2544", "--sizes", "64",
                        "--trial-seconds", "0.3", "--max-iterations", "2", "--memory-mode", MODE,
                        "--json", str(out), "--markdown", str(md)],
                       capture_output=True, text=True, cwd=str(REPO), timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    records = {rec["side"]: rec for rec in json.loads(out.read_text())}
    assert set(records) == {"ours", "testpmd"}
    for rec in records.values():
        assert rec["pkt_size"] == 64 and rec["ndr_mpps"] >= 0 and rec["pdr_mpps"] >= 0
        assert len(rec["trials"]["ndr"]) == len(rec["trials"]["pdr"]) == 2
        assert [x["load_pct"] for x in rec["frame_loss"]] == [10, 50, 90, 100]
        assert all(0 <= x["loss"] <= 1 for x in rec["frame_loss"])
    assert records["testpmd"]["latency_ns"] is None and records["testpmd"]["latency_absent"]
    if records["ours"]["ndr_mpps"] > 0:
        assert set(records["ours"]["latency_ns"]) == {"p50", "p99", "p999", "max"}
    assert "| 64 | ours |" in md.read_text() and "rfc2544: 1/" in r.stdout


def test_latency_short_run_records(tmp_path):
    out = tmp_path / "l.json"
    r = subprocess.run([sys.executable, "-m", "perf", "latency", "--seconds", "0.1",
                        "--trials", "1", "--memory-mode", MODE, "--json", str(out)],
                       capture_output=True, text=True, cwd=str(REPO), timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    recs = {rec["scenario"]: rec for rec in json.loads(out.read_text())}
    assert set(recs) == {"switch-latency", "vhost-latency"}
    sw = recs["switch-latency"]
    assert set(sw["latency_ns"]) == {"ours", "testpmd"} | ({"ovs-dpdk"} if ovs_dpdk_available()
                                                             else set())
    assert set(recs["vhost-latency"]["latency_ns"]) == {"ours"}
    assert "testpmd" in recs["vhost-latency"]["absent"]
    for rec in recs.values():
        for side, loads in rec["latency_ns"].items():
            assert set(loads) == {"10%", "50%", "90%", "1mpps"} and rec["max_mpps"][side] > 0
            for q in loads.values():
                assert {"p50", "p99", "p999", "max", "lost"} <= set(q) and q["lost"] >= 0
                assert len(q["trials"]) == 1 and q["steal_ms"][0] >= 0
                assert q["stalled_ms"][0] >= 0
    assert set(sw["targets"]) <= {"10%", "50%", "90%", "1mpps"} and sw["targets"]
    assert all("p99 <= testpmd" in goals for goals in sw["targets"].values())
    for rec in recs.values():                            # probed on both CPUs before the run
        assert len(rec["host_stalls"]) == 2
        assert all(st["max_us"] >= 0 and st["over_10us"] >= st["over_1ms"]
                   for st in rec["host_stalls"].values())


def _perf_json(tmp_path, *args):
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "perf", *args, "--memory-mode", MODE,
                        "--json", str(out)], capture_output=True, text=True, cwd=str(REPO),
                       timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return json.loads(out.read_text()), r.stdout


def test_notify_short_run_records(tmp_path):
    """perf notify: every mode at every load, with the fields its table prints."""
    rec, out = _perf_json(tmp_path, "notify", "--seconds", "0.1")
    assert set(rec) == {"poll", "sleep-50us", "sleep-300us", "interrupt"}
    for mode, loads in rec.items():
        assert set(loads) == {"idle", "1kpps", "10kpps", "1mpps", "max"}, mode
        for load, x in loads.items():
            assert {"cpu_share", "mpps", "p50_us", "p99_us", "lost", "steal_ms",
                    "intr_wakeups", "sleeps"} <= set(x), (mode, load)
            assert 0 <= x["cpu_share"] <= 1.5 and x["lost"] >= 0
            assert (x["mpps"] == 0) == (load == "idle"), (mode, load, x)
        assert loads["idle"]["p50_us"] is None and loads["1kpps"]["p50_us"] > 0
        assert loads["10kpps"]["p50_us"] > 0
    assert rec["interrupt"]["10kpps"]["intr_wakeups"] > 0
    assert "| interrupt | 10kpps |" in out


def test_measured_short_run_records(tmp_path):
    """perf measured: generator and receiver costs with and without measurement, latency
    in one process and across two, each with its loads."""
    rec, out = _perf_json(tmp_path, "measured", "--seconds", "0.1", "--rounds", "1")
    for name in ("generator", "receiver"):
        assert {"with", "without"} <= set(rec[name])
        assert all(rec[name][side]["mpps"] > 0 for side in ("with", "without"))
    assert rec["generator"]["ratio_mpps"] > 0 and rec["receiver"]["ratio_cycles"] > 0
    for name in ("latency_in_process", "latency_two_process"):
        lat = rec[name]
        assert lat["max_mpps"] > 0
        for load in ("10%", "50%", "90%"):
            assert {"p50", "p99", "p999", "max", "lost", "received", "steal_ms"} <= set(lat[load])
            assert lat[load]["received"] > 0 and lat[load]["p50"] <= lat[load]["max"]
    assert "latency two process" in out


def test_capture_short_run_records(tmp_path):
    """perf capture: both scenarios, every side, the capturing sides with their share."""
    rec, out = _perf_json(tmp_path, "capture", "--seconds", "0.1", "--rounds", "1")
    assert set(rec["median"]) == {"loopback", "vhost-rx"}
    for scenario, summary in rec["median"].items():
        assert set(summary) == {"none", "off", "rx-128", "rx-full", "rx-filter-1%"}
        assert summary["none"]["cycles_vs_none"] == 1.0
        for side, m in summary.items():
            assert m["mpps"] > 0 and m["cycles_per_packet"] > 0, (scenario, side)
            assert ("captured_share" in m) == side.startswith("rx-"), (scenario, side)
            if "captured_share" in m:
                assert 0 < m["captured_share"] <= 1.0, (scenario, side, m)
    assert "| vhost-rx | rx-full |" in out
