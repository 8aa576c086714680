"""What the benchmarks share to set up a run (perf/__init__.py names the three kinds):
where the pollers go (FRONT, BACK), the options of a run, the vdev strings and the
testpmd of a side, a socket directory, the warm-up, the host's steal, a PMD's busy
cycles per packet, and an in-process vhost-user/virtio-user pair."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from dpdkvirtio import hostinfo
from dpdkvirtio.peers import Testpmd, front_back

FRONT, BACK = front_back()


@dataclass
class Options:
    pkt_size: int = 64
    queues: int = 1
    seconds: float = 5.0
    warmup_s: float = 1.0
    memory_mode: str = "hugepages"
    burst: int = 32
    ring_size: int = 1024
    ports: int = 1                      # scale-ports only
    dut_package: str | None = None      # perf ab: the build our measured agent imports
    extra: dict = field(default_factory=dict)


def vu_vdev(i: int, path: str, o: Options, **kw) -> str:
    args = [f"path={path}", f"queues={o.queues}", f"queue_size={o.ring_size}"]
    args += [f"{k}={v}" for k, v in kw.items()]
    return f"net_virtio_user{i},{','.join(args)}"


def vh_vdev(i: int, path: str, o: Options, **kw) -> str:
    args = [f"iface={path}", f"queues={o.queues}"] + [f"{k}={v}" for k, v in kw.items()]
    return f"net_vhost{i},{','.join(args)}"


def testpmd(vdevs, fwd, cpu, o: Options, **kw) -> Testpmd:
    app = [f"--rxq={o.queues}", f"--txq={o.queues}", f"--txpkts={o.pkt_size}"]
    app += kw.pop("extra_app", [])
    n = len(vdevs) if isinstance(vdevs, list) else 1
    mbufs = max(16384, n * o.queues * (2 * o.ring_size + 512) + 4096)
    other = FRONT if cpu == BACK else BACK
    return Testpmd(vdevs, fwd, fwd_cpu=cpu, main_cpu=other, memory_mode=o.memory_mode,
                   extra_app=app, mbufs=mbufs, burst=o.burst, **kw)


@contextlib.contextmanager
def sockdir():
    d = tempfile.mkdtemp(prefix="dvperf-", dir="/tmp")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def warmup_s(seconds: float) -> float:
    """The warm-up before counting: 0.5 s, or the window itself when shorter (a smoke
    run of --seconds 0.1 checks the structure, not the figures)."""
    return min(0.5, seconds)


def steal_ms(cpus=(FRONT, BACK)) -> float:
    """Time the hypervisor ran something else on our CPUs so far (/proc/stat steal), ms:
    the difference over a run says how long our pollers were not running at all."""
    return hostinfo.steal_ms(cpus)


def pmd_cost(pmd, key: str) -> tuple[float, float]:
    """(busy cycles per packet, busy share) of a PMD's counters so far."""
    c = pmd.counters[0]
    busy, idle = int(c["busy_cycles"]), int(c["idle_cycles"])
    pkts = int(c[key])
    return (busy / pkts if pkts else 0.0), (busy / (busy + idle) if busy + idle else 0.0)


def start_pair(dv, sockdir: str):
    """A vhost-user port and a virtio-user port connected to it, both up (closed again
    when they do not come up)."""
    v = dv.VhostUserPort(os.path.join(sockdir, "m.sock"))
    try:
        u = dv.VirtioUserPort(v.path, queue_size=1024)
    except BaseException:
        v.close()
        raise
    if not (v.wait_running(10) and u.wait_link_up(5)):
        u.close()
        v.close()
        raise RuntimeError("the vhost-user/virtio-user pair did not come up")
    return v, u
