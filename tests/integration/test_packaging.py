"""Packaging: `python -m build` makes an sdist and a wheel against the system DPDK; the
wheel installs into a fresh venv (no editable install, no repository on sys.path) and
works there; without DPDK's pkg-config file the build says to install libdpdk-dev."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPO, unique_prefix

VENV_BIN = os.path.dirname(sys.executable)

SMOKE = textwrap.dedent("""
    import json, os, sys, tempfile, time
    import dpdkvirtio as dv
    assert "site-packages" in dv.__file__, dv.__file__
    assert not any(p.rstrip("/") == REPO for p in sys.path), sys.path
    eal = dv.init(file_prefix=PREFIX, log_level="warning")
    d = tempfile.mkdtemp(prefix="dvwhl-")
    v = dv.VhostUserPort(os.path.join(d, "v.sock"))
    u = dv.VirtioUserPort(v.path, queue_size=256)
    assert v.wait_running(10) and u.wait_link_up(5)
    import numpy as np
    frame = np.frombuffer(dv.udp_frame(64), dtype=np.uint8)
    tx, rx, sink = dv.Burst(32), dv.Burst(32), dv.Burst(32)
    sent = got = 0
    deadline = time.monotonic() + 30
    while got < 10_000 and time.monotonic() < deadline:
        if sent < 10_000 and len(tx) == 0:
            tx.alloc(u.mempool, min(32, 10_000 - sent), frame)
            sent += len(tx)
        u.tx_burst(0, tx, drop_unsent=False)
        got += v.rx_burst(0, sink)
        sink.free()
    u.close(); v.close(); os.rmdir(d)
    print(json.dumps({"version": dv.__version__, "sent": sent, "received": got,
                      "memory_mode": eal.memory_mode}))
""")


def _run(cmd, **kw):
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ["PATH"])
    env.pop("PYTHONPATH", None)
    env.update(kw.pop("env", {}))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)


def _version():
    for line in (REPO / "meson.build").read_text().splitlines():
        if line.strip().startswith("version:"):
            return line.split("'")[1]
    raise AssertionError("meson.build has no version")


@pytest.mark.slow
def test_sdist_and_wheel_install_and_run_in_a_fresh_venv(tmp_path):
    src, dist, venv = tmp_path / "src", tmp_path / "dist", tmp_path / "venv"
    r = _run(["git", "clone", "-q", str(REPO), str(src)])
    assert r.returncode == 0, r.stderr
    r = _run([sys.executable, "-m", "build", "--no-isolation", "-o", str(dist)], cwd=src,
             timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    version = _version()
    sdists = list(dist.glob(f"dpdkvirtio-{version}.tar.gz"))
    wheels = list(dist.glob(f"dpdkvirtio-{version}-cp3*-linux_x86_64.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(os.listdir(dist))
    import tarfile
    import zipfile
    with tarfile.open(sdists[0]) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {"meson.build", "pyproject.toml", "cython/dpdkvirtio/_core/dp_hot.pyx",
            "cython/dpdkvirtio/_core/dp_types.pxd",
            "dpdkvirtio/__init__.py"} <= names
    with zipfile.ZipFile(wheels[0]) as z:
        members = set(z.namelist())
    assert any(m.startswith("dpdkvirtio/_core/dp_hot.cpython") for m in members)
    assert "dpdkvirtio/py.typed" in members and "dpdkvirtio/_core/port.pyi" in members

    r = _run(["/usr/bin/python3", "-m", "venv", str(venv)])
    assert r.returncode == 0, r.stderr
    r = _run([str(venv / "bin" / "pip"), "install", "-q", str(wheels[0])], timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    script = f"REPO = {str(REPO)!r}\nPREFIX = {unique_prefix('whl')!r}\n" + SMOKE
    r = _run([str(venv / "bin" / "python"), "-I", "-c", script], cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"version": version, "sent": 10_000, "received": 10_000,
                   "memory_mode": out["memory_mode"]}, out
    r = _run([str(venv / "bin" / "dpdkvirtio"), "doctor", "--json"], cwd=tmp_path, timeout=120)
    checks = {c["check"]: c for c in json.loads(r.stdout)}
    assert checks["dpdk version"]["verdict"] == "ok", checks


def test_build_without_dpdk_names_the_package(tmp_path):
    """pkg-config cannot find libdpdk: the build stops with a message naming libdpdk-dev."""
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
              "-w", str(tmp_path), f"-Cbuild-dir={tmp_path / 'build'}", str(REPO)],
             timeout=300,
             env={"PKG_CONFIG_LIBDIR": str(tmp_path / "none"), "PKG_CONFIG_PATH": ""})
    assert r.returncode != 0
    assert "libdpdk-dev" in r.stdout + r.stderr and "DPDK 22.11" in r.stdout + r.stderr, \
        r.stdout[-2000:] + r.stderr[-2000:]
