"""Latency scenarios: one-way latency of measured streams through a forwarder or one
vhost-user hop, at loads relative to each device's own measured maximum.

    python -m perf latency [switch-latency] [vhost-latency] [--seconds 2] [--trials 3]
                           [--json FILE]

switch-latency: one front-end process of ours (front-end CPU) owns two virtio-user ports;
its generator sends a measured stream into port a of the device under test, which
forwards it to port b, where the same process's receiver counts it (FlowStats: loss and
latency per flow). The devices on the back-end CPU: our Switch, dpdk-testpmd io over two
net_vhost ports, OVS-DPDK (two dpdkvhostuserclient ports, a flow each way). Each is
driven at 10, 50 and 90 % of its own maximum (measured first with an unpaced generator,
as this front-end sees it) and at 1 Mpps.

vhost-latency: one hop, our generator on a virtio-user port (front-end CPU) to our
receiver on the vhost-user port (back-end CPU). testpmd has no end-to-end latency of its
own and no place in a one-hop path as a forwarder: the record says so.

Trials alternate the sides, each set up afresh. On these hosts a single 2 s run's p99
swings by 10-300x between identical runs (the hypervisor takes a vCPU for milliseconds,
often without /proc/stat showing steal), so one run says little; the record keeps the
median over trials, the p99 range, and for each trial how long our pollers at both ends
lost their CPU (polls of 100 us or more) and the steal /proc/stat admitted.

Records: ``latency_ns[side][load]`` = {p50, p99, p999, lost: medians over the trials;
max: the largest; p99_range; stalled_ms and steal_ms per trial; trials: the raw runs}
(load "10%", "50%", "90%", "1mpps"), ``max_mpps[side]`` (median), ``absent`` {side:
why} for sides that cannot take part, ``tsc_offset`` (hostinfo.tsc_offset of the two
CPUs; the run is refused beyond its bound), ``host_stalls`` {cpu: gaps a spinning thread saw
before the run (hostinfo.stalls)}, and for switch-latency ``targets`` (ours against
testpmd and OVS-DPDK per load, from the medians).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time

from dpdkvirtio.peers import Agent, OvsDpdk, ovs_dpdk_available
from dpdkvirtio.progress import Progress
from perf import report
from perf.setups import BACK, FRONT, Options, sockdir, testpmd, vh_vdev

LOADS = (("10%", 0.10), ("50%", 0.50), ("90%", 0.90), ("1mpps", None))
SCENARIOS = ("switch-latency", "vhost-latency")


class FrontEnd:
    """Our generator (port ua) and measuring receiver (port ub, or the vhost port of a
    one-hop path) in one process; every run uses a flow id of its own."""

    def __init__(self, ag: Agent, tx: str, rx_agent: Agent, rx: str):
        self.ag, self.tx, self.rx_agent, self.rx = ag, tx, rx_agent, rx
        self.flow = 0

    def max_pps(self, pkt_size: int, seconds: float = 1.0) -> float:
        """What the path carries with an unpaced generator (received packets/s)."""
        self.ag.call("gen", name=self.tx, pkt_size=pkt_size, tag="max")
        time.sleep(0.3)
        r0, t0 = self._received(), time.monotonic()
        time.sleep(seconds)
        r1, t1 = self._received(), time.monotonic()
        self.ag.call("remove", name=self.tx)
        time.sleep(0.3)
        return (r1 - r0) / (t1 - t0)

    def measure(self, pps: float, pkt_size: int, seconds: float) -> dict:
        """One measured stream at ``pps``: its latency percentiles and loss, and how long
        our own pollers at both ends lost their CPU meanwhile (``stalled_ms``: polls of
        100 us or more, Pmd.perf)."""
        self.flow = self.flow % 63 + 1
        count = max(1, int(pps * seconds))
        before = self._stalled_ms()
        self.ag.call("gen", name=self.tx, pkt_size=pkt_size, pps=pps, count=count,
                     tag=f"l{self.flow}", flow_id=self.flow)
        self.ag.call("gen_wait", tag=f"l{self.flow}", timeout=seconds * 10 + 10)
        self.ag.call("remove", name=self.tx)
        time.sleep(0.3)
        f = self.rx_agent.call("flows", name=self.rx, sent={self.flow: count})[str(self.flow)]
        return {"p50": f["p50_ns"], "p99": f["p99_ns"], "p999": f["p99.9_ns"],
                "max": f["lat_max_ns"], "lost": f["lost_total"], "sent": count,
                "offered_mpps": round(pps / 1e6, 3),
                "stalled_ms": round(self._stalled_ms() - before, 3)}

    def _stalled_ms(self) -> float:
        agents = {id(a): a for a in (self.ag, self.rx_agent)}.values()
        return sum(a.call("pmd_perf")["perf"]["stalled_ns"] for a in agents) / 1e6

    def _received(self) -> int:
        return self.rx_agent.call("stats", name=self.rx)["stats"]["rx_packets"]


@contextlib.contextmanager
def _switch_front(d: str, o: Options, server: bool = False):
    """The front-end of switch-latency: virtio-user ua -> a, ub -> b (clients of the
    device's sockets, or servers for OVS's client ports)."""
    # its control thread stays on the front-end CPU too: the back-end CPU is the device's
    with Agent(o.memory_mode, cpu=FRONT, control_cpus=[FRONT]) as ag:
        for name, sock in (("ua", "a"), ("ub", "b")):
            ag.call("port", name=name, kind="virtio-user", path=os.path.join(d, sock),
                    queue_size=o.ring_size, **({"server": 1} if server else {}))
        ag.call("rx", name="ub", flows=True)
        yield FrontEnd(ag, "ua", ag, "ub")


@contextlib.contextmanager
def _switch_dut(side: str, d: str, o: Options):
    """The device forwarding a -> b on the back-end CPU, and its front-end."""
    pa, pb = os.path.join(d, "a"), os.path.join(d, "b")
    if side == "ours":
        with Agent(o.memory_mode, cpu=BACK, control_cpus=[FRONT]) as dut:
            dut.call("switch", name="sw", ports=[["a", "dpdkvhostuser", pa],
                                                 ["b", "dpdkvhostuser", pb]],
                     flows=[["a", "b"], ["b", "a"]], cpu=BACK)
            with _switch_front(d, o) as front:
                dut.call("switch_wait", name="sw")
                yield front
    elif side == "testpmd":
        with testpmd([vh_vdev(0, pa, o), vh_vdev(1, pb, o)], "io", BACK, o) as dut:
            with _switch_front(d, o) as front:
                dut.wait_link_up(10, 0)
                dut.wait_link_up(10, 1)
                dut.start()
                yield front
    else:
        with OvsDpdk(d, lcore_cpu=FRONT, pmd_cpu=BACK, memory_mode=o.memory_mode) as ovs:
            ovs.add_vhost_client_port("a", pa)
            ovs.add_vhost_client_port("b", pb)
            ovs.add_flow("in_port=a,actions=output:b")
            ovs.add_flow("in_port=b,actions=output:a")
            with _switch_front(d, o, server=True) as front:
                time.sleep(2)                     # OVS connects to the servers
                yield front


@contextlib.contextmanager
def _hop(d: str, o: Options):
    with Agent(o.memory_mode, cpu=BACK, control_cpus=[FRONT]) as back, \
            Agent(o.memory_mode, cpu=FRONT, control_cpus=[FRONT]) as ag:
        path = os.path.join(d, "v.sock")
        back.call("port", name="v", kind="vhost-server", path=path)
        ag.call("port", name="u", kind="virtio-user", path=path, queue_size=o.ring_size)
        back.call("wait", name="v", what="running")
        back.call("rx", name="v", flows=True)
        yield FrontEnd(ag, "u", back, "v")


def sides_of(scenario: str) -> tuple[list[str], dict[str, str]]:
    """(sides that take part, {side: why not} for those that cannot)."""
    if scenario == "vhost-latency":
        return ["ours"], {"testpmd": "testpmd has no end-to-end latency of its own, and a "
                                     "one-hop path has no place for a forwarder"}
    absent = {}
    sides = ["ours", "testpmd"]
    if ovs_dpdk_available():
        sides.append("ovs-dpdk")
    else:
        absent["ovs-dpdk"] = "OVS-DPDK is not installed"
    return sides, absent


def _median(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarise(trials: list[dict]) -> dict:
    """One load of one side over its trials: the median p50/p99/p999/lost (a single
    disturbed trial does not move it), the largest max, the p99 range, and per trial how
    long our pollers lost their CPU and the steal /proc/stat admitted (ms)."""
    out = {k: _median([t[k] for t in trials]) for k in ("p50", "p99", "p999", "lost")}
    maxima = [t["max"] for t in trials if t["max"] is not None]
    p99s = [t["p99"] for t in trials if t["p99"] is not None]
    out.update(max=max(maxima) if maxima else None,
               p99_range=[min(p99s), max(p99s)] if p99s else None,
               steal_ms=[t.get("steal_ms") for t in trials],
               stalled_ms=[t.get("stalled_ms") for t in trials],
               offered_mpps=trials[-1]["offered_mpps"], trials=trials)
    return out


def targets(latency: dict) -> dict:
    """Issue 12's goals per load, from the medians: our p99 through the switch at most
    testpmd io's, and at most half of OVS-DPDK's. {load: {goal: {"met", "ours_ns",
    "limit_ns"}}}; a goal whose peer is missing is left out."""
    goals = (("p99 <= testpmd", "testpmd", 1.0), ("p99 <= 0.5 x ovs-dpdk", "ovs-dpdk", 0.5))
    out: dict[str, dict] = {}
    for load, _ in LOADS:
        ours = latency.get("ours", {}).get(load, {}).get("p99")
        for goal, peer, factor in goals:
            theirs = latency.get(peer, {}).get(load, {}).get("p99")
            if ours is None or theirs is None:
                continue
            out.setdefault(load, {})[goal] = {"met": ours <= factor * theirs, "ours_ns": ours,
                                              "limit_ns": factor * theirs}
    return out


STALL_PROBE_S = 2.0


def host_stalls(progress: Progress | None = None) -> dict:
    """Before any poller starts: spin on both CPUs at once (hostinfo.stalls) and keep what
    took them away. No latency through a poller on these CPUs can stay below it."""
    from dpdkvirtio import hostinfo
    found = hostinfo.stalls(sorted({FRONT, BACK}), STALL_PROBE_S)
    line = "; ".join(f"CPU {c}: {r['over_1ms']} gaps over 1 ms, longest {r['max_us'] / 1e3:.1f} ms, "
                     f"{r['stalled_ms']:.1f} ms in all" for c, r in found.items())
    if progress is not None:
        progress.log(f"host stalls in {STALL_PROBE_S:.0f} s of spinning: {line}")
    return {str(c): r for c, r in found.items()}


def tsc_offset_checked(progress: Progress | None = None) -> dict:
    """Before any poller starts: the TSC offset between the two CPUs (hostinfo.tsc_offset).
    Sender and receiver stamp on different CPUs, so a latency can be no truer than it:
    raises RuntimeError when the offset exceeds hostinfo.TSC_OFFSET_BOUND_NS beyond its
    uncertainty."""
    from dpdkvirtio import hostinfo
    off = hostinfo.tsc_offset(FRONT, BACK)
    if progress is not None:
        progress.log(f"TSC offset CPU {BACK} - CPU {FRONT}: {off['offset_ns']:.0f} ns "
                     f"+- {off['uncertainty_ns']:.0f} ns")
    if abs(off["offset_ns"]) - off["uncertainty_ns"] > hostinfo.TSC_OFFSET_BOUND_NS:
        raise RuntimeError(f"latency refused: the TSCs of CPUs {FRONT} and {BACK} differ by "
                           f"{off['offset_ns']:.0f} ns (+- {off['uncertainty_ns']:.0f}), more "
                           f"than {hostinfo.TSC_OFFSET_BOUND_NS} ns")
    return off


def run_scenario(scenario: str, o: Options, trials: int = 1,
                 progress: Progress | None = None) -> dict:
    """Trials alternate the sides (ours, testpmd, OVS-DPDK, ours, ...); each trial sets its
    side up afresh, measures its maximum, then every load."""
    from perf.setups import steal_ms
    sides, absent = sides_of(scenario)
    stalls = host_stalls(progress)
    offset = tsc_offset_checked(progress)
    raw: dict[str, dict[str, list]] = {side: {load: [] for load, _ in LOADS} for side in sides}
    maxima: dict[str, list[float]] = {side: [] for side in sides}
    for trial in range(trials):
        for side in sides:
            with sockdir() as d:
                path = _hop(d, o) if scenario == "vhost-latency" else _switch_dut(side, d, o)
                with path as front:
                    top = front.max_pps(o.pkt_size)
                    maxima[side].append(top / 1e6)
                    for load, share in LOADS:
                        pps = 1e6 if share is None else top * share
                        stolen = steal_ms()
                        r = front.measure(pps, o.pkt_size, o.seconds)
                        r["steal_ms"] = round(steal_ms() - stolen, 1)
                        raw[side][load].append(r)
                        if progress is not None:
                            progress.step(
                                f"  {scenario} trial {trial + 1}/{trials} {side} {load} "
                                f"({pps / 1e6:.2f} Mpps): p50 {(r['p50'] or 0) / 1e3:.1f} us, "
                                f"p99 {(r['p99'] or 0) / 1e3:.1f} us, lost {r['lost']}, "
                                f"our pollers stalled {r['stalled_ms']:.1f} ms, "
                                f"steal {r['steal_ms']:.0f} ms")
    latency = {side: {load: summarise(runs) for load, runs in loads.items()}
               for side, loads in raw.items()}
    rec = {"scenario": scenario, "pkt_size": o.pkt_size, "seconds": o.seconds, "trials": trials,
           "memory_mode": o.memory_mode,
           "max_mpps": {side: round(_median(v), 3) for side, v in maxima.items()},
           "latency_ns": latency, "absent": absent, "host_stalls": stalls,
           "tsc_offset": offset}
    if scenario == "switch-latency":
        rec["targets"] = targets(latency)
    return rec


def table(records: list[dict]) -> str:
    lines = ["| scenario | side | max Mpps | load | p50 us | p99 us | p99 range us | p99.9 us "
             "| max us | lost | stalled (steal) ms |",
             "|---|---|---:|---|---:|---:|---|---:|---:|---:|---|"]

    def us(v):
        return "-" if v is None else f"{v / 1e3:.1f}"
    for r in records:
        for side, loads in r["latency_ns"].items():
            for load, q in loads.items():
                span = "-" if not q.get("p99_range") else "-".join(us(v) for v in q["p99_range"])
                steal = ", ".join(f"{a:.0f} ({b:.0f})" for a, b in
                                  zip(q.get("stalled_ms") or [], q.get("steal_ms") or [])
                                  if a is not None and b is not None)
                lines.append(f"| {r['scenario']} | {side} | {r['max_mpps'][side]:.2f} | {load} | "
                             f"{us(q['p50'])} | {us(q['p99'])} | {span} | {us(q['p999'])} | "
                             f"{us(q['max'])} | {q['lost']:.0f} | {steal or '-'} |")
        for side, why in r["absent"].items():
            lines.append(f"| {r['scenario']} | {side} | - | - | - | - | - | - | - | - | "
                         f"absent: {why} |")
    goals = [f"{r['scenario']} {load}: ours {goal}: {'met' if g['met'] else 'NOT met'} "
             f"({us(g['ours_ns'])} us vs {us(g['limit_ns'])} us)"
             for r in records for load, gs in (r.get("targets") or {}).items()
             for goal, g in gs.items()]
    return "\n".join(lines + ([""] + goals if goals else [])) + "\n"


def cmd_latency(args) -> int:
    names = args.scenarios or list(SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            raise SystemExit(f"perf latency: unknown scenario {n!r}; known: {', '.join(SCENARIOS)}")
    o = Options(pkt_size=args.pkt_size, seconds=args.seconds, memory_mode=args.memory_mode)
    if args.trials < 1:
        raise SystemExit(f"perf latency: --trials must be at least 1, got {args.trials}")
    steps = sum(len(sides_of(n)[0]) * len(LOADS) for n in names) * args.trials
    with Progress(steps, "perf latency", stream=sys.stdout) as progress:
        records = [run_scenario(n, o, args.trials, progress) for n in names]
    print("\n" + table(records))
    report.save(args.json, records)
    return 0


def add_arguments(p) -> None:
    p.add_argument("scenarios", nargs="*", help=f"default: {' '.join(SCENARIOS)}")
    p.add_argument("--seconds", type=float, default=2.0, help="per load")
    p.add_argument("--trials", type=int, default=3,
                   help="trials per side, alternating the sides; medians are reported")
    p.add_argument("--pkt-size", type=int, default=64)
    p.add_argument("--memory-mode", choices=("hugepages", "no-huge"), default="hugepages")
    p.add_argument("--json", metavar="FILE")
