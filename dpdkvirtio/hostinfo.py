"""Host facts: a fingerprint for benchmark records, CPU topology, busy pollers."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Set
from pathlib import Path


def fingerprint() -> dict:
    """What makes absolute figures comparable: CPU model and count, kernel, DPDK, hugepages."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from . import hugepages
    from .eal import dpdk_version
    info = hugepages.read_info()
    pool = info.system_pool(2048)
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "dpdk_version": dpdk_version(),
        "hugepages_2m_total": pool.total if pool else 0,
        "hugepages_2m_free": pool.free if pool else 0,
        "python": platform.python_version(),
    }


def same_host(a: dict, b: dict) -> bool:
    keys = ("cpu_model", "cpu_count", "kernel", "dpdk_version")
    return all(a.get(k) == b.get(k) for k in keys)


def _proc_times() -> dict[int, tuple[int, int, str]]:
    out = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            for t in (p / "task").iterdir():
                stat = (t / "stat").read_text()
                comm_end = stat.rindex(")")
                fields = stat[comm_end + 2:].split()
                ticks = int(fields[11]) + int(fields[12])
                cpu = int(fields[36])
                out[int(t.name)] = (ticks, cpu, p.name)
        except (OSError, ValueError, IndexError):
            continue
    return out


def busy_pollers(cpus: list[int], window_s: float = 0.5, threshold: float = 0.4,
                 ignore_pids: Set[int] = frozenset()) -> list[dict]:
    """Threads that used more than ``threshold`` of a CPU in ``cpus`` over ``window_s``."""
    hz = os.sysconf("SC_CLK_TCK")
    a = _proc_times()
    time.sleep(window_s)
    b = _proc_times()
    busy = []
    for tid, (ticks, cpu, pid) in b.items():
        if tid not in a or int(pid) in ignore_pids or cpu not in cpus:
            continue
        share = (ticks - a[tid][0]) / hz / window_s
        if share > threshold:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
            except OSError:
                cmd = "?"
            busy.append({"pid": int(pid), "tid": tid, "cpu": cpu, "share": round(share, 2),
                         "cmd": cmd.strip()})
    return busy


def cpu_topology() -> dict:
    """CPUs online, SMT siblings, isolated CPUs (isolcpus), nohz_full."""
    base = Path("/sys/devices/system/cpu")

    def read(p):
        try:
            return (base / p).read_text().strip()
        except OSError:
            return ""

    def expand(text):
        out = []
        for part in filter(None, text.split(",")):
            a, _, b = part.partition("-")
            out += list(range(int(a), int(b or a) + 1))
        return out

    online = expand(read("online"))
    siblings = {}
    for c in online:
        sib = expand(read(f"cpu{c}/topology/thread_siblings_list"))
        siblings[c] = [s for s in sib if s != c]
    return {"online": online, "allowed": sorted(os.sched_getaffinity(0)), "siblings": siblings,
            "isolated": expand(read("isolated")), "nohz_full": expand(read("nohz_full"))}


OVS_VSWITCHD_DPDK = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


def ovs_dpdk_available() -> bool:
    """Whether Debian's OVS-DPDK (openvswitch-switch-dpdk) is installed."""
    import shutil
    return all(os.path.exists(p) for p in (OVS_VSWITCHD_DPDK, OVS_SCHEMA)) and \
        all(shutil.which(t) for t in ("ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-ofctl"))
