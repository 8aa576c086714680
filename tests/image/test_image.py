"""The perf-CI image (docker/Dockerfile) is built on this host by `scripts/image.sh build`
(`make image`), with its own Debian base when no registry answers, and the demo runs in
it with the host's hugepages and the least privilege docker/README.md documents."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import REPO

PIDFILE = "/run/dpdkvirtio-dockerd.pid"


def _sh(*args, timeout):
    return subprocess.run(["scripts/image.sh", *args], cwd=str(REPO), capture_output=True,
                          text=True, timeout=timeout)


def _engine_up() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.mark.slow
def test_image_builds_and_runs_the_demo_with_host_hugepages():
    engine_was_up = _engine_up()
    try:
        r = _sh("build", timeout=2400)
        assert r.returncode == 0, r.stderr[-4000:]
        free = int(Path("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages").read_text())
        r = _sh("demo", "--seconds", "3", timeout=600)
        assert r.returncode == 0, r.stderr[-4000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert out["conserved"] is True and out["received"] > 100_000, out
        assert out["sent"] == out["received"] + sum(out["dropped"].values())
        if free >= 512:                       # the demo's 512 MB: the host's pages are used
            assert out["memory_mode"] == "hugepages", out
        r = _sh("run", ".venv/bin/python", "-m", "dpdkvirtio", "doctor", "--json", timeout=300)
        checks = {c["check"]: c for c in json.loads(r.stdout)}
        assert checks["dpdk version"]["verdict"] == "ok", checks
    finally:
        if not engine_was_up and os.path.exists(PIDFILE):     # the engine this test started
            pid = int(Path(PIDFILE).read_text())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
                time.sleep(0.2)
