"""RFC 2544 throughput, latency and frame loss rate of a vhost-user receiver: ours and
dpdk-testpmd's (net_vhost rxonly), tested by our paced generator on a virtio-user port.

    python -m perf rfc2544 [--sizes 64,128,256,512,1024,1518] [--pdr-loss 0.001]
                           [--trial-seconds 2] [--json FILE] [--markdown FILE]

Per frame size and side: the NDR (highest offered rate without loss) and the PDR (loss
ratio <= --pdr-loss) by binary search over the generator's rate; one-way latency at the
NDR (ours: every trial's packets are a measured stream of their own flow id; testpmd has
no latency measurement of its own, so its column says so); the frame loss rate at 10,
50, 90 and 100 % of the search ceiling. The search itself (``bisect``) is pure and
unit-tested against a synthetic device.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

from dpdkvirtio.progress import Progress
from perf import report
from perf.setups import BACK, FRONT, Options, testpmd, vh_vdev

LOADS_PCT = (10, 50, 90, 100)
NO_LATENCY = {"testpmd": "testpmd has no end-to-end latency measurement of its own"}


def bisect(trial: Callable[[float], dict], loss: float, ceiling_pps: float,
           precision: float = 0.02, max_iterations: int = 14,
           report: Callable[[str], None] | None = None) -> tuple[dict | None, list[dict]]:
    """Binary search for the highest rate whose trial loses at most ``loss`` (a ratio).
    ``trial(rate)`` returns at least ``{"sent", "received", "loss"}``. Stops when the
    interval is within ``precision`` of its top or after ``max_iterations`` trials.
    Returns (the best passing trial or None, every trial)."""
    lo, hi, best, trials = 0.0, ceiling_pps, None, []
    for _ in range(max_iterations):
        rate = (lo + hi) / 2
        r = dict(trial(rate), pps=rate)
        ok = r["loss"] <= loss
        r["pass"] = ok
        trials.append(r)
        if report is not None:
            report(f"  offered {rate / 1e6:7.3f} Mpps: sent {r['sent']:,} received "
                   f"{r['received']:,} loss {r['loss']:.2e} {'pass' if ok else 'fail'}")
        if ok:
            lo, best = rate, r
        else:
            hi = rate
        if (hi - lo) / hi < precision:
            break
    return best, trials


class Tester:
    """Our generator (virtio-user, front-end CPU) against one receiving side on the
    back-end CPU. ``trial(pps, count)`` sends ``count`` packets at ``pps`` as a measured
    stream with a new flow id and returns sent, received, loss (and, when the receiver is
    ours, the flow's latency)."""

    def __init__(self, side: str, o: Options, trial_s: float):
        from dpdkvirtio.peers import Agent
        self.side, self.o, self.trial_s = side, o, trial_s
        self._stack = contextlib.ExitStack()
        self._dir = tempfile.mkdtemp(prefix="dv2544-", dir="/tmp")
        path = os.path.join(self._dir, "s.sock")
        self._flow = 0
        try:
            if side == "ours":
                self.back = self._stack.enter_context(Agent(o.memory_mode, cpu=BACK))
                self.back.call("port", name="v", kind="vhost-server", path=path)
                self.read = lambda: self.back.call("stats", name="v")["stats"]["rx_packets"]
            else:
                self.tp = self._stack.enter_context(
                    testpmd(vh_vdev(0, path, o), "rxonly", BACK, o))
                self.read = lambda: self.tp.port_stats(0)["rx"]
            self.front = self._stack.enter_context(Agent(o.memory_mode, cpu=FRONT))
            self.front.call("port", name="u", kind="virtio-user", path=path,
                            queue_size=o.ring_size)
            if side == "ours":
                self.back.call("wait", name="v", what="running")
                self.back.call("rx", name="v", flows=True)
            else:
                self.tp.wait_link_up(10)
                self.tp.start()
        except BaseException:
            self.close()
            raise

    def trial(self, pps: float) -> dict:
        self._flow = self._flow % 63 + 1
        count = max(1, int(pps * self.trial_s))
        rx0 = self.read()
        t0 = time.monotonic()
        self.front.call("gen", name="u", count=count, pkt_size=self.o.pkt_size, pps=pps,
                        tag=f"t{self._flow}", flow_id=self._flow)
        self.front.call("gen_wait", tag=f"t{self._flow}", timeout=self.trial_s * 10 + 10)
        elapsed = time.monotonic() - t0
        self.front.call("remove", name="u")
        time.sleep(0.3)                                   # let the ring drain
        got = self.read() - rx0
        r = {"offered_pps": count / elapsed, "sent": count, "received": got,
             "loss": (count - got) / count}
        if self.side == "ours":
            flow = self.back.call("flows", name="v", sent={self._flow: count})[str(self._flow)]
            r["latency_ns"] = {"p50": flow["p50_ns"], "p99": flow["p99_ns"],
                               "p999": flow["p99.9_ns"], "max": flow["lat_max_ns"]}
        return r

    def close(self) -> None:
        self._stack.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def run(sizes: list[int], sides: list[str], *, pdr_loss: float = 0.001, trial_s: float = 2.0,
        ceiling_pps: float = 30e6, max_iterations: int = 12, precision: float = 0.02,
        memory_mode: str = "hugepages", progress: Progress | None = None) -> list[dict]:
    """One record per (frame size, side): ndr/pdr (Mpps and the trials), latency at the
    NDR, frame loss rate per offered load."""
    records = []
    report = progress.step if progress is not None else None
    for size in sizes:
        o = Options(pkt_size=size, memory_mode=memory_mode)
        for side in sides:
            if progress is not None:
                progress.log(f"rfc2544: {size} B, {side}")
            tester = Tester(side, o, trial_s)
            try:
                ndr, ndr_trials = bisect(tester.trial, 0.0, ceiling_pps, precision,
                                         max_iterations, report)
                pdr, pdr_trials = bisect(tester.trial, pdr_loss, ceiling_pps, precision,
                                         max_iterations, report)
                loads = []
                for pct in LOADS_PCT:
                    r = tester.trial(ceiling_pps * pct / 100)
                    loads.append({"load_pct": pct, "offered_mpps": round(r["offered_pps"] / 1e6, 3),
                                  "loss": r["loss"]})
                    if report is not None:
                        report(f"  load {pct}%: loss {r['loss']:.2e}")
            finally:
                tester.close()

            def mpps(best):
                return round(min(best["pps"], best["offered_pps"]) / 1e6, 3) if best else 0.0
            rec = {"pkt_size": size, "side": side, "ndr_mpps": mpps(ndr), "pdr_mpps": mpps(pdr),
                   "pdr_loss": pdr_loss, "frame_loss": loads, "trial_seconds": trial_s,
                   "trials": {"ndr": ndr_trials, "pdr": pdr_trials}, "memory_mode": memory_mode}
            if side in NO_LATENCY:
                rec["latency_ns"] = None
                rec["latency_absent"] = NO_LATENCY[side]
            else:
                rec["latency_ns"] = (ndr or {}).get("latency_ns")
            records.append(rec)
    return records


def markdown(records: list[dict]) -> str:
    lines = ["| frame B | side | NDR Mpps | PDR Mpps | p50 us at NDR | p99 us at NDR | "
             + " | ".join(f"loss at {p}%" for p in LOADS_PCT) + " |",
             "|---:|---|---:|---:|---:|---:|" + "---:|" * len(LOADS_PCT)]
    for r in records:
        lat = r.get("latency_ns") or {}

        def us(v):
            return "-" if v is None else f"{v / 1e3:.1f}"
        lines.append(f"| {r['pkt_size']} | {r['side']} | {r['ndr_mpps']:.3f} | {r['pdr_mpps']:.3f} | "
                     f"{us(lat.get('p50'))} | {us(lat.get('p99'))} | "
                     + " | ".join(f"{x['loss']:.1e}" for x in r["frame_loss"]) + " |")
    return "\n".join(lines) + "\n"


def cmd_rfc2544(args) -> int:
    sizes = [int(x) for x in args.sizes.split(",") if x]
    sides = [x for x in args.sides.split(",") if x]
    for s in sides:
        if s not in ("ours", "testpmd"):
            raise SystemExit(f"perf rfc2544: unknown side {s!r}; use ours and/or testpmd")
    for size in sizes:
        if not 64 <= size <= 1518:
            raise SystemExit(f"perf rfc2544: frame size {size} is not 64..1518")
    steps = len(sizes) * len(sides) * (2 * args.max_iterations + len(LOADS_PCT))
    with Progress(steps, "rfc2544", stream=sys.stdout) as progress:
        records = run(sizes, sides, pdr_loss=args.pdr_loss, trial_s=args.trial_seconds,
                      ceiling_pps=args.ceiling_mpps * 1e6, max_iterations=args.max_iterations,
                      memory_mode=args.memory_mode, progress=progress)
    table = markdown(records)
    print("\n" + table)
    report.save(args.json, records)
    report.save(args.markdown, table)
    return 0


def add_arguments(p) -> None:
    p.add_argument("--sizes", default="64,128,256,512,1024,1518", help="frame sizes, bytes")
    p.add_argument("--sides", default="ours,testpmd", help="receivers under test")
    p.add_argument("--pdr-loss", type=float, default=0.001, help="PDR loss ratio")
    p.add_argument("--trial-seconds", type=float, default=2.0)
    p.add_argument("--ceiling-mpps", type=float, default=30.0, help="top of the search")
    p.add_argument("--max-iterations", type=int, default=12)
    p.add_argument("--memory-mode", choices=("hugepages", "no-huge"), default="hugepages")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--markdown", metavar="FILE")
