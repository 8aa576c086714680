"""Test helpers: short socket directories, a dpdk-testpmd driver, a second process of our
own (the agent), and process/socket leak checks. Every process started here is ended,
also when a test fails."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dpdkvirtio.peers import TESTPMD, Agent, AgentError, Testpmd, cpus, front_back, unique_prefix  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def wait_still(read, quiet_s: float = 0.4, timeout_s: float = 60.0, poll_s: float = 0.02):
    """Call ``read()`` until its value has not changed for ``quiet_s``; return that value.
    AssertionError when it still moves after ``timeout_s``."""
    deadline, last, since = time.monotonic() + timeout_s, None, time.monotonic()
    while time.monotonic() < deadline:
        cur = read()
        if cur != last:
            last, since = cur, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            return cur
        time.sleep(poll_s)
    raise AssertionError(f"counter kept moving (last value {last})")


def settle(port, key: str = "rx_packets", quiet: float = 0.4, timeout: float = 60.0):
    """A port counter once it stops moving."""
    return wait_still(lambda: port.stats()[key], quiet, timeout)


def short_dir(prefix="dvt") -> str:
    """A fresh directory under /tmp with a short name (socket paths must stay < 108 bytes)."""
    return tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp")


def free_hugepages_mb() -> int:
    try:
        free = int(Path("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages").read_text())
        return free * 2
    except OSError:
        return 0


def run_python(code: str, timeout: float = 60.0, env=None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (for tests that need their own EAL)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO), env=env)


def our_processes() -> list[str]:
    """Descendants of this test process still alive (their command lines)."""
    me = os.getpid()
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == me:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if (p / "status").read_text().find("State:\tZ") < 0:
                    out.append(f"{p.name}: {cmd}")
        except (OSError, IndexError, ValueError):
            continue
    return out


def steady_window(built, received, dropped, seconds: float = 0.5) -> dict:
    """Deltas of three cumulative counters (callables) over ``seconds`` of steady traffic:
    after restarts, a healthy port receives nearly everything built again, a dead or
    degraded one turns it into drops."""
    b0, r0, d0 = built(), received(), dropped()
    time.sleep(seconds)
    return {"built": built() - b0, "received": received() - r0, "dropped": dropped() - d0}


def lcore_cpu_seconds(lcore: int) -> float:
    """CPU time (utime + stime, s) the thread of DPDK ``lcore`` of this process has used
    (DPDK 22.11 names worker threads rte-worker-<lcore>)."""
    import glob
    tasks = [t for t in glob.glob("/proc/self/task/*")
             if Path(t, "comm").read_text().strip() == f"rte-worker-{lcore}"]
    assert len(tasks) == 1, f"no thread for lcore {lcore}"
    fields = Path(tasks[0], "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lcore_cpu_share(lcore: int, seconds: float) -> float:
    """Share of one CPU the thread of DPDK ``lcore`` used over the next ``seconds``."""
    c0, t0 = lcore_cpu_seconds(lcore), time.monotonic()
    time.sleep(seconds)
    return (lcore_cpu_seconds(lcore) - c0) / (time.monotonic() - t0)


def drain(port, queue=0, idle_polls=2000):
    """Receive and free until the queue has been empty for idle_polls polls."""
    import dpdkvirtio as dv
    b = dv.Burst(64)
    got, idle = 0, 0
    while idle < idle_polls:
        n = port.rx_burst(queue, b)
        if n:
            got += n
            b.free()
            idle = 0
        else:
            idle += 1
    return got


def send_and_receive(sender, receiver, count: int, timeout_s: float = 5.0) -> int:
    """Send ``count`` 64-byte frames from ``sender`` queue 0 (all must be taken) and
    return how many ``receiver`` queue 0 got within ``timeout_s``."""
    import dpdkvirtio as dv
    b = dv.Burst(count)
    b.alloc(sender.mempool, count, dv.udp_frame(64))
    assert sender.tx_burst(0, b) == count
    got, rx = 0, dv.Burst(count)
    deadline = time.monotonic() + timeout_s
    while got < count and time.monotonic() < deadline:
        got += receiver.rx_burst(0, rx)
        rx.free()
    return got
