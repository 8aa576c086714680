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


LIVE = re.compile(r"t=\s*([\d.]+)s\s+(\S+ \S+) +([\d.]+) Mpps\s+(\S+ \S+) +([\d.]+) Mpps")


@pytest.mark.parametrize("direction", ["to-vhost", "to-virtio"])
def test_demo_live_lines_describe_one_interval_on_both_sides(direction):
    """Each live line gives the sender's and the receiver's rate over the same second: at
    most the ring (1024 packets) and a sampling error apart. (The first lines once read
    0.00 on the peer's side, and later each lagged a second behind the other.)"""
    r = _demo("--seconds", "4", "--direction", direction, "--json")
    assert r.returncode == 0, r.stderr
    lines = [m.groups() for m in map(LIVE.search, r.stderr.splitlines()) if m]
    assert len(lines) >= 3, r.stderr
    stamps = [float(t) for t, *_ in lines]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), r.stderr
    for t, _, a, _, b in lines:
        a, b = float(a), float(b)
        assert max(a, b) > 0.5, r.stderr
        assert abs(a - b) <= 0.05 * max(a, b) + 0.05, (t, a, b, r.stderr)


class _FakeSide:
    role = "rx"

    def __init__(self):
        self.count = 0

    def totals(self):
        return {"rx_packets": self.count, "tx_packets": 0}


class _FakePeer:
    def __init__(self):
        self.ticks = []

    def read_events(self, timeout_s):
        return []


def test_live_rates_are_read_for_the_peers_interval():
    """Synthetic clocks: our counter grows 1 M per second, the peer's 2 M per second until
    t=2 and then 0; its ticks arrive late. Each line pairs the same interval."""
    import io

    from dpdkvirtio.demo import _Live
    side, peer, out = _FakeSide(), _FakePeer(), io.StringIO()
    live = _Live(side, peer, out, t0=100.0)
    for k in range(1, 401):                      # our samples every 10 ms up to t=104
        now = 100.0 + k / 100
        side.count = int(1e6 * (now - 100.0))
        if k % 100 == 50:                        # the peer's tick for t=k//100 arrives late
            s = k // 100
            peer.ticks.append({"t": 100.0 + s, "tx_packets": 2_000_000 * min(s, 2), "rx_packets": 0})
        live(now)
    rows = [LIVE.search(line).groups() for line in out.getvalue().splitlines()]
    assert [(float(t), float(a), float(b)) for t, _, a, _, b in rows] == [
        (1.0, 2.0, 1.0), (2.0, 2.0, 1.0), (3.0, 0.0, 1.0)]
