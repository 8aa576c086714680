"""`python -m dpdkvirtio demo`: two processes, live output, conservation, JSON."""
import json
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO, free_hugepages_mb


def _demo(*args, timeout=90):
    return subprocess.run([sys.executable, "-m", "dpdkvirtio", "demo", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=str(REPO))


@pytest.mark.parametrize("mode", ["no-huge", pytest.param("hugepages", marks=pytest.mark.skipif(
    free_hugepages_mb() < 1200, reason="needs free hugepages"))])
@pytest.mark.parametrize("engine", ["c", "python"])
def test_demo_json_conserves(mode, engine):
    r = _demo("--seconds", "2", "--json", "--memory-mode", mode, "--engine", engine)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("sent", "received", "dropped", "mpps", "memory_mode", "conserved"):
        assert key in out
    assert out["conserved"] is True and out["memory_mode"] == mode
    assert out["sent"] == out["received"] + sum(out["dropped"].values())
    assert out["received"] > 100_000
    assert set(out["mpps"]) == {"virtio-user tx", "vhost-user rx"}
    assert "Mpps" in r.stderr                          # live lines go to stderr with --json


def test_demo_other_direction_json_and_table():
    r = _demo("--seconds", "2", "--direction", "to-virtio", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["direction"] == "to-virtio" and out["conserved"] is True
    assert out["sent"] == out["received"] + sum(out["dropped"].values())
    assert out["received"] > 100_000
    assert set(out["mpps"]) == {"vhost-user tx", "virtio-user rx"}
    # the human table says the same thing on its own row
    r = _demo("--seconds", "1", "--direction", "to-virtio")
    assert r.returncode == 0, r.stderr
    rows = dict(re.findall(r"^  (\S.*?)\s{2,}(\S+)$", r.stdout, re.M))
    assert rows["conserved (sent == received + drops)"] == "yes", r.stdout
    assert int(rows["sent"].replace(",", "")) == int(rows["received"].replace(",", "")) + sum(
        int(v.replace(",", "")) for k, v in rows.items() if k.startswith("dropped"))
    assert {"Mpps vhost-user tx", "Mpps virtio-user rx", "memory mode"} <= set(rows)


@pytest.mark.parametrize("args, text", [(["--seconds", "0"], "--seconds"),
                                        (["--pkt-size", "20"], "--pkt-size")])
def test_demo_bad_arguments_one_line(args, text):
    r = _demo(*args)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and text in r.stderr and "Traceback" not in r.stderr
