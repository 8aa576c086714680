"""The example topologies of examples/topologies: every one plans (dry run, JSON), and the
self-contained one (a generator and a receiver of measured streams on a ring port) runs
for real with exact counts."""
import json
import os
import re
import time

import pytest

from tests.helpers import REPO, unique_prefix
from tests.integration.running import Running, cli

EXAMPLES = sorted((REPO / "examples" / "topologies").glob("*.toml"))


def test_there_are_examples():
    assert {p.name for p in EXAMPLES} >= {"two-guests.toml", "qemu-client.toml",
                                          "measured-loop.toml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_plans(path):
    r = cli("run", str(path), "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["ports"] and plan["pmd_cpus"], plan


def test_measured_loop_runs(d):
    """measured-loop.toml as shipped, but with its control socket and file prefix moved
    out of the way: the generator's 200,000 packets of flow 1 all come back, counted."""
    prefix = unique_prefix("dvex")
    text = (REPO / "examples" / "topologies" / "measured-loop.toml").read_text()
    text, n = re.subn(r'dpdk-file-prefix = "[^"]*"', f'dpdk-file-prefix = "{prefix}"', text)
    assert n == 1
    sock = os.path.join(d, "ex.ctl")
    topo = os.path.join(d, "topo.toml")
    with open(topo, "w") as f:
        f.write(text + f'\n[control]\nsocket = "{sock}"\n')
    sw = Running.topology(topo, sock)
    try:
        end = time.monotonic() + 60
        while not sw.ctl("generators")["probe"]["done"]:
            assert time.monotonic() < end, sw.ctl("generators")
            time.sleep(0.2)
        sw.settle("loop")
        flows = sw.ctl("flow-stats")
        stats = sw.stats()["loop"]
    finally:
        assert sw.stop() == 0
    count = 200_000
    assert len(flows) == 1 and flows[0]["flow_id"] == 1, flows
    f = flows[0]
    assert f["sent"] == count == f["received"] + f["lost_total"], f
    assert f["lost_total"] == stats["tx_dropped"] and f["received"] == stats["rx_packets"]
    assert f["out_of_order"] == f["duplicates"] == 0


def _script(*args, env=None, timeout=300):
    import subprocess
    import sys
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          cwd=str(REPO), timeout=timeout, env={**os.environ, **(env or {})})


def test_pump_from_python_script():
    r = _script("examples/pump_from_python.py", "--seconds", "1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["received"] == out["sent"] > 100_000, out


def test_affinity_sweep_script(tmp_path):
    rows_file = tmp_path / "rows.json"
    r = _script("examples/affinity_sweep.py", "--seconds", "0.3", "--trials", "2",
                "--bursts", "16", "--latency", "--json", rows_file)
    assert r.returncode == 0, r.stderr
    rows = json.loads(rows_file.read_text())
    assert len(rows) == 2 * 5 and {r["trial"] for r in rows} == {0, 1}
    assert all(r["mpps"] > 0 and r["p99_us"] >= r["p50_us"] > 0 for r in rows), rows
    assert "affinity sweep: 10/10" in r.stderr and "crossed, burst 16" in r.stdout
    assert all(r["gen_cycles_per_packet"] > 0 and r["cycles_per_packet"] > 0 for r in rows)
    assert "within noise (too few trials for an interval)" in r.stdout
    assert re.search(r'apply: pmd-cpu-mask=0x[0-9a-f]+ pmd-rxq-affinity="0:\d+,1:\d+" burst=32',
                     r.stdout), r.stdout


@pytest.mark.slow
def test_perf_ci_script(tmp_path):
    """Without a baseline it fails (2) unless told to store one; the first run with
    ALLOW_MISSING=1 stores it, the second compares against it."""
    import subprocess
    env = {**os.environ, "SCENARIOS": "vhost-tx", "TRIALS": "1", "TRIAL_SECONDS": "0.5",
           "BASELINE": str(tmp_path / "base.json"), "TOLERANCE": "0.95",
           "PY": os.path.join(os.path.dirname(__import__("sys").executable), "python")}
    none = subprocess.run(["examples/perf_ci.sh"], cwd=str(REPO), capture_output=True,
                          text=True, timeout=600, env={**env, "OUT": str(tmp_path / "0.json")})
    assert none.returncode == 2 and "ALLOW_MISSING=1" in none.stderr, none.stdout + none.stderr
    first = subprocess.run(["examples/perf_ci.sh"], cwd=str(REPO), capture_output=True,
                           text=True, timeout=600, env={**env, "OUT": str(tmp_path / "1.json"),
                                                        "ALLOW_MISSING": "1"})
    assert first.returncode == 0 and "stored this run as" in first.stdout, first.stderr
    second = subprocess.run(["examples/perf_ci.sh"], cwd=str(REPO), capture_output=True,
                            text=True, timeout=600, env={**env, "OUT": str(tmp_path / "2.json")})
    assert second.returncode == 0, second.stdout + second.stderr
    assert re.search(r"^vhost-tx\s+\d", second.stdout, re.M), second.stdout
