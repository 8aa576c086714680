"""Shared fixtures.

- ``eal``: one DPDK EAL for the whole pytest process (DPDK initialises once per process),
  memory mode auto. Tests that need other EAL arguments run in a fresh interpreter
  (tests/isolated) or in a second process (helpers.Agent, dpdk-testpmd).
- Every test is checked for leftovers: child processes, running PMD threads, ports it
  opened, and socket files in its directory.
"""

import os
import shutil
import time

import pytest

from tests import helpers

pytest_plugins = ["tests.skippolicy"]


def pytest_addoption(parser):
    parser.addoption("--hostile-seed", type=int, default=None,
                     help="replay a hostile-guest fuzz run (each run draws a seed and prints "
                          "it at the top and into the JUnit properties)")
    parser.addoption("--fuzz-seed", type=int, default=None,
                     help="replay a malformed-session fuzz run (seed printed as above)")


def pytest_report_header(config):
    seeds = config.fuzz_seeds
    return [f"fuzz seeds: --hostile-seed {seeds['hostile']} --fuzz-seed {seeds['malformed']}"]


def pytest_configure(config):
    # each run draws fresh fuzz seeds (unless given): the suite never replays the same
    # cases forever, and the header above says how to replay this run's
    import secrets
    config.fuzz_seeds = {
        "hostile": config.getoption("--hostile-seed") or secrets.randbits(31) | 1,
        "malformed": config.getoption("--fuzz-seed") or secrets.randbits(31) | 1,
    }
    for name, text in [
        ("slow", "long tests (real guest, soak, large scale); CI runs them"),
        ("guest", "boots a Linux guest under QEMU (TCG)"),
        ("testpmd", "uses dpdk-testpmd as the peer"),
        ("ovs", "uses OVS-DPDK as the peer"),
        ("isolated", "runs in a fresh interpreter"),
    ]:
        config.addinivalue_line("markers", f"{name}: {text}")


@pytest.fixture(scope="session")
def eal():
    import dpdkvirtio as dv
    # one worker lcore per CPU, and one more on the last CPU: the reliability tests run a
    # PMD of their own besides the untouched pair's (two pollers may share a CPU)
    c = helpers.cpus()
    workers = {i + 1: cpu for i, cpu in enumerate(sorted(set(c)))}
    workers[len(workers) + 1] = c[-1]
    e = dv.init(memory_mode="auto", file_prefix=helpers.unique_prefix("pyt"), log_level="warning",
                workers=workers)
    yield e


@pytest.fixture
def sockdir():
    d = helpers.short_dir()
    yield d
    leftovers = [f for f in os.listdir(d)]
    shutil.rmtree(d, ignore_errors=True)
    assert not leftovers, f"files left in the socket directory: {leftovers}"


@pytest.fixture(autouse=True)
def _no_leftovers(request):
    yield
    # child processes must be gone
    deadline = time.monotonic() + 5
    while helpers.our_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = helpers.our_processes()
    assert not left, f"processes outlived the test: {left}"
    # PMD threads and ports opened by a test are closed by it (no EAL module: no DPDK used)
    import sys
    eal_mod = sys.modules.get("dpdkvirtio.eal")
    cur = eal_mod._current if eal_mod is not None else None
    if cur is not None and not cur.closed:
        from dpdkvirtio.pmd import Pmd
        running = [p for p in cur.objects(Pmd) if p.running]
        for p in running:
            p.close()
        assert not running, f"PMD threads left running: {running}"
        ports = [o for o in cur.objects() if hasattr(o, "rx_burst") and not o.closed]
        for p in ports:
            p.close()
        assert not ports, f"ports left open: {ports}"
