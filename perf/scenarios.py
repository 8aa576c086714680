"""Benchmark scenarios: each names the sides to measure (ours, dpdk-testpmd, OVS-DPDK) and,
for each side, how to set it up and where to read the packet counter.

Placement on two CPUs (MEASURING.md): the back-end poller (vhost side, the switch) on the
last CPU, the front-end poller (virtio-user side) on the first; every process's main
lcore sleeps. Each side is a context manager yielding ``read()``, a cumulative packet
count at the measurement point, which is the same place for ours and the peers: the
receiver, or for a forwarder the front-end that gets its output.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import time

from dpdkvirtio.peers import Agent, OvsDpdk, Testpmd
from perf.setups import BACK, FRONT, Options, sockdir, testpmd, vh_vdev, vu_vdev


class Unsupported(Exception):
    """This side cannot run this configuration (recorded as null, with the reason)."""


def _agent(cpu, o: Options) -> Agent:
    """A counterpart of ours (feeder, drain): always this checkout's build."""
    return Agent(o.memory_mode, cpu=cpu)


def _dut_agent(cpu, o: Options) -> Agent:
    """Our side under measurement: the build perf ab asks for (default: this checkout's)."""
    return Agent(o.memory_mode, cpu=cpu, package_dir=o.dut_package)


@contextlib.contextmanager
def _dut_and_counterpart(dut_cpu, counterpart_cpu, o: Options):
    """(our measured agent, this checkout's counterpart agent), started at once: each start
    is an interpreter, the imports and an EAL init, and perf ab starts a fresh pair per
    trial. Both are closed on the way out, also when the other did not start."""
    with contextlib.ExitStack() as stack:
        # made here (their parent-death signal follows this thread), initialised at once
        dut = stack.enter_context(Agent(o.memory_mode, cpu=dut_cpu, package_dir=o.dut_package,
                                        started=False))
        counterpart = stack.enter_context(Agent(o.memory_mode, cpu=counterpart_cpu,
                                                started=False))
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(a.start) for a in (dut, counterpart)]
        for f in futures:
            f.result()                                  # the first failure, raised
        yield dut, counterpart


def _pmd_reading(ag, switch=None) -> dict:
    r = ag.call("pmd_perf", switch=switch)
    return {"busy": r["busy_cycles"], "total": r["busy_cycles"] + r["idle_cycles"],
            "packets": r["rx_packets"] or r["tx_packets"], "hz": None,
            "stalled_ns": r["perf"].get("stalled_ns", 0),
            # an older build (perf ab of an earlier commit) may not count it
            "busy_stall": r.get("stall_busy_cycles")}


def _cycles(ag, o: Options, switch=None, counterpart=None):
    """Let the runner read our measured poller's cumulative cycles and stalls
    (perf.capacity), and the stalls of a counterpart agent's PMD when there is one."""
    o.extra["cycles"] = lambda: _pmd_reading(ag, switch)
    if counterpart is not None:
        o.extra["counterpart_stalls"] = lambda: _pmd_reading(counterpart)["stalled_ns"]


def _dut_testpmd(vdevs, fwd, cpu, o: Options, **kw) -> Testpmd:
    """A testpmd under measurement: it records its forwarding cycles."""
    kw["extra_app"] = ["--record-core-cycles"] + list(kw.get("extra_app", []))
    tp = testpmd(vdevs, fwd, cpu, o, **kw)
    o.extra["cycles"] = tp.core_cycles
    return tp


# The feeder of every sink scenario and the drain of every source scenario, for ours and
# for the peers alike: our own C engines, the fastest source and sink on this host, on
# the other CPU. A slower counterpart would make both sides measure it.
FEEDER = "dpdkvirtio generator (unpaced, one per queue)"
DRAIN = "dpdkvirtio rxonly engine"


def _our_port(ag, name, kind, path, o: Options):
    kw = {"queue_size": o.ring_size} if kind == "virtio-user" else {}
    ag.call("port", name=name, kind=kind, path=path, queues=o.queues, **kw)


def _feed(ag, name, o: Options):
    for q in range(o.queues):
        ag.call("gen", name=name, queue=q, pkt_size=o.pkt_size, tag=f"f{q}", start=False)
    ag.call("pmd", action="start")


def _drain(ag, name, o: Options):
    for q in range(o.queues):
        ag.call("rx", name=name, queue=q, start=False)
    ag.call("pmd", action="start")
    return lambda: ag.call("stats", name=name)["stats"]["rx_packets"]


def _started(tp: Testpmd, tx_first: int = 0):
    if tx_first:
        tp.cmd(f"start tx_first {tx_first}", expect=r"(?:forwarding packets/burst|already started)")
    else:
        tp.start()
    return tp


# ------------------------------------------------------------------ vhost side, rx

@contextlib.contextmanager
def vhost_rx_ours(o: Options, pyloop: bool = False):
    with sockdir() as d, _dut_and_counterpart(BACK, FRONT, o) as (ag, feeder):
        path = os.path.join(d, "s.sock")
        ag.call("port", name="v", kind="vhost-server", path=path, queues=o.queues)
        _our_port(feeder, "u", "virtio-user", path, o)
        ag.call("wait", name="v", what="running")
        if pyloop:
            ag.call("pyloop", name="v", role="rx", cpu=BACK, burst=o.burst)
            read = lambda: ag.call("stats", name="v")["stats"]["rx_packets"]  # noqa: E731
        else:
            read = _drain(ag, "v", o)                    # our rxonly engine is the DUT here
            _cycles(ag, o, counterpart=feeder)
        _feed(feeder, "u", o)
        yield read


class Interleaved:
    """Both builds of perf ab in one trial: each has its measured agent on the same CPU,
    and only the active one polls (the other's PMD is stopped and, where the counterpart
    feeds it, its feed paused), so windows of A and B alternate a fraction of a second
    apart under the same host. ``counterpart``: the one feeder or drain, on the other CPU,
    with a port per side named after it."""

    def __init__(self, duts: dict, counterpart: Agent, feeds: bool):
        self.duts, self.counterpart, self.feeds, self.active = duts, counterpart, feeds, None

    def activate(self, side: str) -> None:
        """Make ``side`` the one polling (its PMD started, its feed resumed)."""
        if self.active is not None:
            if self.feeds:
                self.counterpart.call("pause", tag=self.active, paused=True)
            self.duts[self.active].call("pmd", action="stop")
        self.duts[side].call("pmd", action="start")
        if self.feeds:
            self.counterpart.call("pause", tag=side, paused=False)
        self.active = side

    def reading(self, side: str) -> dict:
        """``side``'s cumulative PMD reading (perf.capacity.window's input)."""
        return _pmd_reading(self.duts[side])

    def counterpart_stalled_ns(self) -> int:
        return _pmd_reading(self.counterpart)["stalled_ns"]


@contextlib.contextmanager
def _interleaved(o: Options, packages: dict, role: str):
    """Both sides of perf ab at once (``packages``: side -> the build's package
    directory): per side a measured agent on BACK with a vhost-user port, and one
    counterpart on FRONT with a virtio-user port per side. ``role`` "rx": the measured
    rxonly engine, fed by a generator per side that runs while its side is active; "tx":
    the measured generator, drained by an rxonly engine on every port."""
    with sockdir() as d, contextlib.ExitStack() as stack:
        duts = {side: stack.enter_context(Agent(o.memory_mode, cpu=BACK, package_dir=pkg,
                                                started=False))
                for side, pkg in packages.items()}
        other = stack.enter_context(Agent(o.memory_mode, cpu=FRONT, started=False))
        with concurrent.futures.ThreadPoolExecutor(len(duts) + 1) as pool:
            futures = [pool.submit(a.start) for a in (*duts.values(), other)]
        for f in futures:
            f.result()                                  # the first failure, raised
        for side, ag in duts.items():
            path = os.path.join(d, f"{side}.sock")
            ag.call("port", name="v", kind="vhost-server", path=path, queues=1)
            _our_port(other, side, "virtio-user", path, o)
            ag.call("wait", name="v", what="running")
            if role == "rx":
                ag.call("rx", name="v", queue=0, start=False)
                other.call("gen", name=side, queue=0, pkt_size=o.pkt_size, tag=side,
                           start=False)
                other.call("pause", tag=side, paused=True)
            else:
                ag.call("gen", name="v", queue=0, pkt_size=o.pkt_size, tag="g", start=False)
                other.call("rx", name=side, queue=0, start=False)
        other.call("pmd", action="start")
        yield Interleaved(duts, other, feeds=role == "rx")


def vhost_rx_interleaved(o: Options, packages: dict):
    return _interleaved(o, packages, "rx")


def vhost_tx_interleaved(o: Options, packages: dict):
    return _interleaved(o, packages, "tx")


@contextlib.contextmanager
def vhost_rx_testpmd(o: Options):
    with sockdir() as d:
        path = os.path.join(d, "s.sock")
        with _dut_testpmd(vh_vdev(0, path, o), "rxonly", BACK, o) as back, \
                _agent(FRONT, o) as feeder:
            _our_port(feeder, "u", "virtio-user", path, o)
            back.wait_link_up(10)
            _started(back)
            _feed(feeder, "u", o)
            yield lambda: back.port_stats(0)["rx"]
            back.stop()


# ------------------------------------------------------------------ vhost side, tx

@contextlib.contextmanager
def vhost_tx_ours(o: Options, pyloop: bool = False, vary: bool = False):
    with sockdir() as d, _dut_and_counterpart(BACK, FRONT, o) as (ag, drain):
        path = os.path.join(d, "s.sock")
        ag.call("port", name="v", kind="vhost-server", path=path, queues=o.queues)
        _our_port(drain, "u", "virtio-user", path, o)
        ag.call("wait", name="v", what="running")
        read = _drain(drain, "u", o)
        if pyloop:
            ag.call("pyloop", name="v", role="tx", cpu=BACK, burst=o.burst, pkt_size=o.pkt_size)
        else:
            fvars = [{"field": "ip.src", "min": "127.0.0.1", "max": "127.0.255.254"}] if vary else []
            for q in range(o.queues):
                ag.call("gen", name="v", queue=q, pkt_size=o.pkt_size, vars=fvars, tag=f"g{q}",
                        start=False)
            ag.call("pmd", action="start")
            _cycles(ag, o, counterpart=drain)
        yield read


@contextlib.contextmanager
def vhost_tx_testpmd(o: Options, vary: bool = False):
    with sockdir() as d:
        path = os.path.join(d, "s.sock")
        extra = ["--txonly-multi-flow"] if vary else []
        with _dut_testpmd(vh_vdev(0, path, o), "txonly", BACK, o, extra_app=extra) as back, \
                _agent(FRONT, o) as drain:
            _our_port(drain, "u", "virtio-user", path, o)
            back.wait_link_up(10)
            read = _drain(drain, "u", o)
            _started(back)
            yield read
            back.stop()


# ------------------------------------------------------------------ virtio side

@contextlib.contextmanager
def virtio_tx_ours(o: Options):
    with sockdir() as d, _dut_and_counterpart(FRONT, BACK, o) as (ag, drain):
        path = os.path.join(d, "s.sock")
        drain.call("port", name="v", kind="vhost-server", path=path, queues=o.queues)
        _our_port(ag, "u", "virtio-user", path, o)
        drain.call("wait", name="v", what="running")
        read = _drain(drain, "v", o)
        for q in range(o.queues):
            ag.call("gen", name="u", queue=q, pkt_size=o.pkt_size, tag=f"g{q}", start=False)
        ag.call("pmd", action="start")
        _cycles(ag, o, counterpart=drain)
        yield read


@contextlib.contextmanager
def virtio_tx_testpmd(o: Options):
    with sockdir() as d, _agent(BACK, o) as drain:
        path = os.path.join(d, "s.sock")
        drain.call("port", name="v", kind="vhost-server", path=path, queues=o.queues)
        with _dut_testpmd(vu_vdev(0, path, o), "txonly", FRONT, o) as front:
            drain.call("wait", name="v", what="running")
            read = _drain(drain, "v", o)
            _started(front)
            yield read
            front.stop()


@contextlib.contextmanager
def virtio_rx_ours(o: Options):
    with sockdir() as d, _dut_and_counterpart(FRONT, BACK, o) as (ag, feeder):
        path = os.path.join(d, "s.sock")
        feeder.call("port", name="v", kind="vhost-server", path=path, queues=o.queues)
        _our_port(ag, "u", "virtio-user", path, o)
        feeder.call("wait", name="v", what="running")
        read = _drain(ag, "u", o)                        # our rxonly engine is the DUT here
        _cycles(ag, o, counterpart=feeder)
        _feed(feeder, "v", o)
        yield read


@contextlib.contextmanager
def virtio_rx_testpmd(o: Options):
    with sockdir() as d, _agent(BACK, o) as feeder:
        path = os.path.join(d, "s.sock")
        feeder.call("port", name="v", kind="vhost-server", path=path, queues=o.queues)
        with _dut_testpmd(vu_vdev(0, path, o), "rxonly", FRONT, o) as front:
            feeder.call("wait", name="v", what="running")
            _started(front)
            _feed(feeder, "v", o)
            yield lambda: front.port_stats(0)["rx"]
            front.stop()


# ------------------------------------------------------------------ switch forwarding
#
# Topology for two CPUs: a closed PVP-style loop. One front-end dpdk-testpmd (CPU 0) owns
# two virtio-user ports in io mode and injects a fixed number of bursts (start tx_first);
# the switch (CPU 1) forwards port A -> B and B -> A between two vhost-user ports. Every
# poller owns its CPU, packets circulate, and the front-end's receive rate is the
# switch's forwarding rate. The switch does two copies per packet (dequeue from one guest
# ring, enqueue into another), the front-end none, so the switch is the bottleneck being
# measured. The same front-end, the same loop and the same reading serve ours, testpmd
# (io over two net_vhost ports) and OVS-DPDK (two dpdkvhostuserclient ports, one flow each
# way, PMD on CPU 1).

TX_FIRST_BURSTS = 8


@contextlib.contextmanager
def switch_fwd_ours(o: Options):
    with sockdir() as d, _dut_agent(BACK, o) as ag:
        pa, pb = os.path.join(d, "a"), os.path.join(d, "b")    # vhost-sock-dir/<port name>
        ag.call("switch", name="sw", ports=[["a", "dpdkvhostuser", pa], ["b", "dpdkvhostuser", pb]],
                flows=[["a", "b"], ["b", "a"]], cpu=BACK)
        with testpmd([vu_vdev(0, pa, o), vu_vdev(1, pb, o)], "io", FRONT, o) as front:
            ag.call("switch_wait", name="sw")
            _cycles(ag, o, switch="sw")
            _started(front, TX_FIRST_BURSTS)
            yield lambda: front.total_stats()["rx"]
            front.stop()


@contextlib.contextmanager
def switch_fwd_testpmd(o: Options):
    with sockdir() as d:
        pa, pb = os.path.join(d, "a.sock"), os.path.join(d, "b.sock")
        with _dut_testpmd([vh_vdev(0, pa, o), vh_vdev(1, pb, o)], "io", BACK, o) as back, \
                testpmd([vu_vdev(0, pa, o), vu_vdev(1, pb, o)], "io", FRONT, o) as front:
            back.wait_link_up(10, 0)
            back.wait_link_up(10, 1)
            _started(back)
            _started(front, TX_FIRST_BURSTS)
            yield lambda: front.total_stats()["rx"]
            front.stop()
            back.stop()


@contextlib.contextmanager
def switch_fwd_ovs(o: Options):
    with sockdir() as d:
        with OvsDpdk(d, lcore_cpu=FRONT, pmd_cpu=BACK, memory_mode=o.memory_mode) as ovs:
            pa, pb = os.path.join(d, "a.sock"), os.path.join(d, "b.sock")
            ovs.add_vhost_client_port("a", pa)
            ovs.add_vhost_client_port("b", pb)
            ovs.add_flow("in_port=a,actions=output:b")
            ovs.add_flow("in_port=b,actions=output:a")
            with testpmd([vu_vdev(0, pa, o, server=1), vu_vdev(1, pb, o, server=1)], "io",
                          FRONT, o, timeout=60) as front:
                front.wait_link_up(20, 0)
                front.wait_link_up(20, 1)
                time.sleep(1)
                o.extra["cycles"] = ovs.pmd_cycles
                _started(front, TX_FIRST_BURSTS)
                yield lambda: front.total_stats()["rx"]
                front.stop()


# ------------------------------------------------------------------ many ports

MAX_ETHPORTS = 32          # RTE_MAX_ETHPORTS of Debian's DPDK: a testpmd has at most 32 ports


@contextlib.contextmanager
def scale_ports_ours(o: Options):
    n = o.ports
    with sockdir() as d, _dut_agent(BACK, o) as ag, contextlib.ExitStack() as feeders:
        paths = [os.path.join(d, f"p{i}.sock") for i in range(n)]
        ag.call("pmd", action="start")
        _cycles(ag, o)
        added = ag.call("add_vhost_ports", paths=paths, timeout=120)
        o.extra["add_port_ms"] = [round(s * 1000, 3) for s in added["seconds"]]
        # our vhost-user ports are not ethdevs and have no 32-port limit; the feeders are
        # testpmds, so more than 32 ports take several (all on the front-end CPU)
        tps = []
        for k in range(0, n, MAX_ETHPORTS):
            chunk = paths[k:k + MAX_ETHPORTS]
            tps.append(feeders.enter_context(testpmd(
                [vu_vdev(i, p, o) for i, p in enumerate(chunk)], "txonly", FRONT, o, timeout=120)))
        for i in range(n):
            if not ag.call("wait", name=f"p{i}", what="running", timeout=30)["done"]:
                raise RuntimeError(f"vhost-user port p{i} never came up")
        for tp in tps:
            _started(tp)
        names = [f"p{i}" for i in range(n)]
        yield lambda: ag.call("total", names=names, key="rx_packets")["value"]
        for tp in tps:
            tp.stop()


@contextlib.contextmanager
def scale_ports_testpmd(o: Options):
    n = o.ports
    if n > MAX_ETHPORTS:
        raise Unsupported(f"testpmd supports at most {MAX_ETHPORTS} ports (RTE_MAX_ETHPORTS)")
    with sockdir() as d:
        paths = [os.path.join(d, f"p{i}.sock") for i in range(n)]
        with _dut_testpmd([vh_vdev(i, p, o) for i, p in enumerate(paths)], "rxonly", BACK, o,
                          timeout=120) as back, \
                testpmd([vu_vdev(i, p, o) for i, p in enumerate(paths)], "txonly", FRONT, o,
                         timeout=120) as feeder:
            _started(back)
            _started(feeder)
            yield lambda: back.total_stats()["rx"]
            feeder.stop()
            back.stop()


SCENARIOS = {
    "vhost-rx": {"ours": vhost_rx_ours, "testpmd": vhost_rx_testpmd,
                 "what": "our rxonly engine on a vhost-user port vs testpmd net_vhost rxonly",
                 "counterpart": f"feeder: {FEEDER} on a virtio-user port"},
    "vhost-tx": {"ours": vhost_tx_ours, "testpmd": vhost_tx_testpmd,
                 "what": "our generator on a vhost-user port vs testpmd net_vhost txonly",
                 "counterpart": f"drain: {DRAIN} on a virtio-user port"},
    "vhost-tx-vary": {"ours": lambda o: vhost_tx_ours(o, vary=True),
                      "testpmd": lambda o: vhost_tx_testpmd(o, vary=True),
                      "what": "vhost-tx with the IPv4 source changing per packet and checksums "
                              "fixed (testpmd --txonly-multi-flow)",
                      "counterpart": f"drain: {DRAIN} on a virtio-user port"},
    "virtio-tx": {"ours": virtio_tx_ours, "testpmd": virtio_tx_testpmd,
                  "what": "our generator on a virtio-user port vs testpmd virtio-user txonly",
                  "counterpart": f"drain: {DRAIN} on a vhost-user port"},
    "virtio-rx": {"ours": virtio_rx_ours, "testpmd": virtio_rx_testpmd,
                  "what": "our rxonly engine on a virtio-user port vs testpmd virtio-user rxonly",
                  "counterpart": f"feeder: {FEEDER} on a vhost-user port"},
    "switch-fwd": {"ours": switch_fwd_ours, "testpmd": switch_fwd_testpmd, "ovs-dpdk": switch_fwd_ovs,
                   "what": "forwarding between two vhost-user ports in a closed loop: our Switch "
                           "vs testpmd io vs OVS-DPDK",
                   "counterpart": "front-end: testpmd io over two virtio-user ports, "
                                  f"{TX_FIRST_BURSTS} bursts circulating"},
    "pyloop-rx": {"ours": lambda o: vhost_rx_ours(o, pyloop=True), "testpmd": vhost_rx_testpmd,
                  "what": "a Python loop (rx_burst + free) on a vhost-user port vs testpmd "
                          "net_vhost rxonly",
                  "counterpart": f"feeder: {FEEDER} on a virtio-user port"},
    "pyloop-tx": {"ours": lambda o: vhost_tx_ours(o, pyloop=True), "testpmd": vhost_tx_testpmd,
                  "what": "a Python loop (alloc from a template + tx_burst) on a vhost-user port "
                          "vs testpmd net_vhost txonly",
                  "counterpart": f"drain: {DRAIN} on a virtio-user port"},
    "scale-ports": {"ours": scale_ports_ours, "testpmd": scale_ports_testpmd,
                    "what": "1, 8, 64 vhost-user ports served by one PMD lcore",
                    "counterpart": "feeders: testpmd txonly, up to 32 virtio-user ports each"},
}
# keys of a scenario that are not sides
NOT_SIDES = ("what", "counterpart")

STANDARD = ["vhost-rx", "vhost-tx", "vhost-tx-vary", "virtio-tx", "virtio-rx", "switch-fwd",
            "pyloop-rx", "pyloop-tx", "scale-ports"]
