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
