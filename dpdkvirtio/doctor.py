"""`dpdkvirtio doctor`: is this host ready? Each check has a verdict (ok, warn, fail) and,
unless ok, what to do. Reads /proc and /sys and the driver files; starts no DPDK."""

from __future__ import annotations

import os
import resource
import shutil
import stat

from . import hostinfo, hugepages, pmdinfo
from .eal import dpdk_version

CVE_FIXED = (22, 11, 7)          # vhost CVE fixes (CVE-2024-11614 and earlier) are in 22.11.7


def _check(name, verdict, detail, todo=None):
    return {"check": name, "verdict": verdict, "detail": detail, "todo": todo}


def _version_tuple(text: str):
    try:
        parts = text.split()[-1].split(".")
        return tuple(int(p) for p in parts[:3])
    except (ValueError, IndexError):
        return None


def check_dpdk() -> list[dict]:
    out = []
    v = dpdk_version()
    t = _version_tuple(v)
    if t is None or t[:2] < (22, 11):
        out.append(_check("dpdk version", "fail", v, "install DPDK 22.11 LTS (apt-get install dpdk)"))
    elif t < CVE_FIXED:
        out.append(_check("dpdk version", "warn", f"{v}: older than 22.11.7, which fixes vhost "
                          "CVEs reachable from a guest", "upgrade the dpdk packages"))
    else:
        out.append(_check("dpdk version", "ok", v))
    d = pmdinfo.plugin_dir()
    names = {x["name"] for x in pmdinfo.drivers()}
    for drv in ("net_vhost", "net_virtio_user"):
        if drv in names:
            out.append(_check(f"driver {drv}", "ok", f"in {d}"))
        else:
            out.append(_check(f"driver {drv}", "fail", f"not found in {d}",
                              "apt-get install dpdk (the PMD plugins)"))
    for tool, pkg in (("dpdk-testpmd", "dpdk-dev"),):
        path = shutil.which(tool)
        out.append(_check(tool, "ok" if path else "warn", path or "not installed",
                          None if path else f"apt-get install {pkg} (needed by tests and perf/)"))
    from .hostinfo import ovs_dpdk_available
    out.append(_check("OVS-DPDK", "ok" if ovs_dpdk_available() else "warn",
                      "installed" if ovs_dpdk_available() else "not installed",
                      None if ovs_dpdk_available() else
                      "apt-get install openvswitch-switch-dpdk (optional peer)"))
    return out


def check_hugepages() -> list[dict]:
    info = hugepages.read_info()
    out = []
    nodes = sorted({p.node for p in info.pools if p.node is not None})
    for node in nodes:
        for p in (x for x in info.pools if x.node == node):
            used_size = p.size_kb == 2048            # dpdkvirtio uses 2 MB pages
            ok = p.free > 0 or not used_size
            detail = f"{p.total} reserved, {p.free} free" + ("" if used_size else " (not used)")
            out.append(_check(f"hugepages {p.size_kb // 1024} MB node {node}", "ok" if ok else "warn",
                              detail, None if ok else "dpdkvirtio hugepages reserve 1024 (as root)"))
    free = info.free_mb(2048)
    if free >= 1024:
        out.append(_check("hugepages for dpdkvirtio", "ok", f"{free} MB of 2 MB pages free: "
                          "DPDK runs on hugepages"))
    else:
        out.append(_check("hugepages for dpdkvirtio", "warn", f"{free} MB of 2 MB pages free: "
                          "DPDK falls back to --no-huge (slower, memfd shared memory)",
                          "dpdkvirtio hugepages reserve 1024 (as root)"))
    if info.mounts:
        for m in info.mounts:
            pagesize_kb = m.pagesize_kb or hugepages.default_hugepage_kb()
            out.append(_check(f"hugetlbfs {m.path}", "ok", f"pagesize {pagesize_kb} kB"))
    else:
        out.append(_check("hugetlbfs mount", "ok", "none (not needed: dpdkvirtio uses --in-memory); "
                          "other DPDK programs may want `dpdkvirtio hugepages mount`"))
    return out


def check_cpus() -> list[dict]:
    topo = hostinfo.cpu_topology()
    out = []
    n = len(topo["allowed"])
    out.append(_check("CPUs", "ok" if n >= 2 else "warn", f"{n} usable: {topo['allowed']}",
                      None if n >= 2 else "a poller owns a CPU: with one CPU both sides of a "
                      "port pair share it and halve each other"))
    smt = {c: s for c, s in topo["siblings"].items() if s}
    if smt:
        out.append(_check("SMT", "warn", f"hyper-threads share cores: {smt}",
                          "place pollers on different physical cores"))
    else:
        out.append(_check("SMT", "ok", "no sibling threads"))
    if topo["isolated"]:
        out.append(_check("isolated CPUs", "ok", f"{topo['isolated']} (isolcpus)"))
    else:
        out.append(_check("isolated CPUs", "warn", "none: the kernel schedules other work on "
                          "the pollers' CPUs (zero-loss rates suffer)",
                          "boot with isolcpus=<poller CPUs> nohz_full=<same> for steady figures"))
    busy = hostinfo.busy_pollers(topo["allowed"], window_s=0.3, ignore_pids={os.getpid()})
    if busy:
        desc = "; ".join(f"pid {b['pid']} CPU {b['cpu']} {b['share'] * 100:.0f}% {b['cmd'][:60]}"
                         for b in busy)
        out.append(_check("busy pollers", "warn", desc, "stop them before measuring (kill PID)"))
    else:
        out.append(_check("busy pollers", "ok", "none running"))
    if n >= 2 and not busy:          # the probe spins both CPUs: not beside pollers
        a, b = topo["allowed"][0], topo["allowed"][-1]
        try:
            off = hostinfo.tsc_offset(a, b)
        except (OSError, TimeoutError) as e:
            out.append(_check("TSC offset", "warn", f"not measured: {e}",
                              "stop what spins on these CPUs and run doctor again"))
        else:
            far = abs(off["offset_ns"]) - off["uncertainty_ns"] > hostinfo.TSC_OFFSET_BOUND_NS
            out.append(_check("TSC offset", "fail" if far else "ok",
                              f"CPU {b} - CPU {a}: {off['offset_ns']:.0f} ns "
                              f"+- {off['uncertainty_ns']:.0f} ns",
                              "latency across these CPUs is refused (perf latency): the TSCs "
                              "are not in step" if far else None))
    return out


def check_socket_dir(path: str) -> list[dict]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return [_check(f"socket dir {path}", "warn", "does not exist",
                       f"mkdir -m 0750 {path} (dpdkvirtio run creates it as root)")]
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH:
        return [_check(f"socket dir {path}", "fail", f"mode {mode:o}: world-writable",
                       f"chmod o-w {path}: anyone could replace a vhost-user socket")]
    return [_check(f"socket dir {path}", "ok", f"mode {mode:o}, uid {st.st_uid}, gid {st.st_gid}")]


def check_system() -> list[dict]:
    out = []
    out.append(_check("user", "ok" if os.geteuid() == 0 else "warn",
                      "root" if os.geteuid() == 0 else f"uid {os.geteuid()}",
                      None if os.geteuid() == 0 else "reserving hugepages and mounting need root"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    out.append(_check("open files limit", "ok" if soft >= 4096 else "warn", f"{soft} (hard {hard})",
                      None if soft >= 4096 else "ulimit -n 65536: each vhost-user port uses fds"))
    tun = os.path.exists("/dev/net/tun")
    out.append(_check("/dev/net/tun", "ok" if tun else "warn", "present" if tun else "absent",
                      None if tun else "modprobe tun (only for net_tap ports)"))
    vnet = os.path.exists("/dev/vhost-net")
    out.append(_check("/dev/vhost-net", "ok", "present" if vnet else
                      "absent: virtio-user's vhost-kernel back-end is unavailable (vhost-user "
                      "works)"))
    return out


def run(sock_dir: str) -> list[dict]:
    return check_dpdk() + check_hugepages() + check_cpus() + check_socket_dir(sock_dir) + check_system()
