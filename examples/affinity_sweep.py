"""Affinity sweep: which placement of the sending and receiving PMD threads on this
host's CPUs (and which burst size) moves the most packets, at what cost per packet and,
with measured streams, at what latency.

A vhost-user port (the back-end) and a virtio-user port (the guest side) in this process,
two queue pairs. Per placement, generators on the guest side send and ``rxonly``
receivers on the back-end count; the rate comes from the back-end's live queue counters,
the cost from the receiving PMDs' busy cycles. Repeated trials give the spread.

    python examples/affinity_sweep.py --seconds 2 --trials 3 [--json out.json]
    python examples/affinity_sweep.py --latency          # measured streams: p50/p99

The notebook examples/affinity_tuning.ipynb uses the same functions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import dpdkvirtio as dv
from dpdkvirtio import decide as decide_
from dpdkvirtio.progress import Progress


def placements(cpu_a: int, cpu_b: int) -> list[tuple[str, list[int], list[int]]]:
    """(label, generator CPU per queue, receiver CPU per queue) for two queues."""
    return [
        ("gen A, rx B (crossed)", [cpu_a, cpu_a], [cpu_b, cpu_b]),
        ("gen B, rx A (crossed)", [cpu_b, cpu_b], [cpu_a, cpu_a]),
        ("all on one CPU", [cpu_b, cpu_b], [cpu_b, cpu_b]),
        ("queues split over both", [cpu_a, cpu_b], [cpu_b, cpu_a]),
    ]


class Pair:
    """The back-end (vhost-user, 2 queues) and the guest side (virtio-user) connected
    over a socket in a private directory; ``close()`` removes both and the directory."""

    def __init__(self, queues: int = 2):
        self.dir = tempfile.mkdtemp(prefix="dvsweep-", dir="/tmp")
        self.backend = self.guest = None
        try:
            self.backend = dv.VhostUserPort(os.path.join(self.dir, "vhu0.sock"), queues=queues)
            self.guest = dv.VirtioUserPort(self.backend.path, queues=queues, queue_size=1024)
            if not self.backend.wait_running(10):
                raise RuntimeError("the virtio-user port never brought the vhost device up")
            deadline = time.monotonic() + 10
            while len(self.backend.status()["enabled_vrings"]) < 2 * queues:
                if time.monotonic() > deadline:
                    raise RuntimeError("the guest side never enabled all its queues")
                time.sleep(0.05)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for port in (self.guest, self.backend):
            if port is not None:
                port.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Pair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def measure(pair: Pair, label: str, gen_cpus: list[int], rx_cpus: list[int], *,
            burst: int = 32, seconds: float = 1.0, pps_per_queue: float | None = None,
            on_sample: Callable[[float, float], None] | None = None) -> dict:
    """One placement: ``gen_cpus[q]`` / ``rx_cpus[q]`` is the CPU whose PMD sends /
    receives queue q. With ``pps_per_queue`` the generators are paced and measured (flow
    id = queue): the result then has p50/p99 latency. ``on_sample(elapsed_s, mpps)`` is
    called ten times a second while it runs (a live view)."""
    pmds: dict[int, dv.Pmd] = {}
    tables: dict[int, dv.FlowStats] = {}

    def pmd(cpu: int) -> dv.Pmd:
        if cpu not in pmds:
            pmds[cpu] = dv.Pmd(cpu=cpu, burst_size=burst)
        return pmds[cpu]
    measured = pps_per_queue is not None
    try:
        for q, cpu in enumerate(gen_cpus):
            stream = dv.Stream(dv.udp_frame(64), pps=pps_per_queue,
                               flow_id=q if measured else None)
            pmd(cpu).add_generator(pair.guest, q, stream)
        for q, cpu in enumerate(rx_cpus):
            tables[q] = dv.FlowStats(len(rx_cpus)) if measured else None
            pmd(cpu).add_rxq(pair.backend, q, "rxonly", flows=tables[q])
        for p in pmds.values():
            p.start()
        time.sleep(0.3)                                   # warm up
        for t in tables.values():
            if t is not None:
                t.reset()
        rx = pair.backend.counters                  # live numpy view
        r0 = _role_costs(pmds.values())
        n0 = int(rx["rx_packets"].sum())
        t0 = time.monotonic()
        end = t0 + seconds
        while (now := time.monotonic()) < end:
            time.sleep(min(0.1, end - now))
            if on_sample is not None:
                done = time.monotonic() - t0
                on_sample(done, (int(rx["rx_packets"].sum()) - n0) / done / 1e6)
        n1, t1 = int(rx["rx_packets"].sum()), time.monotonic()
        r1 = _role_costs(pmds.values())
        per_packet = {}
        for role in ("generator", "receiver"):
            cycles, packets = (r1[role][i] - r0[role][i] for i in (0, 1))
            per_packet[role] = cycles / packets if packets else float("nan")
        out = {"placement": label, "burst": burst, "mpps": (n1 - n0) / (t1 - t0) / 1e6,
               "cycles_per_packet": per_packet["receiver"],
               "gen_cycles_per_packet": per_packet["generator"], "pmds": len(pmds),
               "gen_cpus": list(gen_cpus), "rx_cpus": list(rx_cpus)}
        if measured:
            flows = [t.flow(q) for q, t in tables.items() if t is not None]
            out["p50_us"] = max(f["p50_ns"] or 0 for f in flows) / 1e3
            out["p99_us"] = max(f["p99_ns"] or 0 for f in flows) / 1e3
            out["lost"] = sum(f["lost"] for f in flows)
        return out
    finally:
        for p in pmds.values():
            p.close()


def _role_costs(pmds) -> dict[str, list[int]]:
    """{"generator" | "receiver": [cycles, packets]} summed over the PMDs' assignments:
    each role's own polls, also when both share a thread (a PMD's busy cycles would
    charge the receiver for the generator's work)."""
    out = {"generator": [0, 0], "receiver": [0, 0]}
    for p in pmds:
        for row in p.rxq_show():
            role = out["generator" if row["action"] == "generator" else "receiver"]
            role[0] += row["cycles"]
            role[1] += row["packets"]
    return out


def decide(rows: list[dict], tolerance: float = 0.03) -> dict:
    """The placement with the best median Mpps, and each other one against it with
    perf ab's decision (dpdkvirtio.decide: the median of per-trial paired ratios and its
    exact 95 % interval, at least 6 trials): "slower" only when the interval says so,
    else "within noise". Returns {"best", "verdicts": {placement: (verdict, ratio,
    ci_low, ci_high)}, "decided": every other one is slower}."""
    by: dict[str, dict[int, float]] = {}
    for r in rows:
        by.setdefault(r["placement"], {})[r["trial"]] = r["mpps"]
    best = max(by, key=lambda k: statistics.median(by[k].values()))
    verdicts = {}
    for label, mpps in by.items():
        if label == best:
            continue
        trials = sorted(set(mpps) & set(by[best]))
        # cost = 1 / Mpps: the ratio is how much dearer a packet is than at the best
        ratios = [decide_.paired_ratio(1 / by[best][t], 1 / mpps[t]) for t in trials
                  if mpps[t] > 0 and by[best][t] > 0]
        est = decide_.estimate(ratios)
        v = decide_.verdict(est, tolerance)
        verdicts[label] = ("slower" if v == "regression" else "faster" if v == "improvement"
                           else "within noise",
                           None if est is None else round(est.ratio, 3),
                           None if est is None else round(est.ci_low, 3),
                           None if est is None else round(est.ci_high, 3))
    return {"best": best, "verdicts": verdicts,
            "decided": all(v[0] == "slower" for v in verdicts.values())}


def settings(rows: list[dict], decision: dict) -> dict:
    """What to apply on a switch for the chosen placement: its receiving CPUs as
    ``pmd-cpu-mask``, queue -> CPU as ``pmd-rxq-affinity``, and the burst size (of the
    best "crossed, burst N" row when the sweep decided it, else 32)."""
    chosen = next(r for r in rows if r["placement"] == decision["best"])
    mask = sum(1 << c for c in set(chosen["rx_cpus"]))
    return {"pmd-cpu-mask": hex(mask),
            "pmd-rxq-affinity": ",".join(f"{q}:{c}" for q, c in enumerate(chosen["rx_cpus"])),
            "burst": chosen["burst"] if decision["decided"] else 32,
            "placement": chosen["placement"], "decided": decision["decided"]}


def sweep(pair: Pair, trials: int = 3, seconds: float = 1.0, bursts: tuple[int, ...] = (),
          pps_per_queue: float | None = None, progress: Progress | None = None,
          on_sample: Callable[[float, float], None] | None = None) -> list[dict]:
    """Every placement (and the crossed placement at each of ``bursts``), ``trials``
    times, interleaved so that a drifting host spreads over all of them."""
    cpus = sorted(os.sched_getaffinity(0))
    plan = [(label, g, r, 32) for label, g, r in placements(cpus[0], cpus[-1])]
    crossed = plan[0]
    plan += [(f"crossed, burst {b}", crossed[1], crossed[2], b) for b in bursts]
    rows = []
    for trial in range(trials):
        for label, g, r, burst in plan:
            row = measure(pair, label, g, r, burst=burst, seconds=seconds,
                          pps_per_queue=pps_per_queue, on_sample=on_sample)
            row["trial"] = trial
            rows.append(row)
            if progress is not None:
                progress.step(f"{label:<26} {row['mpps']:6.2f} Mpps "
                              f"{row['cycles_per_packet']:7.1f} cycles/pkt"
                              + (f"  p99 {row['p99_us']:.1f} us" if "p99_us" in row else ""))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="measured seconds per point")
    ap.add_argument("--trials", type=int, default=6,
                    help="per placement; a verdict needs 6 or more")
    ap.add_argument("--bursts", default="16,32,64", help="burst sizes for the crossed placement")
    ap.add_argument("--latency", action="store_true",
                    help="paced measured streams (1 Mpps per queue): p50/p99 latency too")
    ap.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    args = ap.parse_args(argv)
    bursts = tuple(int(b) for b in args.bursts.split(",") if b)
    dv.init(log_level="warning")
    with Pair() as pair:
        n = args.trials * (len(placements(0, 0)) + len(bursts))
        with Progress(n, "affinity sweep") as progress:
            rows = sweep(pair, args.trials, args.seconds, bursts,
                         1e6 if args.latency else None, progress)
    by: dict[str, list[dict]] = {}
    for row in rows:
        by.setdefault(row["placement"], []).append(row)
    decision = decide(rows)
    print(f"{'placement':<26} {'Mpps median':>11} {'min':>6} {'max':>6} {'rx cyc/pkt':>10} "
          f"{'gen cyc/pkt':>11}  against the best" + ("  p99 us" if args.latency else ""))
    for label, rs in by.items():
        mpps = sorted(r["mpps"] for r in rs)
        rx = statistics.median(r["cycles_per_packet"] for r in rs)
        gen = statistics.median(r["gen_cycles_per_packet"] for r in rs)
        v = decision["verdicts"].get(label)
        said = "best" if v is None else (f"{v[0]} (x{v[1]}, CI {v[2]}-{v[3]})" if v[1]
                                         else f"{v[0]} (too few trials for an interval)")
        print(f"{label:<26} {mpps[len(mpps) // 2]:11.2f} {mpps[0]:6.2f} {mpps[-1]:6.2f} "
              f"{rx:10.1f} {gen:11.1f}  {said}"
              + (f"  {max(r['p99_us'] for r in rs):6.1f}" if args.latency else ""))
    s = settings(rows, decision)
    print(("\nthe best placement, every other one slower (95 % CI): " if s["decided"] else
           "\nno placement is better than every other beyond the noise; the best median: ")
          + s["placement"])
    print(f"apply: pmd-cpu-mask={s['pmd-cpu-mask']} pmd-rxq-affinity=\"{s['pmd-rxq-affinity']}\" "
          f"burst={s['burst']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
