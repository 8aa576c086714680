"""python -m perf: run scenarios side by side with their peers, compare with a baseline,
search the zero-loss throughput.

    python -m perf run [SCENARIO ...] [--seconds 5] [--trials 3] [--json FILE]
    python -m perf compare BASELINE.json NEW.json [--tolerance 0.05] [--junit F] [--markdown F]
    python -m perf ab BASE CANDIDATE [--scenario S] [--budget-s 600] [--json F] [--markdown F]
    python -m perf ndr [--loss 0] [--seconds 2]
    python -m perf rfc2544 [--sizes 64,128,...] [--pdr-loss 0.001] [--json F] [--markdown F]
    python -m perf report RESULTS.json -o DIR
    python -m perf latency [switch-latency] [vhost-latency] [--seconds 2] [--json F]
    python -m perf measured [--seconds 3] [--rounds 3] [--json FILE]
    python -m perf notify [--seconds 3] [--json FILE]
    python -m perf list
    python -m perf fingerprint
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys

from dpdkvirtio.progress import Progress
from perf import capacity, compare, host, report, stats
from perf.scenarios import NOT_SIDES, SCENARIOS, STANDARD, Unsupported
from perf.setups import BACK, FRONT, Options


class Refused(Exception):
    """Measuring now would give wrong numbers (or no numbers)."""


def _guard(force: bool):
    busy = host.busy_pollers([FRONT, BACK], ignore_pids={os.getpid()})
    if busy and not force:
        lines = "\n".join(f"  pid {b['pid']} on CPU {b['cpu']} at {b['share'] * 100:.0f}%: {b['cmd']}"
                          for b in busy)
        raise Refused("busy pollers are running on the CPUs the benchmark needs; they would "
                      f"halve the figures. Stop them first (kill PID), or pass --force:\n{lines}")


def _available_sides(name: str) -> dict:
    from dpdkvirtio.peers import ovs_dpdk_available
    sides = {k: v for k, v in SCENARIOS[name].items() if k not in NOT_SIDES}
    if "ovs-dpdk" in sides and not ovs_dpdk_available():
        sides["ovs-dpdk"] = None
    return sides


def measure_side(setup, o: Options) -> dict:
    o.extra.pop("cycles", None)
    o.extra.pop("counterpart_stalls", None)
    with setup(o) as read:
        return stats.sample_rate(read, o.seconds, o.warmup_s, cycles=o.extra.pop("cycles", None))


def run_scenario(name: str, o: Options, trials: int, log=print, step=None) -> dict:
    """Alternate trials (ours, peers, ours, peers ...) and summarise: a JSON record.
    ``step(detail)`` is called after each measured side (default: ``log``)."""
    step = step or log
    sides = _available_sides(name)
    values: dict[str, list[float]] = {k: [] for k, v in sides.items() if v is not None}
    cpp: dict[str, list[float]] = {k: [] for k in values}       # busy cycles per packet
    busy: dict[str, list[float]] = {k: [] for k in values}      # busy share, %
    errors: dict[str, str] = {}
    for t in range(trials):
        for side, setup in sides.items():
            if setup is None or side in errors:
                continue
            try:
                r = measure_side(setup, o)
            except Unsupported as e:
                errors[side] = f"unsupported: {e}"
                step(f"  {name} [{side}]: {errors[side]}")
                continue
            except (RuntimeError, OSError, TimeoutError) as e:
                errors[side] = str(e).splitlines()[0][:300]
                step(f"  {name} [{side}] failed: {errors[side]}")
                continue
            values[side].append(r["pps"] / 1e6)
            extra = ""
            if r.get("busy_pct") is not None:
                busy[side].append(r["busy_pct"])
                extra += f", busy {r['busy_pct']:.0f}%"
            if r.get("cycles_per_packet") is not None:
                cpp[side].append(r["cycles_per_packet"])
                extra += f", {r['cycles_per_packet']:.0f} cycles/packet"
            step(f"  {name} trial {t + 1}/{trials} {side:>9}: {r['pps'] / 1e6:7.2f} Mpps "
                 f"(periods {', '.join(f'{p / 1e6:.1f}' for p in r['periods'])}{extra})")
    summ = {k: stats.summary(v) for k, v in values.items()}
    ours = summ.get("ours", {}).get("median")
    peers = {}
    for side in sides:
        if side == "ours":
            continue
        peers[side] = summ[side]["median"] if side in summ else None
    tp = peers.get("testpmd")

    def median(d, side, digits):
        m = stats.summary(d.get(side, []))["median"]
        return round(m, digits) if m is not None else None
    cycles = {side: median(cpp, side, 1) for side in values}
    busy_pct = {side: median(busy, side, 1) for side in values}
    bound = {side: capacity.bound(busy_pct[side]) for side in values}

    def paired(peer):
        # ours and the peer measured back to back in each trial: the median of those ratios
        # is steadier than a ratio of medians on a host whose speed drifts
        a, b = values.get("ours", []), values.get(peer, [])
        r = [x / y for x, y in zip(a, b) if y]
        return round(stats.summary(r)["median"], 3) if r else None

    def ratio(peer):
        """(ratio, basis): throughput when both sides were self-bound, else cycles."""
        if not (ours and peers.get(peer)):
            return None, None
        value, basis = capacity.summary_ratio(ours, peers[peer], cycles.get("ours"),
                                              cycles.get(peer), bound.get("ours"),
                                              bound.get(peer))
        return (paired(peer), basis) if basis == "mpps" else (value, basis)
    by_peer = {k: ratio(k) for k in peers}
    rec = {
        "scenario": name,
        "what": SCENARIOS[name]["what"],
        "counterpart": SCENARIOS[name].get("counterpart"),
        "ours_mpps": round(ours, 3) if ours is not None else None,
        "peers": {k: (round(v, 3) if v is not None else None) for k, v in peers.items()},
        "ratio": by_peer.get("testpmd", (None, None))[0],
        "ratio_basis": by_peer.get("testpmd", (None, None))[1],
        "ratios": {k: v for k, (v, _) in by_peer.items() if v is not None},
        "ratio_bases": {k: b for k, (v, b) in by_peer.items() if v is not None},
        "cycles_per_packet": cycles,
        "busy_pct": busy_pct,
        "bound": bound,
        "ratio_of_medians": round(ours / tp, 3) if ours and tp else None,
        "pkt_size": o.pkt_size,
        "queues": o.queues,
        "memory_mode": o.memory_mode,
        "trials": trials,
        "seconds": o.seconds,
        "spread": {k: {"min": round(s["min"], 3), "max": round(s["max"], 3)}
                   for k, s in summ.items() if s["min"] is not None},
        "raw_mpps": {k: [round(x, 3) for x in v] for k, v in values.items()},
        # < 100: our poller had time to spare, the rate was set by its counterpart
        "ours_busy_pct": busy_pct.get("ours"),
    }
    if name == "scale-ports":
        rec["ports"] = o.ports
        if "add_port_ms" in o.extra:
            ms = o.extra.pop("add_port_ms")
            rec["add_port_ms"] = {"max": max(ms), "median": sorted(ms)[len(ms) // 2]}
    if errors:
        rec["errors"] = errors
    return rec


def cmd_run(args) -> int:
    names = args.scenarios or STANDARD
    for n in names:
        if n not in SCENARIOS:
            raise SystemExit(f"perf: unknown scenario {n!r}; known: {', '.join(SCENARIOS)}")
    memory_mode = host.memory_mode_for(args.memory_mode)
    _guard(args.force)
    fp = host.fingerprint()
    print(f"perf: {fp['dpdk_version']}, {fp['cpu_model']}, {fp['cpu_count']} CPUs, memory "
          f"{memory_mode}; back-end poller on CPU {BACK}, front-end on CPU {FRONT}", flush=True)
    total = sum(len(args.ports if n == "scale-ports" else [1]) * args.trials
                * sum(1 for v in _available_sides(n).values() if v is not None) for n in names)
    with Progress(total, "perf run", stream=sys.stdout) as progress:
        records = _run_all(args, names, memory_mode, fp, progress)
    _scale_summary(records)
    print()
    print(format_table(records))
    if args.json:
        report.save(args.json, records)
        print(f"\nwritten: {args.json}")
    failed = compare.failed_sides(records)
    if failed:
        print("\nperf run: sides failed (exit 2):\n  " + "\n  ".join(failed), file=sys.stderr)
        return 2
    return 0


def _run_all(args, names, memory_mode, fp, progress) -> list:
    """Every scenario (and port count), each record written to --json as soon as it is
    complete: an interrupted run keeps what it measured."""
    records = []
    for name in names:
        port_counts = args.ports if name == "scale-ports" else [1]
        for n_ports in port_counts:
            o = Options(pkt_size=args.pkt_size, queues=args.queues, seconds=args.seconds,
                        warmup_s=args.warmup, memory_mode=memory_mode, burst=args.burst,
                        ports=n_ports)
            label = f"{name} ({n_ports} ports)" if name == "scale-ports" else name
            progress.log(f"{label}: {SCENARIOS[name]['what']}")
            rec = run_scenario(name, o, args.trials, log=progress.log, step=progress.step)
            rec["host"] = fp
            rec["timestamp"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            records.append(rec)
            if args.json:
                _scale_summary(records)
                report.save(args.json, records)
    return records


def _scale_summary(records):
    scale = {r["ports"]: r for r in records if r["scenario"] == "scale-ports" and r.get("ours_mpps")}
    if 1 in scale:
        for r in scale.values():
            r["vs_one_port"] = round(r["ours_mpps"] / scale[1]["ours_mpps"], 3)


def format_table(records) -> str:
    """Every side: Mpps, busy cycles per packet, bound (self: its poller was >= 95 % busy;
    peer: its counterpart set the rate); then each ratio with its basis."""
    peers = sorted({p for r in records for p in r["peers"]})
    sides = ["ours"] + peers
    short = {"ours": "ours", "testpmd": "tp", "ovs-dpdk": "ovs"}
    head = ["scenario"]
    for side in sides:
        k = short.get(side, side)
        head += [f"{k} Mpps", f"{k} cyc/pkt", f"{k} bound"]
    head += [f"ours/{short.get(p, p)}" for p in peers]
    rows = [head]
    for r in records:
        name = r["scenario"] + (f" x{r['ports']}" if "ports" in r else "")
        row = [name]
        for side in sides:
            mpps = r["ours_mpps"] if side == "ours" else r["peers"].get(side)
            row += [_f(mpps), _f((r.get("cycles_per_packet") or {}).get(side), "{:.0f}"),
                    {"counterpart": "peer"}.get((r.get("bound") or {}).get(side) or "-",
                                                (r.get("bound") or {}).get(side) or "-")]
        for p in peers:
            value = r["ratio"] if p == "testpmd" else r["ratios"].get(p)
            basis = (r.get("ratio_bases") or {}).get(p)
            row.append(_f(value) + (f" ({basis})" if value is not None and basis else ""))
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(*rows)]
    lines = ["  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w)
                       for i, (x, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _f(v, fmt="{:.2f}"):
    return "-" if v is None else fmt.format(v)


# ------------------------------------------------------------------------- NDR / PDR

def ndr(o: Options, loss: float = 0.0, trial_s: float = 2.0, precision: float = 0.02,
        max_iterations: int = 14, ceiling_pps: float = 40e6, step=None) -> dict:
    """RFC 2544-style search: the highest rate our virtio-user generator (front-end CPU) can
    offer to our vhost-user rxonly port (back-end CPU) with a loss ratio <= ``loss``
    (0: NDR, else PDR), by binary search over the generator's paced rate (perf.rfc2544).
    ``step(detail)`` reports each trial (default: a Progress on stdout)."""
    from perf import rfc2544
    tester = rfc2544.Tester("ours", o, trial_s)
    try:
        # at most max_iterations bisection steps; it ends early at the precision
        with Progress(max_iterations, "ndr bisection", stream=sys.stdout) as progress:
            best, trials = rfc2544.bisect(tester.trial, loss, ceiling_pps, precision,
                                          max_iterations, step or progress.step)
    finally:
        tester.close()
    rate = min(best["pps"], best["offered_pps"]) if best else 0.0
    return {"scenario": "ndr" if loss == 0 else "pdr", "loss": loss,
            "rate_mpps": round(rate / 1e6, 3), "trials": trials, "pkt_size": o.pkt_size,
            "memory_mode": o.memory_mode, "trial_seconds": trial_s}


def cmd_ndr(args) -> int:
    _guard(args.force)
    o = Options(pkt_size=args.pkt_size, memory_mode=args.memory_mode
                if args.memory_mode != "auto" else "hugepages")
    r = ndr(o, args.loss, args.seconds, args.precision)
    r["host"] = host.fingerprint()
    print(f"\n{r['scenario'].upper()} (loss <= {args.loss:g}): {r['rate_mpps']:.3f} Mpps "
          f"at {o.pkt_size} bytes")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0


def _guarded(module: str, command: str):
    """The command ``perf.<module>.<command>``, imported when it runs, after the
    busy-poller guard (--force skips it)."""
    def run(args) -> int:
        import importlib
        _guard(args.force)
        return getattr(importlib.import_module(f"perf.{module}"), command)(args)
    return run


def cmd_fingerprint(args) -> int:
    print(host.fingerprint_key())
    return 0


def cmd_list(args) -> int:
    for name, s in SCENARIOS.items():
        peers = [k for k in s if k not in ("ours", *NOT_SIDES)]
        print(f"{name:14} peers: {', '.join(peers):18} {s['what']}")
    return 0


def _host_options(p: argparse.ArgumentParser) -> None:
    """--memory-mode, --json, --force: shared by the commands that start pollers."""
    p.add_argument("--memory-mode", choices=("auto", "hugepages", "no-huge"), default="auto")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--force", action="store_true", help="measure even with busy pollers around")


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m perf`` (every subcommand)."""
    p = argparse.ArgumentParser(prog="python -m perf", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="measure scenarios side by side with their peers")
    r.add_argument("scenarios", nargs="*", help=f"default: {' '.join(STANDARD)}")
    r.add_argument("--seconds", type=float, default=5.0, help="measured seconds per trial")
    r.add_argument("--warmup", type=float, default=1.0)
    r.add_argument("--trials", type=int, default=3)
    r.add_argument("--pkt-size", type=int, default=64)
    r.add_argument("--queues", type=int, default=1)
    r.add_argument("--burst", type=int, default=32)
    r.add_argument("--ports", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 64],
                   help="scale-ports: port counts (default 1,8,64)")
    r.add_argument("--memory-mode", choices=("auto", "hugepages", "no-huge"), default="auto")
    r.add_argument("--json", metavar="FILE")
    r.add_argument("--force", action="store_true", help="measure even with busy pollers around")
    r.set_defaults(func=cmd_run)
    compare.add_arguments(sub.add_parser("compare", help="compare a new run with a baseline "
                                         "(table, JUnit XML, markdown summary)"))
    import importlib
    for name, text in (
            ("ab", "two builds measured interleaved in one run: a verdict per scenario "
                   "(regression, improvement, no-change, inconclusive)"),
            ("bisect", "the first commit between GOOD and BAD that is a regression against "
                       "GOOD (perf ab at each step)"),
            ("calibrate", "false alarms (A/A) and power (injected regressions) of perf ab on "
                          "this host")):
        sp = sub.add_parser(name, help=text)
        importlib.import_module(f"perf.{name}").add_arguments(sp)
        sp.set_defaults(func=_guarded(name, f"cmd_{name}"))
    from perf import latency, rfc2544
    lt = sub.add_parser("latency", help="switch-latency and vhost-latency: p50/p99/p99.9/max "
                        "at 10/50/90 %% of each device's maximum and at 1 Mpps")
    latency.add_arguments(lt)
    lt.add_argument("--force", action="store_true", help="measure even with busy pollers around")
    lt.set_defaults(func=_guarded("latency", "cmd_latency"))
    report.add_arguments(sub.add_parser("report", help="PNG plots of a run's JSON"))
    rf = sub.add_parser("rfc2544", help="NDR, PDR, latency at the NDR and frame loss per "
                        "frame size, ours and testpmd")
    rfc2544.add_arguments(rf)
    rf.add_argument("--force", action="store_true", help="measure even with busy pollers around")
    rf.set_defaults(func=_guarded("rfc2544", "cmd_rfc2544"))
    n = sub.add_parser("ndr", help="zero-loss (or <= --loss) throughput by binary search")
    n.add_argument("--loss", type=float, default=0.0)
    n.add_argument("--seconds", type=float, default=2.0)
    n.add_argument("--precision", type=float, default=0.02)
    n.add_argument("--pkt-size", type=int, default=64)
    _host_options(n)
    n.set_defaults(func=cmd_ndr)
    m = sub.add_parser("measured", help="cost of measured streams (stamping, accounting) and "
                       "latency of our pair at 10/50/90 %% of its maximum")
    m.add_argument("--seconds", type=float, default=3.0)
    m.add_argument("--rounds", type=int, default=3)
    _host_options(m)
    m.set_defaults(func=_guarded("measured", "cmd_measured"))
    nt = sub.add_parser("notify", help="CPU, rate and latency of a receiving PMD polling, "
                        "sleeping (50/300 us) and in interrupt mode, idle to saturated")
    nt.add_argument("--seconds", type=float, default=3.0)
    _host_options(nt)
    nt.set_defaults(func=_guarded("notify", "cmd_notify"))
    cp = sub.add_parser("capture", help="receiving PMD cycles/packet without capture, with a "
                        "capture tap off, and capturing every packet (snaplen 128, full)")
    cp.add_argument("--seconds", type=float, default=3.0)
    cp.add_argument("--rounds", type=int, default=3)
    _host_options(cp)
    cp.set_defaults(func=_guarded("capture", "cmd_capture"))
    sub.add_parser("list", help="the scenarios").set_defaults(func=cmd_list)
    sub.add_parser("fingerprint", help="this host's key for stored baselines (CPU model and "
                   "count, kernel, DPDK)").set_defaults(func=cmd_fingerprint)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        return args.func(args)
    except Refused as e:
        print(f"perf: refused: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("perf: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
