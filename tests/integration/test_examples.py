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
