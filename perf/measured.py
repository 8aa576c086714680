"""python -m perf measured: what measured streams cost and what they measure (issue 11).

Cost, each on the cycles basis of our PMD counters (busy TSC cycles / packets):
  * generator: unpaced into net_null (whose tx frees: the generator is the bottleneck,
    self-bound), with ``flow_id`` (stamping) and without; Mpps and cycles/packet;
  * receiver: rxonly on a vhost-user port fed by the same measured generator through
    virtio-user, with a FlowStats table and without. The feeder is the limit there, so the
    receiver's busy cycles per packet are compared, not its rate.
Latency: the in-process pair (generator PMD -> virtio-user -> vhost-user -> rxonly PMD)
and the same pair across two processes, at 10/50/90 % of the pair's measured maximum.
Rounds alternate (with, without, with, ...) so that host drift hits both sides.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import tempfile
import time

from dpdkvirtio.peers import Agent, unique_prefix
from perf.setups import BACK, FRONT, pmd_cost, start_pair, steal_ms, warmup_s

LOADS = (0.10, 0.50, 0.90)


def generator_cost(dv, seconds: float, measured: bool) -> dict:
    port = dv.VdevPort("net_null0", "size=64,copy=0")
    pmd = dv.Pmd(cpu=BACK)
    try:
        port.start()
        g = pmd.add_generator(port, 0, dv.Stream(dv.udp_frame(64),
                                                 flow_id=1 if measured else None))
        pmd.start()
        time.sleep(seconds)
        pmd.stop()
        cpp, busy = pmd_cost(pmd, "tx_packets")
        return {"mpps": g.built / seconds / 1e6, "cycles_per_packet": cpp, "busy": busy}
    finally:
        pmd.close()
        port.close()


def loopback_cost(dv, seconds: float, index: int, *, account: bool, measured: bool = True) -> dict:
    """One PMD generates into a net_ring loopback port and polls it back with rxonly:
    self-bound (the PMD does both, 100 % busy), so busy cycles per packet with and without
    a FlowStats table differ by exactly what the accounting costs."""
    port = dv.VdevPort(f"net_ring{index}", "")
    pmd = dv.Pmd(cpu=BACK)
    flows = dv.FlowStats(max_flows=2) if account else None
    try:
        port.start()
        pmd.add_rxq(port, 0, "rxonly", flows=flows)
        pmd.add_generator(port, 0, dv.Stream(dv.udp_frame(64), flow_id=1 if measured else None))
        pmd.start()
        time.sleep(seconds)
        pmd.stop()
        cpp, busy = pmd_cost(pmd, "rx_packets")
        out = {"mpps": int(pmd.counters[0]["rx_packets"]) / seconds / 1e6,
               "cycles_per_packet": cpp, "busy": busy}
        if flows is not None:
            f = flows.flow(1)
            if f["lost"] or f["duplicates"] or f["out_of_order"]:
                raise RuntimeError(f"the loopback lost or reordered packets: {f}")
        return out
    finally:
        pmd.close()
        port.close()


def pair_run(dv, sockdir: str, seconds: float, *, account: bool, pps: float | None = None) -> dict:
    """Measured generator (FRONT) -> u -> v -> rxonly (BACK), with or without a table."""
    v, u = start_pair(dv, sockdir)
    a, b = dv.Pmd(cpu=FRONT), dv.Pmd(cpu=BACK)
    flows = dv.FlowStats(max_flows=2) if account else None
    try:
        b.add_rxq(v, 0, "rxonly", flows=flows)
        g = a.add_generator(u, 0, dv.Stream(dv.udp_frame(64), flow_id=1, pps=pps))
        b.start()
        a.start()
        time.sleep(warmup_s(seconds))                  # warm-up, then count afresh
        rx0 = v.stats()["rx_packets"]
        if flows is not None:
            flows.reset()
        c0 = b.counters[0].copy()
        st0 = steal_ms()
        time.sleep(seconds)
        st1 = steal_ms()
        rx1 = v.stats()["rx_packets"]
        c1 = b.counters[0].copy()
        g.pause()
        a.stop()
        time.sleep(0.2)
        b.stop()
        busy = int(c1["busy_cycles"]) - int(c0["busy_cycles"])
        idle = int(c1["idle_cycles"]) - int(c0["idle_cycles"])
        pkts = int(c1["rx_packets"]) - int(c0["rx_packets"])
        out = {"mpps": (rx1 - rx0) / seconds / 1e6,
               "cycles_per_packet": busy / pkts if pkts else 0.0,
               "busy": busy / (busy + idle) if busy + idle else 0.0}
        if flows is not None:
            f = flows.flow(1)
            out["latency_ns"] = {"p50": f["p50_ns"], "p99": f["p99_ns"], "p999": f["p99.9_ns"],
                                 "max": f["lat_max_ns"], "lost": f["lost"],
                                 "received": f["received"], "steal_ms": st1 - st0}
        return out
    finally:
        a.close()
        b.close()
        u.close()
        v.close()


def two_process_latency(sockdir: str, seconds: float, memory_mode: str) -> dict:
    path = os.path.join(sockdir, "x.sock")
    out: dict = {}
    with Agent(memory_mode, cpu=BACK) as back, Agent(memory_mode, cpu=FRONT) as front:
        back.call("port", name="v", kind="vhost-server", path=path)
        front.call("port", name="u", kind="virtio-user", path=path, queue_size=1024)
        back.call("wait", name="v", what="running")
        back.call("rx", name="v", flows=True)
        # the pair's maximum: unpaced, received packets per second
        front.call("gen", name="u", pps=0, tag="max", flow_id=0)
        time.sleep(warmup_s(seconds))
        r0 = back.call("stats", name="v")["stats"]["rx_packets"]
        time.sleep(seconds)
        r1 = back.call("stats", name="v")["stats"]["rx_packets"]
        front.call("pause", tag="max")
        max_pps = (r1 - r0) / seconds
        out["max_mpps"] = max_pps / 1e6
        for i, load in enumerate(LOADS, start=1):
            n = int(max_pps * load * seconds)
            st0 = steal_ms()
            front.call("gen", name="u", pps=max_pps * load, count=n, tag=f"l{i}", flow_id=i)
            built = front.call("gen_wait", tag=f"l{i}", timeout=seconds * 3 + 30)["built"]
            st1 = steal_ms()
            time.sleep(0.3)
            f = back.call("flows", name="v", sent={i: built})[str(i)]
            out[f"{round(load * 100)}%"] = {"p50": f["p50_ns"], "p99": f["p99_ns"],
                                            "p999": f["p99.9_ns"], "max": f["lat_max_ns"],
                                            "lost": f["lost_total"], "received": f["received"],
                                            "steal_ms": st1 - st0}
        front.call("close", name="u")
        back.call("close", name="v")
    return out


def run(seconds: float = 3.0, rounds: int = 3, memory_mode: str = "auto", log=print) -> dict:
    import dpdkvirtio as dv
    dv.init(memory_mode=memory_mode, file_prefix=unique_prefix("perfm"), log_level="error",
            workers={1: FRONT, 2: BACK})
    result: dict = {"seconds": seconds, "rounds": rounds, "generator": {}, "receiver": {}}
    gen: dict[str, list] = {"with": [], "without": []}
    rx: dict[str, list] = {"with": [], "without": [], "unmeasured": [], "unmeasured_no_table": []}
    sockdir = tempfile.mkdtemp(prefix="dvperfm-", dir="/tmp")
    ring_ids = itertools.count()                 # a fresh net_ring name per run
    try:
        for r in range(rounds):
            for side in ("with", "without"):
                gen[side].append(generator_cost(dv, seconds, side == "with"))
                rx[side].append(loopback_cost(dv, seconds, next(ring_ids), account=side == "with"))
                log(f"round {r + 1} {side:7}: generator {gen[side][-1]['mpps']:.2f} Mpps "
                    f"{gen[side][-1]['cycles_per_packet']:.1f} c/p; loopback "
                    f"{rx[side][-1]['cycles_per_packet']:.1f} c/p ({rx[side][-1]['busy'] * 100:.0f}% busy)")
            for key, table in (("unmeasured", True), ("unmeasured_no_table", False)):
                rx[key].append(loopback_cost(dv, seconds, next(ring_ids), account=table,
                                             measured=False))
        for name, runs in (("generator", gen), ("receiver", rx)):
            for side in runs:
                result[name][side] = {k: statistics.median(x[k] for x in runs[side])
                                      for k in ("mpps", "cycles_per_packet", "busy")}
        g, x = result["generator"], result["receiver"]
        g["ratio_mpps"] = g["with"]["mpps"] / g["without"]["mpps"]
        g["ratio_cycles"] = g["without"]["cycles_per_packet"] / g["with"]["cycles_per_packet"]
        x["ratio_cycles"] = x["without"]["cycles_per_packet"] / x["with"]["cycles_per_packet"]
        x["accounting_cycles"] = x["with"]["cycles_per_packet"] - x["without"]["cycles_per_packet"]
        # the pair's maximum, with accounting, for the latency loads
        max_pps = statistics.median(pair_run(dv, sockdir, seconds, account=True)["mpps"]
                                    for _ in range(rounds)) * 1e6
        lat = {"max_mpps": max_pps / 1e6}
        for load in LOADS:
            run_ = pair_run(dv, sockdir, seconds, account=True, pps=max_pps * load)
            lat[f"{round(load * 100)}%"] = run_["latency_ns"]
        result["latency_in_process"] = lat
        result["latency_two_process"] = two_process_latency(sockdir, seconds, memory_mode)
    finally:
        import shutil
        shutil.rmtree(sockdir, ignore_errors=True)
    return result


def format_report(r: dict) -> str:
    g, x = r["generator"], r["receiver"]
    lines = [
        "cost (medians; cycles = busy TSC cycles per packet of our PMD)",
        f"  generator into net_null (self-bound): without {g['without']['mpps']:.2f} Mpps "
        f"{g['without']['cycles_per_packet']:.1f} c/p, with flow_id {g['with']['mpps']:.2f} Mpps "
        f"{g['with']['cycles_per_packet']:.1f} c/p -> {g['ratio_mpps']:.3f}x (Mpps), "
        f"{g['ratio_cycles']:.3f}x (cycles)",
        f"  generator + rxonly on one PMD over a net_ring loopback (self-bound): without a "
        f"table {x['without']['cycles_per_packet']:.1f} c/p, with FlowStats "
        f"{x['with']['cycles_per_packet']:.1f} c/p (accounting {x['accounting_cycles']:.1f} c/p) "
        f"-> {x['ratio_cycles']:.3f}x; an unmeasured stream with a table "
        f"{x['unmeasured']['cycles_per_packet']:.1f} c/p, without "
        f"{x['unmeasured_no_table']['cycles_per_packet']:.1f} c/p",
    ]
    for name in ("latency_in_process", "latency_two_process"):
        lat = r[name]
        lines.append(f"{name.replace('_', ' ')} (max {lat['max_mpps']:.2f} Mpps): "
                     "load p50/p99/p99.9/max us, lost")
        for load in ("10%", "50%", "90%"):
            v = lat[load]
            lines.append(f"  {load:>4}: " + " / ".join(
                "-" if v[k] is None else f"{v[k] / 1e3:.1f}" for k in ("p50", "p99", "p999", "max"))
                + f", lost {v['lost']} of {v['received'] + v['lost']}, "
                f"host steal {v['steal_ms']:.0f} ms")
    return "\n".join(lines)


def cmd_measured(args) -> int:
    r = run(args.seconds, args.rounds, args.memory_mode)
    print(format_report(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0
