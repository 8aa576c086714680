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


_SAME_HOST_KEYS = ("cpu_model", "cpu_count", "kernel", "dpdk_version")


def same_host(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in _SAME_HOST_KEYS)


def fingerprint_key(fp: dict | None = None) -> str:
    """A file-name-safe key of what same_host compares, e.g. for a stored baseline:
    ``2cpu-<12 hex digits>``. Two hosts with the same key give comparable figures."""
    import hashlib
    fp = fingerprint() if fp is None else fp
    text = "\n".join(f"{k}={fp.get(k)}" for k in _SAME_HOST_KEYS)
    return f"{fp.get('cpu_count')}cpu-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


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


def steal_ms(cpus) -> float:
    """Time the hypervisor ran something else on ``cpus`` so far (/proc/stat steal, in its
    10 ms ticks), ms. The difference over a run is a lower bound of its stolen time."""
    names = {f"cpu{c}" for c in cpus}
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts[0] in names and len(parts) > 8:
                total += int(parts[8])
    return total * 1000.0 / os.sysconf("SC_CLK_TCK")


def stalls(cpus, seconds: float = 2.0) -> dict[int, dict]:
    """Spin one thread pinned to each of ``cpus`` at once for ``seconds`` and report what
    took the CPU away: {cpu: {"over_10us", "over_100us", "over_1ms", "over_10ms": counts of
    gaps, "stalled_ms", "max_us", "steal_ms"}}. Every CPU is busy meanwhile: run it before
    starting pollers, never beside them. Raises ValueError for a CPU this process may not
    use."""
    import threading

    from ._core import hoststall
    cpus = list(cpus)
    allowed = os.sched_getaffinity(0)
    if not cpus or any(c not in allowed for c in cpus):
        raise ValueError(f"stalls: CPUs {cpus} must be among this process's {sorted(allowed)}")
    results: dict[int, dict] = {}
    errors: list[OSError | ValueError] = []

    def spin(cpu):
        try:
            os.sched_setaffinity(0, {cpu})        # this thread only
            results[cpu] = hoststall.probe(seconds)
        except (OSError, ValueError) as e:        # re-raised below, in the caller
            errors.append(e)

    steal0 = {c: steal_ms([c]) for c in cpus}
    threads = [threading.Thread(target=spin, args=(c,), name=f"stall-probe-{c}") for c in cpus]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    names = {10_000: "over_10us", 100_000: "over_100us", 1_000_000: "over_1ms",
             10_000_000: "over_10ms"}
    return {c: {**{names[e]: n for e, n in r["over_ns"].items()},
                "stalled_ms": round(r["stalled_ns"] / 1e6, 3), "max_us": round(r["max_ns"] / 1e3, 1),
                "steal_ms": steal_ms([c]) - steal0[c]}
            for c, r in sorted(results.items())}


TSC_OFFSET_BOUND_NS = 1_000      # latency across CPUs is refused beyond this offset


def tsc_offset(cpu_leader: int, cpu_follower: int, rounds: int = 2000,
               timeout_s: float = 2.0) -> dict:
    """The offset of ``cpu_follower``'s TSC from ``cpu_leader``'s, by ping-pong over one
    cache line: each round the leader reads its TSC and writes a round number, the
    follower reads its TSC on seeing it and answers, the leader reads its TSC again. In
    the round with the shortest round trip the follower's reading lies between the
    leader's two: offset = follower - midpoint, within +-rtt/2. Both CPUs spin meanwhile
    (a few ms): run it before starting pollers. Returns {"offset_ns", "uncertainty_ns",
    "rtt_min_ns", "rounds", "cpus"}. Raises ValueError for a CPU this process may not
    use, TimeoutError when the other CPU never ran (a poller on it)."""
    import threading

    import numpy as np

    from ._core import hoststall
    allowed = os.sched_getaffinity(0)
    if cpu_leader == cpu_follower or not {cpu_leader, cpu_follower} <= allowed:
        raise ValueError(f"tsc_offset: two different CPUs among {sorted(allowed)}, got "
                         f"{cpu_leader} and {cpu_follower}")
    line = np.zeros(16, np.uint64)[8:11]            # its own 64-byte cache line, mostly
    result: dict = {}
    errors: list[BaseException] = []

    def follow():
        try:
            os.sched_setaffinity(0, {cpu_follower})
            result["follower_ok"] = hoststall.tsc_pingpong_follower(line, rounds, timeout_s)
        except (OSError, ValueError) as e:
            errors.append(e)
    follower = threading.Thread(target=follow, name="tsc-offset-follower")
    mask = os.sched_getaffinity(0)
    follower.start()
    try:
        os.sched_setaffinity(0, {cpu_leader})
        sent, theirs, back, (tsc0, ns0, tsc1, ns1) = hoststall.tsc_pingpong_leader(
            line, rounds, timeout_s)
    finally:
        os.sched_setaffinity(0, mask)
        follower.join()
    if errors:
        raise errors[0]
    hz = (tsc1 - tsc0) / ((ns1 - ns0) / 1e9) if ns1 > ns0 else 0
    s, f, b = (np.array(x, dtype=np.float64) for x in (sent, theirs, back))
    best = int(np.argmin(b - s))
    ns = 1e9 / hz if hz else 0.0
    rtt = (b[best] - s[best]) * ns
    return {"offset_ns": round(float(f[best] - (s[best] + b[best]) / 2) * ns, 1),
            "uncertainty_ns": round(float(rtt) / 2, 1), "rtt_min_ns": round(float(rtt), 1),
            "rounds": rounds, "cpus": [cpu_leader, cpu_follower]}
