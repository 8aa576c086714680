"""``python -m perf calibrate``: how often ``perf ab`` cries wolf, and how often it catches a
known regression, on this host.

    python -m perf calibrate [--scenario vhost-rx --scenario switch-fwd] [--runs 20]
                             [--effects 0.05,0.02] [--tolerance 0.03] [--budget-s 600]
                             [--seconds 2] [--json FILE] [--markdown FILE]

Per scenario: ``--runs`` A/A runs of ``ab`` (REF against itself; flagged = a regression or
improvement verdict: the false-alarm rate), then for each effect E ``--runs`` A/A' runs
against REF built with ``inject_busy_cycles`` = E x the median busy cycles per packet of
the A/A trials (caught = a regression verdict: the power at E). Every run's verdict, CI and
time are in the JSON; the markdown table is the one docs/benchmarks.md shows.
"""

from __future__ import annotations

import statistics
import time

from perf import ab, builds, host, report
from perf.setups import Options


def calibrate(ref: str, scenario: str, o: Options, runs: int, effects: list[float],
              tolerance: float, budget_s: float, log=print) -> dict:
    base = builds.build(builds.parse_side(ref), log=log)
    rec = {"scenario": scenario, "ref": ref, "sha": base.sha, "tolerance": tolerance,
           "budget_s": budget_s, "seconds": o.seconds, "aa": [], "effects": {}}

    def one(cand: builds.Build, label: str) -> dict:
        r = ab.run_scenario(scenario, base, cand, o, tolerance, budget_s, log=lambda m: None)
        row = {k: r[k] for k in ("verdict", "ratio", "ci_low", "ci_high", "mde", "trials",
                                 "screened", "seconds")}
        row["base_cycles"] = [p["base"]["cycles_per_packet"] for p in r["pairs"]]
        log(f"  {scenario} {label}: {r['verdict']}, ratio {r['ratio']}, CI "
            f"[{r['ci_low']}, {r['ci_high']}], {r['trials']} pairs "
            f"(+{r['screened']} screened), {r['seconds']:.0f} s")
        return row

    for i in range(runs):
        rec["aa"].append(one(base, f"A/A {i + 1}/{runs}"))
    cycles = [c for row in rec["aa"] for c in row["base_cycles"]]
    rec["aa_median_cycles_per_packet"] = statistics.median(cycles) if cycles else None
    for effect in effects:
        if not cycles:
            break
        inject = max(1, round(effect * rec["aa_median_cycles_per_packet"]))
        cand = builds.build(builds.parse_side(f"{ref}:inject_busy_cycles={inject}"), log=log)
        rows = [one(cand, f"A/A' +{effect:.0%} ({inject} cycles) {i + 1}/{runs}")
                for i in range(runs)]
        rec["effects"][f"{effect:g}"] = {"inject_busy_cycles": inject, "runs": rows}
    return rec


def summary(rec: dict) -> dict:
    def count(rows, verdicts):
        return sum(r["verdict"] in verdicts for r in rows)

    def seconds(rows):
        return statistics.median(r["seconds"] for r in rows) if rows else None
    aa = rec["aa"]
    out = {"scenario": rec["scenario"], "runs": len(aa),
           "false_alarms": count(aa, ("regression", "improvement")),
           "aa_no_change": count(aa, ("no-change",)), "aa_seconds": seconds(aa),
           "aa_median_cycles_per_packet": rec.get("aa_median_cycles_per_packet")}
    for effect, e in rec["effects"].items():
        out[f"caught_{effect}"] = count(e["runs"], ("regression",))
        out[f"seconds_{effect}"] = seconds(e["runs"])
        out[f"inject_{effect}"] = e["inject_busy_cycles"]
    return out


def markdown(records: list[dict]) -> str:
    lines = ["| scenario | A/A: flagged / runs | A/A: no-change | effect | injected cycles | "
             "caught / runs | median s per ab |", "|---|---:|---:|---:|---:|---:|---:|"]
    for rec in records:
        s = summary(rec)
        lines.append(f"| {s['scenario']} | {s['false_alarms']} / {s['runs']} | "
                     f"{s['aa_no_change']} | A/A | - | - | {s['aa_seconds']:.0f} |")
        for effect, e in rec["effects"].items():
            lines.append(f"| {s['scenario']} | | | +{float(effect):.0%} | "
                         f"{e['inject_busy_cycles']} | {s[f'caught_{effect}']} / "
                         f"{len(e['runs'])} | {s[f'seconds_{effect}']:.0f} |")
    return "\n".join(lines) + "\n"


def cmd_calibrate(args) -> int:
    o = Options(seconds=args.seconds, warmup_s=args.warmup,
                memory_mode=host.memory_mode_for(args.memory_mode), pkt_size=64)
    effects = [float(x) for x in args.effects.split(",") if x.strip()]
    records = []
    started = time.monotonic()
    try:
        for scenario in args.scenario or ["vhost-rx", "switch-fwd"]:
            print(f"perf calibrate: {scenario}", flush=True)
            records.append(calibrate(args.ref, scenario, o, args.runs, effects, args.tolerance,
                                     args.budget_s, log=lambda m: print(m, flush=True)))
            report.save(args.json, records)
    except (builds.BuildError, ab.SideFailed) as e:
        print(f"perf calibrate: {e}", flush=True)
        return 2
    table = markdown(records)
    print(f"\nperf calibrate: {time.monotonic() - started:.0f} s\n\n{table}")
    report.save(args.markdown, table)
    return 0


def add_arguments(p) -> None:
    p.add_argument("--ref", default="HEAD", help="the build under study (default HEAD)")
    p.add_argument("--scenario", action="append", choices=ab.AB_SCENARIOS)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--effects", default="0.05,0.02",
                   help="injected regressions, fractions of the A/A cycles per packet")
    p.add_argument("--tolerance", type=float, default=0.03)
    p.add_argument("--budget-s", type=float, default=600.0)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--memory-mode", choices=("auto", "hugepages", "no-huge"), default="auto")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--markdown", metavar="FILE")
    p.add_argument("--force", action="store_true", help="measure even with busy pollers around")
