"""hostinfo.stalls: what takes a CPU away from a thread that never yields."""
import subprocess

import pytest

from dpdkvirtio import hostinfo
from tests import helpers


def test_a_competing_process_shows_as_stalls():
    cpu = helpers.cpus()[-1]
    # a busy process on the same CPU: the scheduler gives each about half, in slices of
    # milliseconds, and the probe sees every slice it did not get as a gap
    hog = subprocess.Popen(["taskset", "-c", str(cpu), "sh", "-c", "while :; do :; done"])
    try:
        shared = hostinfo.stalls([cpu], 1.0)[cpu]
    finally:
        hog.kill()
        hog.wait()
    assert shared["over_1ms"] >= 20 and shared["max_us"] >= 1000, shared
    assert 250 <= shared["stalled_ms"] <= 800, shared
    assert shared["over_10us"] >= shared["over_100us"] >= shared["over_1ms"] >= shared["over_10ms"]
    alone = hostinfo.stalls([cpu], 1.0)[cpu]
    assert alone["stalled_ms"] < shared["stalled_ms"] / 2, (alone, shared)
    assert set(alone) == {"over_10us", "over_100us", "over_1ms", "over_10ms", "stalled_ms",
                          "max_us", "steal_ms"} and alone["steal_ms"] >= 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="must be among this process's"):
        hostinfo.stalls([4096], 0.1)
    with pytest.raises(ValueError, match="seconds must be in"):
        hostinfo.stalls([helpers.cpus()[0]], 0)


def test_tsc_offset_between_the_two_cpus():
    """The ping-pong offset of one CPU's TSC from the other's: here within the bound that
    perf latency enforces, and the same measured from either side (a ~ -b within their
    uncertainties)."""
    a, b = helpers.cpus()[0], helpers.cpus()[-1]
    if a == b:
        pytest.fail("needs two CPUs (a one-CPU host cannot place a sender and a receiver apart)")
    ab = hostinfo.tsc_offset(a, b)
    ba = hostinfo.tsc_offset(b, a)
    for r in (ab, ba):
        assert 0 < r["rtt_min_ns"] < 20_000 and abs(r["uncertainty_ns"] - r["rtt_min_ns"] / 2) <= 0.1, r
        assert abs(r["offset_ns"]) - r["uncertainty_ns"] <= hostinfo.TSC_OFFSET_BOUND_NS, r
    assert abs(ab["offset_ns"] + ba["offset_ns"]) <= ab["uncertainty_ns"] + ba["uncertainty_ns"] + 1, (ab, ba)
    with pytest.raises(ValueError, match="two different CPUs"):
        hostinfo.tsc_offset(a, a)
