"""The debug build (meson -Ddebug_checks=true): every L1 resource is counted where it is
made and freed, and a workload that closes what it opened ends with every count at 0.

The test builds that variant into build/debug-checks (incremental after the first run),
assembles a package from it and the Python sources, and runs a workload in a process of
its own (the editable release build stays out of its way)."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from perf import builds
from tests.helpers import short_dir, unique_prefix

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "debug-checks"

pytestmark = pytest.mark.slow

WORKLOAD = """
import gc, json, os, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
sys.path.insert(0, os.environ["DV_PKG"])
import dpdkvirtio as dv
from dpdkvirtio._core import debug
assert dv.__file__.startswith(os.environ["DV_PKG"]), dv.__file__
assert debug.enabled()
out = {"start": debug.live()}
dv.init(memory_mode="no-huge", file_prefix=os.environ["DV_PREFIX"], log_level="warning")
sock = os.path.join(os.environ["DV_DIR"], "v.sock")
v = dv.VhostUserPort(sock)
u = dv.VirtioUserPort(sock)
assert v.wait_running(10) and u.wait_link_up(10)
pmd = dv.Pmd()
pmd.add_rxq(v, 0, "rxonly")
g = pmd.add_generator(u, 0, dv.Stream(dv.udp_frame(64), count=10_000, mode="single_burst"))
burst = dv.Burst(32)
pmd.start()
assert g.wait_done(20)
out["peak"] = debug.live()
pmd.close()
burst.free()
u.close()
v.close()
del g, burst, pmd, u, v
gc.collect()
out["closed"] = debug.live()
leak = dv.Burst(8)                      # held on purpose: the counter must see it
out["one_burst_held"] = debug.live()
del leak
out["released"] = debug.live()
print(json.dumps(out))
"""


def _build() -> Path:
    # -O0: the counts do not depend on the optimiser, and the project's -O3 made this
    # compile 3-4x slower (pmd.pyx.c: 10.1 s at -O3, 2.9 s at -O0 here)
    try:
        builds.compile_tree(REPO, BUILD, ["-Ddebug_checks=true", "-Doptimization=0"],
                            timeout_s=900)
    except builds.BuildError as e:
        pytest.fail(str(e))
    return BUILD


def test_debug_build_counts_every_l1_resource_back_to_zero(tmp_path):
    pkg = builds.assemble(REPO, _build(), tmp_path)
    d = short_dir("dvdbg")
    try:
        env = dict(os.environ, DV_PKG=str(pkg), DV_DIR=d, DV_PREFIX=unique_prefix("dvdbg"))
        r = subprocess.run([sys.executable, "-c", textwrap.dedent(WORKLOAD)], env=env,
                           capture_output=True, text=True, timeout=120, cwd=d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out["start"].values()) == {0}
    peak = out["peak"]
    assert peak["port"] == 2 and peak["mempool"] == 2 and peak["pmd"] == 1
    assert peak["generator"] == 1 and peak["plan"] >= 1 and peak["burst"] >= 1
    assert peak["counters"] >= 4             # two ports' queue rows, the PMD's two blocks
    assert out["closed"] == {k: 0 for k in peak}, out["closed"]
    assert out["one_burst_held"]["burst"] == 1
    assert out["released"] == {k: 0 for k in peak}
