"""python -m perf capture: what capture costs the receiving PMD (issue 13).

Two scenarios, each on the basis of busy TSC cycles per packet of our PMD counters.
``vhost-rx``: our generator on FRONT feeds a vhost-user port through virtio-user, and an
rxonly PMD on BACK receives it (the feeder is the limit: the receiver's cycles are
compared). ``loopback``, self-bound: one PMD on BACK
generates into a net_ring loopback port and polls it back with rxonly, so it does all the
work and is 100 % busy; the capture's writer thread runs on FRONT and writes to
/dev/null (the disk is not measured). Sides, alternating round by round so that host
drift hits each: ``none`` (the port never had a capture: one load per burst), ``off``
(the port has a capture tap, no capture on: a store and a load per burst), ``rx-128`` and
``rx-full`` (every received packet copied, snaplen 128 and 65535), ``rx-filter-1%`` (a
pcap filter run on every packet, 1 % of them copied). For capture on, the share of the
wanted packets captured (the rest counted as dropped) is reported too.
"""

from __future__ import annotations

import itertools
import json
import shutil
import statistics
import tempfile
import time

from dpdkvirtio.peers import unique_prefix
from perf.setups import BACK, FRONT, pmd_cost, start_pair, warmup_s

SIDES = ("none", "off", "rx-128", "rx-full", "rx-filter-1%")
FILTER_1PCT = "udp src port 1000"           # one source port of the stream's 100


def loopback(dv, seconds: float, index: int, side: str) -> dict:
    port = dv.VdevPort(f"net_ring{index}", "")
    pmd = dv.Pmd(cpu=BACK)
    cap = None
    try:
        port.start()
        pmd.add_rxq(port, 0, "rxonly")
        # source ports 1000..1099 in turn: the 1 % filter matches one packet in 100
        pmd.add_generator(port, 0, dv.Stream(dv.udp_frame(64),
                                             vars=[dv.FieldVar("udp.sport", 1000, 1099)]))
        if side == "off":
            port.capture(None).close()                      # the tap exists from here
        elif side.startswith("rx-"):
            snaplen = 65535 if side == "rx-full" else 128
            out = open("/dev/null", "wb")                   # noqa: SIM115 (closed below)
            cap = (port.capture(out.fileno(), snaplen=snaplen,
                                filter=FILTER_1PCT if side == "rx-filter-1%" else None), out)
        pmd.start()
        time.sleep(seconds)
        pmd.stop()
        pmd.remove(port)
        burst = dv.Burst(64)
        while port.rx_burst(0, burst):                     # what the ring still holds
            burst.free()
        res = {}
        if cap is not None:
            res = cap[0].stop()
            cap[1].close()
        cpp, busy = pmd_cost(pmd, "rx_packets")
        rx = int(pmd.counters[0]["rx_packets"])
        out_rec = {"mpps": rx / seconds / 1e6, "cycles_per_packet": cpp, "busy": busy}
        if res:
            rx = res["interfaces"]["rx"]
            wanted = rx.get("accepted", rx["seen"])
            out_rec["captured_share"] = res["written"] / wanted if wanted else 0.0
            out_rec["captured_mpps"] = res["written"] / seconds / 1e6
        return out_rec
    finally:
        pmd.close()
        port.close()


def vhost_rx(dv, seconds: float, sockdir: str, side: str) -> dict:
    """The vhost-rx scenario's receiver: our generator (FRONT) -> virtio-user -> vhost-user
    -> rxonly (BACK). The feeder is the limit here, so the receiver's busy cycles per
    packet are compared, not its rate."""
    v, u = start_pair(dv, sockdir)
    a, b = dv.Pmd(cpu=FRONT), dv.Pmd(cpu=BACK)
    cap = None
    out = None
    try:
        b.add_rxq(v, 0, "rxonly")
        a.add_generator(u, 0, dv.Stream(dv.udp_frame(64),
                                        vars=[dv.FieldVar("udp.sport", 1000, 1099)]))
        if side == "off":
            v.capture(None).close()
        elif side.startswith("rx-"):
            out = open("/dev/null", "wb")                   # noqa: SIM115 (closed below)
            cap = v.capture(out.fileno(), snaplen=65535 if side == "rx-full" else 128,
                            filter=FILTER_1PCT if side == "rx-filter-1%" else None)
        b.start()
        a.start()
        time.sleep(warmup_s(seconds))
        c0 = b.counters[0].copy()
        time.sleep(seconds)
        c1 = b.counters[0].copy()
        a.stop()
        time.sleep(0.2)
        b.stop()
        res = cap.stop() if cap is not None else {}
        busy = int(c1["busy_cycles"]) - int(c0["busy_cycles"])
        idle = int(c1["idle_cycles"]) - int(c0["idle_cycles"])
        pkts = int(c1["rx_packets"]) - int(c0["rx_packets"])
        rec = {"mpps": pkts / seconds / 1e6, "cycles_per_packet": busy / pkts if pkts else 0.0,
               "busy": busy / (busy + idle) if busy + idle else 0.0}
        if res:
            rx = res["interfaces"]["rx"]
            wanted = rx.get("accepted", rx["seen"])
            rec["captured_share"] = res["written"] / wanted if wanted else 0.0
        return rec
    finally:
        if out is not None:
            out.close()
        a.close()
        b.close()
        u.close()
        v.close()


def run(seconds: float = 3.0, rounds: int = 3, memory_mode: str = "auto", log=print) -> dict:
    import dpdkvirtio as dv
    dv.init(memory_mode=memory_mode, file_prefix=unique_prefix("perfc"), log_level="error",
            workers={1: FRONT, 2: BACK})
    ids = itertools.count()
    sockdir = tempfile.mkdtemp(prefix="dvperfc-", dir="/tmp")
    scenarios = {"loopback": lambda side: loopback(dv, seconds, next(ids), side),
                 "vhost-rx": lambda side: vhost_rx(dv, seconds, sockdir, side)}
    result: dict = {"seconds": seconds, "rounds": rounds, "basis": {
        "loopback": "busy cycles/packet of a self-bound PMD (net_ring: generator + rxonly "
                    "on one lcore)",
        "vhost-rx": "busy cycles/packet of the receiving PMD (feeder-bound: our generator "
                    "through virtio-user on the other CPU)"}, "median": {}, "runs": {}}
    try:
        for scenario, measure in scenarios.items():
            runs: dict[str, list] = {s: [] for s in SIDES}
            for r in range(rounds):
                for side in SIDES:
                    rec = measure(side)
                    runs[side].append(rec)
                    extra = (f", captured {rec['captured_share'] * 100:.1f} %"
                             if "captured_share" in rec else "")
                    log(f"{scenario} round {r + 1} {side:12}: {rec['mpps']:.2f} Mpps, "
                        f"{rec['cycles_per_packet']:.1f} cycles/packet, "
                        f"busy {rec['busy'] * 100:.0f} %{extra}")
            summary = {side: {k: statistics.median(x[k] for x in recs) for k in recs[0]}
                       for side, recs in runs.items()}
            base = summary["none"]["cycles_per_packet"]
            for side in SIDES:
                summary[side]["cycles_vs_none"] = (summary[side]["cycles_per_packet"] / base
                                                   if base else 0.0)
            result["median"][scenario] = summary
            result["runs"][scenario] = runs
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)
    return result


def cmd_capture(args) -> int:
    result = run(args.seconds, args.rounds, args.memory_mode)
    print()
    print("| scenario | side | Mpps | cycles/packet | vs none | captured |")
    print("|---|---|---|---|---|---|")
    for scenario, summary in result["median"].items():
        for side, m in summary.items():
            cap = f"{m['captured_share'] * 100:.1f} %" if "captured_share" in m else "-"
            print(f"| {scenario} | {side} | {m['mpps']:.2f} | {m['cycles_per_packet']:.1f} | "
                  f"{m['cycles_vs_none']:.3f} | {cap} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0
