"""perf/: every scenario in a short mode (well-formed record, positive rates; no speed
assertion), the comparison, the busy-poller guard, clean-up on interruption."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dpdkvirtio.testing import ovs_dpdk_available
from perf import cli, host
from perf.scenarios import SCENARIOS, Options
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
    assert rec["ratio"] == pytest.approx(rec["ours_mpps"] / rec["peers"]["testpmd"], rel=0.01)
    assert rec["ratio_of_medians"] == pytest.approx(rec["ratio"], rel=0.01)   # one trial
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
    rows, regressed = cli.compare(base, worse, 0.20)
    assert not regressed                                # within a wider tolerance


def test_compare_uses_ratios_across_hosts_and_absolute_on_the_same_host():
    fp = host.fingerprint()
    other = dict(fp, cpu_model="some other CPU")
    base = [_rec("vhost-rx", 1.0, 30.0, other)]
    new = [_rec("vhost-rx", 1.0, 10.0, fp)]             # slower host, same ratio: fine
    rows, regressed = cli.compare(base, new, 0.05, absolute=True)
    assert not regressed and "ratio" in rows[0][4]
    base = [_rec("vhost-rx", 1.0, 30.0, fp)]
    rows, regressed = cli.compare(base, new, 0.05, absolute=True)
    assert regressed and "ours_mpps" in rows[0][4]


def _busy_loop(cpu):
    return subprocess.Popen([sys.executable, "-c",
                             f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])


def test_busy_poller_guard_refuses():
    from perf.scenarios import BACK
    hog = _busy_loop(BACK)
    try:
        time.sleep(0.5)
        r = subprocess.run([sys.executable, "-m", "perf", "run", "vhost-rx", "--seconds", "1",
                            "--trials", "1"], capture_output=True, text=True, cwd=str(REPO),
                           timeout=60)
        assert r.returncode == 3
        assert "busy pollers" in r.stderr and f"pid {hog.pid}" in r.stderr
    finally:
        hog.kill()
        hog.wait()


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
        deadline = time.monotonic() + 30
        kids = set()
        while time.monotonic() < deadline:
            kids = _descendants(proc.pid)
            names = {Path(f"/proc/{k}/comm").read_text().strip() for k in kids
                     if Path(f"/proc/{k}/comm").exists()}
            if any("testpmd" in n for n in names) and len(kids) >= 3:
                break
            time.sleep(0.2)
        assert kids, "the benchmark started no processes"
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
