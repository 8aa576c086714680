"""``python -m perf ab BASE CANDIDATE``: two builds of the library measured in one
invocation on this host, interleaved, and one verdict per scenario (dpdkvirtio.decide).

    python -m perf ab BASE CANDIDATE [--scenario vhost-rx ...] [--tolerance 0.03]
                      [--budget-s 600] [--seconds 2] [--json F] [--junit F] [--markdown F]
                      [--plot F.png]

BASE and CANDIDATE are ``REF[:OPTION=VALUE,...]`` (perf.builds): ``HEAD~3``, ``v0.1``, ``.``
(the working tree), ``.:inject_busy_cycles=20``. Each trial is a fresh pair of processes:
our measured agent, importing the side's build, and the same counterpart (this
checkout's feeder or drain, on the other CPU) for both sides. Exit status: 0 no
regression, 1 regression, 2 a build, a side or the harness failed, 3 inconclusive within
the budget.
"""

from __future__ import annotations

import datetime
import os
import statistics
import sys
import time
import xml.etree.ElementTree as ET

from dpdkvirtio import decide
from dpdkvirtio.hostinfo import steal_ms
from perf import builds, capacity, host, report
from perf.scenarios import SCENARIOS, Unsupported, vhost_rx_interleaved, vhost_tx_interleaved
from perf.setups import BACK, FRONT, Options

# scenarios that can run both builds in one trial (scenarios.Interleaved), the length of
# one side's window there, and the time a side is left to settle after switching
INTERLEAVED = {"vhost-rx": vhost_rx_interleaved, "vhost-tx": vhost_tx_interleaved}
INTERLEAVE_WINDOW_S = 0.2
INTERLEAVE_SETTLE_S = 0.03

# scenarios whose measured side is an agent of ours (it can import another build)
AB_SCENARIOS = ("vhost-rx", "vhost-tx", "vhost-tx-vary", "virtio-tx", "virtio-rx", "switch-fwd")


class SideFailed(Exception):
    """A side could not be measured (its message says which and why)."""


def _steal_ms() -> dict[int, float]:
    return {cpu: steal_ms([cpu]) for cpu in sorted({FRONT, BACK})}


def _measure(side: str, cycles, counterpart, read, seconds: float, screen_share: float) -> dict:
    """One window of ``seconds`` on a running side: busy cycles per packet (the stalls'
    busy cycles taken out, and raw), busy share, Mpps and every poller's and the host's
    stalls (the steal of the CPU that lost most: each poller has a CPU of its own).
    ``read``: the packet count where it is measured; None: the measured poller's own."""
    c0, k0, s0 = cycles(), counterpart() if counterpart else 0, _steal_ms()
    n0, t0 = read() if read else c0["packets"], time.monotonic()
    time.sleep(seconds)
    c1, k1, s1 = cycles(), counterpart() if counterpart else 0, _steal_ms()
    n1, t1 = read() if read else c1["packets"], time.monotonic()
    window_ns = (t1 - t0) * 1e9
    raw = capacity.window(c0, c1, t1 - t0)
    if raw["cycles_per_packet"] is None:
        raise SideFailed(f"{side}: the measured poller moved no packets in {t1 - t0:.2f} s")
    # the stalls' cycles that fell in busy rounds were the kernel's or the hypervisor's,
    # not the build's: taken out (a build that does not count them is measured raw)
    counted = c0.get("busy_stall") is not None and c1.get("busy_stall") is not None
    taken = c1["busy_stall"] - c0["busy_stall"] if counted else 0
    w = capacity.window(c0, {**c1, "busy": c1["busy"] - taken}, t1 - t0)
    stalls = {"dut_ns": c1["stalled_ns"] - c0["stalled_ns"],
              "counterpart_ns": k1 - k0 if counterpart else None,
              "steal_ns": max(s1[cpu] - s0[cpu] for cpu in s0) * 1e6}
    worst = max(v for v in stalls.values() if v is not None)
    return {"side": side, "cycles_per_packet": round(w["cycles_per_packet"], 2),
            "raw_cycles_per_packet": round(raw["cycles_per_packet"], 2),
            "stalls_subtracted": counted,
            "busy_pct": round(raw["busy_pct"], 1) if raw["busy_pct"] is not None else None,
            "mpps": round((n1 - n0) / (t1 - t0) / 1e6, 3), "window_ns": round(window_ns),
            "stalls": stalls, "screened": decide.screened_out(worst, window_ns, screen_share)}


def _metric(got: dict) -> str:
    # one metric for both: a build that does not count stalls in busy rounds (an earlier
    # commit) is compared raw against raw
    return ("cycles_per_packet" if all(got[s]["stalls_subtracted"] for s in got)
            else "raw_cycles_per_packet")


def trial(side: str, o: Options, screen_share: float = decide.STALL_SCREEN_SHARE) -> dict:
    """One measurement of our side of ``side``'s scenario setup, in processes of its own
    (see _measure)."""
    setup = SCENARIOS[o.extra["scenario"]]["ours"]
    for k in ("cycles", "counterpart_stalls"):
        o.extra.pop(k, None)
    try:
        with setup(o) as read:
            cycles = o.extra.pop("cycles")
            counterpart = o.extra.pop("counterpart_stalls", None)
            time.sleep(o.warmup_s)
            return _measure(side, cycles, counterpart, read, o.seconds, screen_share)
    except Unsupported as e:
        raise SideFailed(f"{side}: unsupported: {e}") from None
    except (RuntimeError, OSError, TimeoutError, KeyError) as e:
        raise SideFailed(f"{side}: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None


def interleaved_trial(name: str, packages: dict, o: Options, screen_share: float,
                      window_s: float = INTERLEAVE_WINDOW_S) -> dict:
    """One trial with both builds running at once (scenarios.Interleaved): windows of
    ``window_s`` alternate A B B A ... for ``o.seconds`` per side; each adjacent (A, B)
    window pair gives a ratio, and the trial's ratio is their median. Window pairs with a
    stall over ``screen_share`` are left out; the trial is screened when none is left."""
    n_pairs = max(2, round(o.seconds / window_s))      # (A B, B A at least: drift cancels)
    windows: list[dict] = []
    try:
        with INTERLEAVED[name](o, packages) as il:
            for side in ("base", "candidate"):              # warm both
                il.activate(side)
                time.sleep(o.warmup_s / 2)
            for k in range(n_pairs):
                for side in decide.order(k):
                    il.activate(side)
                    time.sleep(INTERLEAVE_SETTLE_S)
                    windows.append(_measure(side, lambda s=side: il.reading(s),
                                            il.counterpart_stalled_ns, None,
                                            window_s, screen_share))
    except (RuntimeError, OSError, TimeoutError, KeyError) as e:
        raise SideFailed(f"interleaved: {type(e).__name__}: {str(e).splitlines()[0][:300]}") \
            from None
    sub = []
    for k in range(n_pairs):
        got = {w["side"]: w for w in windows[2 * k: 2 * k + 2]}
        if not (got["base"]["screened"] or got["candidate"]["screened"]):
            key = _metric(got)
            sub.append(decide.paired_ratio(got["base"][key], got["candidate"][key]))

    def side_summary(side: str) -> dict:
        ws = [w for w in windows if w["side"] == side]
        return {"side": side,
                **{k: round(statistics.median(w[k] for w in ws), 2)
                   for k in ("cycles_per_packet", "raw_cycles_per_packet", "mpps")},
                "stalls_subtracted": all(w["stalls_subtracted"] for w in ws),
                "stalls": {k: sum(w["stalls"][k] or 0 for w in ws)
                           for k in ("dut_ns", "counterpart_ns", "steal_ns")},
                "screened": not sub}
    return {"base": side_summary("base"), "candidate": side_summary("candidate"),
            "interleaved": {"window_s": window_s, "window_pairs": n_pairs,
                            "kept": len(sub),
                            "ratio": round(statistics.median(sub), 4) if sub else None,
                            "windows": windows}}


def run_scenario(name: str, base: builds.Build, cand: builds.Build, o: Options,
                 tolerance: float, budget_s: float, log=print,
                 screen_share: float = decide.STALL_SCREEN_SHARE,
                 interleave: bool = True) -> dict:
    """Pairs A B, B A, ... until decide.should_stop; every trial kept in the record."""
    packages = {"base": base.package_dir, "candidate": cand.package_dir}
    pairs: list[dict] = []
    screened: list[dict] = []
    ratios: list[float] = []
    est = None
    started = time.monotonic()
    pair_s = 0.0
    while not decide.should_stop(est, tolerance, len(ratios), time.monotonic() - started,
                                 budget_s, pair_s):
        t_pair = time.monotonic()
        got = {}
        if interleave and name in INTERLEAVED:
            got = interleaved_trial(name, {s: None if p is None else str(p)
                                           for s, p in packages.items()}, o, screen_share)
            pair = {"order": ["interleaved"], **got}
        else:
            for side in decide.order(len(pairs) + len(screened)):
                so = Options(**{**o.__dict__, "extra": {"scenario": name},
                                "dut_package": None if packages[side] is None
                                else str(packages[side])})
                got[side] = trial(side, so, screen_share)
            pair = {"order": list(got), **got}
        if got["base"]["screened"] or got["candidate"]["screened"]:
            screened.append(pair)
            log(f"  {name}: pair screened out (stalls {_stall_text(got)}; base "
                f"{got['base']['cycles_per_packet']:.1f}, candidate "
                f"{got['candidate']['cycles_per_packet']:.1f} cycles/packet); measuring it again")
        else:
            key = _metric({s: got[s] for s in ("base", "candidate")})
            r = (got["interleaved"]["ratio"] if "interleaved" in got
                 else decide.paired_ratio(got["base"][key], got["candidate"][key]))
            pair["ratio"], pair["metric"] = round(r, 4), key
            pairs.append(pair)
            ratios.append(r)
            est = decide.estimate(ratios)
            il = got.get("interleaved")
            log(f"  {name} pair {len(pairs)}"
                + (f" ({il['kept']}/{il['window_pairs']} window pairs)" if il else "")
                + f": base {got['base'][key]:.1f}, "
                f"candidate {got['candidate'][key]:.1f} cycles/packet, ratio "
                f"{r:.3f}" + (f"; CI [{est.ci_low:.3f}, {est.ci_high:.3f}] -> "
                              f"{decide.verdict(est, tolerance)}" if est else ""))
        pair_s = max(pair_s, time.monotonic() - t_pair)
    v = decide.verdict(est, tolerance)
    metrics = {p["metric"] for p in pairs}
    return {"scenario": name, "verdict": v,
            "metric": metrics.pop() if len(metrics) == 1 else "cycles_per_packet",
            "ratio": round(est.ratio, 4) if est else None,
            "ci_low": round(est.ci_low, 4) if est else None,
            "ci_high": round(est.ci_high, 4) if est else None,
            "mde": round(decide.mde(est, tolerance), 4) if est else None,
            "tolerance": tolerance, "trials": len(pairs), "screened": len(screened),
            "seconds": round(time.monotonic() - started, 1),
            "base": base.describe(), "candidate": cand.describe(),
            "pairs": pairs, "screened_pairs": screened}


def _stall_text(got: dict) -> str:
    return ", ".join(f"{side} dut {got[side]['stalls']['dut_ns'] / 1e6:.2f} ms, steal "
                     f"{got[side]['stalls']['steal_ns'] / 1e6:.0f} ms"
                     for side in ("base", "candidate"))


def markdown(records: list[dict]) -> str:
    worst = _overall(records)
    lines = [f"### perf ab: {worst}", "",
             "| scenario | verdict | cost ratio (cand/base) | 95% CI | MDE | pairs | screened |",
             "|---|---|---:|---|---:|---:|---:|"]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['scenario']} | ❌ failed: {r['error']} | - | - | - | - | - |")
            continue
        mark = {"regression": "❌ ", "improvement": "✅ ", "inconclusive": "❔ "}.get(r["verdict"], "")
        ci = f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r["ci_low"] is not None else "-"
        lines.append(f"| {r['scenario']} | {mark}{r['verdict']} | {_f(r['ratio'])} | {ci} | "
                     f"{_pct(r['mde'])} | {r['trials']} | {r['screened']} |")
    if records and "base" in records[0]:
        b, c = records[0]["base"], records[0]["candidate"]
        lines += ["", f"base `{b['spec']}` ({b['sha'][:12]}), candidate `{c['spec']}` "
                  f"({c['sha'][:12]}); tolerance ±{records[0]['tolerance'] * 100:g} %; "
                  "metric: busy cycles per packet of the measured poller"]
    return "\n".join(lines) + "\n"


def junit_xml(records: list[dict]) -> str:
    suite = ET.Element("testsuite", name="perf ab", tests=str(len(records)),
                       failures=str(sum(r.get("verdict") in ("regression", "inconclusive")
                                        for r in records)),
                       errors=str(sum("error" in r for r in records)))
    for r in records:
        case = ET.SubElement(suite, "testcase", classname="perf ab", name=r["scenario"])
        if "error" in r:
            ET.SubElement(case, "error", message=r["error"], type="failed")
            continue
        detail = (f"ratio {_f(r['ratio'])}, CI [{_f(r['ci_low'])}, {_f(r['ci_high'])}], "
                  f"MDE {_pct(r['mde'])}, {r['trials']} pairs, {r['screened']} screened")
        if r["verdict"] in ("regression", "inconclusive"):
            ET.SubElement(case, "failure", message=r["verdict"], type=r["verdict"]).text = detail
        props = ET.SubElement(case, "properties")
        for k in ("verdict", "ratio", "ci_low", "ci_high", "mde", "trials", "screened"):
            ET.SubElement(props, "property", name=k, value=str(r[k]))
        ET.SubElement(case, "system-out").text = detail
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def plot(records: list[dict], path: str) -> None:
    """Each scenario's paired ratios (dots) with the median and its CI (bar), and the
    tolerance band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = [r for r in records if "error" not in r]
    fig, ax = plt.subplots(figsize=(2 + 1.6 * max(1, len(ok)), 4))
    for i, r in enumerate(ok):
        ys = [p["ratio"] for p in r["pairs"]]
        ax.scatter([i] * len(ys), ys, s=12, alpha=0.6)
        if r["ratio"] is not None:
            ax.errorbar([i + 0.15], [r["ratio"]], yerr=[[r["ratio"] - r["ci_low"]],
                        [r["ci_high"] - r["ratio"]]], fmt="o", capsize=4, color="black")
        tol = r["tolerance"]
        ax.axhspan(1 - tol, 1 + tol, xmin=0, xmax=1, alpha=0.08, color="green")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(ok)), [f"{r['scenario']}\n{r['verdict']}" for r in ok])
    ax.set_ylabel("candidate / base busy cycles per packet")
    ax.set_title("perf ab: paired ratios, median and 95 % CI")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _overall(records: list[dict]) -> str:
    if any("error" in r for r in records):
        return "failed"
    vs = {r["verdict"] for r in records}
    for v in ("regression", "inconclusive", "improvement"):
        if v in vs:
            return v
    return "no-change"


def exit_status(records: list[dict]) -> int:
    overall = _overall(records)
    return decide.EXIT_FAILED if overall == "failed" else decide.EXIT_STATUS[overall]


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _pct(v) -> str:
    return "-" if v is None else f"{v * 100:.1f} %"


def cmd_ab(args) -> int:
    args.scenario = args.scenario or ["vhost-rx", "switch-fwd"]
    for n in args.scenario:
        if n not in AB_SCENARIOS:
            print(f"perf ab: scenario {n!r} cannot run another build; choose from "
                  f"{', '.join(AB_SCENARIOS)}", file=sys.stderr)
            return decide.EXIT_FAILED
    if not 0 < args.screen_share <= 1:
        print(f"perf ab: --screen-share must be in (0, 1], got {args.screen_share:g}",
              file=sys.stderr)
        return decide.EXIT_FAILED
    try:
        sides = [builds.parse_side(args.base), builds.parse_side(args.candidate)]
        base, cand = (builds.build(s) for s in sides)
    except builds.BuildError as e:
        print(f"perf ab: {e}", file=sys.stderr)
        return decide.EXIT_FAILED
    memory_mode = host.memory_mode_for(args.memory_mode)
    print(f"perf ab: base {base.side.spec} ({base.sha[:12]}), candidate {cand.side.spec} "
          f"({cand.sha[:12]}); memory {memory_mode}; tolerance ±{args.tolerance * 100:g} %, "
          f"budget {args.budget_s:g} s per scenario; stall screen {args.screen_share:.0%}",
          flush=True)
    o = Options(seconds=args.seconds, warmup_s=args.warmup, memory_mode=memory_mode,
                pkt_size=args.pkt_size)
    fp = host.fingerprint()
    records = []
    for name in args.scenario:
        try:
            rec = run_scenario(name, base, cand, o, args.tolerance, args.budget_s,
                               log=lambda m: print(m, flush=True),
                               screen_share=args.screen_share,
                               interleave=not args.separate)
        except SideFailed as e:
            rec = {"scenario": name, "error": str(e), "base": base.describe(),
                   "candidate": cand.describe(), "tolerance": args.tolerance}
        rec["host"] = fp
        rec["timestamp"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        records.append(rec)
        _write(args, records)
    summary = markdown(records)
    print()
    print(summary)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as f:
            f.write(summary)
    return exit_status(records)


def _write(args, records) -> None:
    """Every output, rewritten after each scenario: an interrupted run keeps what it
    measured."""
    report.save(args.json, records)
    report.save(args.junit, junit_xml(records))
    report.save(args.markdown, markdown(records))
    if args.plot:
        plot(records, args.plot)


def add_arguments(p) -> None:
    p.add_argument("base", help="REF[:OPTION=VALUE,...], e.g. HEAD~1 or .")
    p.add_argument("candidate", help="REF[:OPTION=VALUE,...], e.g. . or .:inject_busy_cycles=20")
    p.add_argument("--scenario", action="append", choices=AB_SCENARIOS,
                   help="repeatable; default vhost-rx and switch-fwd")
    p.add_argument("--tolerance", type=float, default=0.03,
                   help="the no-change band, a fraction (default 0.03)")
    p.add_argument("--budget-s", type=float, default=600.0,
                   help="time per scenario to reach a verdict (default 600)")
    p.add_argument("--screen-share", type=float, default=decide.STALL_SCREEN_SHARE,
                   help="measure a pair again when a poller or the host lost more than this "
                        f"share of the window to stalls (default {decide.STALL_SCREEN_SHARE:g}"
                        "; 1 keeps every pair)")
    p.add_argument("--seconds", type=float, default=2.0, help="measured seconds per trial")
    p.add_argument("--separate", action="store_true",
                   help="measure each side in processes of its own even where both can run "
                        f"in one trial, interleaved ({', '.join(INTERLEAVED)})")
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--pkt-size", type=int, default=64)
    p.add_argument("--memory-mode", choices=("auto", "hugepages", "no-huge"), default="auto")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--junit", metavar="FILE")
    p.add_argument("--markdown", metavar="FILE")
    p.add_argument("--plot", metavar="PNG")
    p.add_argument("--force", action="store_true", help="measure even with busy pollers around")
