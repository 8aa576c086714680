"""Comparing a benchmark run with a baseline, and the outputs a CI gates on: the table on
the terminal, JUnit XML (one testcase per scenario and metric: a regression beyond the
tolerance is a failure, an improvement a property) and a markdown summary (for a CI job
summary; appended to $GITHUB_STEP_SUMMARY when that is set).

    python -m perf compare BASELINE.json NEW.json [--tolerance 0.05] [--absolute]
                           [--junit FILE] [--markdown FILE] [--allow-missing]

Exit status: 0 no regression, 1 a regression (or a baseline scenario missing from the new
run), 2 a side or scenario of the new run failed, or the baseline file is missing (unless
``--allow-missing``). A stored baseline compares runs made minutes or days apart: the
verdict holds only when the host's noise is below the tolerance, and the summary says how
large the noise within the new run was. ``python -m perf ab`` compares two builds in one
run and does not depend on that.

Metrics per scenario: the throughput ratio to dpdk-testpmd measured in the same run (or
our absolute Mpps with ``--absolute`` when both runs come from the same host), and our
busy cycles per packet when both records have it (lower is better).
"""

from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from perf import host


@dataclass
class Row:
    scenario: str                 # "vhost-rx 64B q1 p1"
    metric: str                   # "ratio", "ours_mpps", "cycles_per_packet.ours"
    baseline: float | None
    new: float | None
    change: float | None          # > 0: better (for cycles: fewer)
    verdict: str                  # ok, better, REGRESSION, new, FAILED, MISSING

    @property
    def failed(self) -> bool:
        return self.verdict in ("REGRESSION", "MISSING", "FAILED")


def _key(r: dict) -> tuple:
    return (r["scenario"], r.get("pkt_size", 64), r.get("queues", 1), r.get("ports", 1))


def _name(key: tuple) -> str:
    return f"{key[0]} {key[1]}B q{key[2]} p{key[3]}"


def _judge(bv, nv, tolerance: float, lower_is_better: bool = False) -> tuple:
    if bv is None or nv is None:
        return None, "FAILED"
    change = (nv - bv) / bv if bv else 0.0
    if lower_is_better:
        change = -change
    if change < -tolerance:
        return change, "REGRESSION"
    if change > tolerance:
        return change, "better"
    return change, "ok"


def compare(base: list, new: list, tolerance: float, absolute: bool = False) -> tuple[list[Row], bool]:
    """Rows per scenario and metric, and whether anything regressed (a baseline scenario
    missing from ``new`` counts as a regression; scenarios only in ``new`` are "new")."""
    by_key = {_key(r): r for r in base}
    rows: list[Row] = []
    for r in new:
        name = _name(_key(r))
        b = by_key.get(_key(r))
        if b is None:
            rows.append(Row(name, "ratio", None, r.get("ratio"), None, "new"))
            continue
        same = host.same_host(b.get("host", {}), r.get("host", {}))
        field = "ours_mpps" if (absolute and same) else "ratio"
        change, verdict = _judge(b.get(field), r.get(field), tolerance)
        rows.append(Row(name, field, b.get(field), r.get(field), change, verdict))
        bc = (b.get("cycles_per_packet") or {}).get("ours")
        nc = (r.get("cycles_per_packet") or {}).get("ours")
        if bc is not None and nc is not None and (same or not absolute):
            change, verdict = _judge(bc, nc, tolerance, lower_is_better=True)
            rows.append(Row(name, "cycles_per_packet.ours", bc, nc, change, verdict))
    new_keys = {_key(r) for r in new}
    for k, b in by_key.items():
        if k not in new_keys:
            rows.append(Row(_name(k), "ratio", b.get("ratio"), None, None, "MISSING"))
    return rows, any(r.failed for r in rows)


def failed_sides(records: list) -> list[str]:
    """'scenario [side]: why' for every side of the new run that failed or gave nothing."""
    out = [f"{r['scenario']} [{side}]: {why}" for r in records
           for side, why in (r.get("errors") or {}).items()
           if not why.startswith("unsupported:")]     # a configuration a peer cannot run
    out += [f"{r['scenario']} [ours]: no figure" for r in records
            if r.get("ours_mpps") is None and "ours" not in (r.get("errors") or {})]
    return out


def run_noise(records: list) -> float | None:
    """The host's noise within a run: the largest spread (max - min) / median of our
    trials over the scenarios that had at least two."""
    spreads = []
    for r in records:
        xs = sorted((r.get("raw_mpps") or {}).get("ours") or [])
        if len(xs) >= 2 and xs[len(xs) // 2] > 0:
            spreads.append((xs[-1] - xs[0]) / xs[len(xs) // 2])
    return max(spreads) if spreads else None


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _pct(change) -> str:
    return "-" if change is None else f"{change * 100:+.1f}%"


def table(rows: list[Row]) -> str:
    width = max([len(r.scenario) for r in rows] + [10])
    mwidth = max([len(r.metric) for r in rows] + [6])
    lines = [f"{'scenario':<{width}}  {'metric':<{mwidth}}  {'baseline':>9}  {'new':>9}  "
             f"{'change':>8}  verdict"]
    for r in rows:
        lines.append(f"{r.scenario:<{width}}  {r.metric:<{mwidth}}  {_f(r.baseline):>9}  "
                     f"{_f(r.new):>9}  {_pct(r.change):>8}  {r.verdict}")
    return "\n".join(lines)


def junit_xml(rows: list[Row], tolerance: float) -> str:
    """One testcase per (scenario, metric): a regression or a missing scenario is a
    failure, a metric without data is skipped, an improvement carries a property."""
    suite = ET.Element("testsuite", name="perf compare", tests=str(len(rows)),
                       failures=str(sum(r.failed for r in rows)),
                       skipped=str(sum(r.verdict == "new" for r in rows)))
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="tolerance", value=f"{tolerance:g}")
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname=r.scenario, name=r.metric)
        detail = f"baseline {_f(r.baseline)}, new {_f(r.new)}, change {_pct(r.change)}"
        if r.failed:
            what = {"MISSING": "scenario missing from the new run",
                    "FAILED": "no figure: the side failed"}.get(
                        r.verdict, f"regression beyond {tolerance * 100:.0f}%")
            ET.SubElement(case, "failure", message=what, type=r.verdict).text = detail
        elif r.verdict == "new":
            ET.SubElement(case, "skipped", message=r.verdict).text = detail
        else:
            cprops = ET.SubElement(case, "properties")
            ET.SubElement(cprops, "property", name="change", value=_pct(r.change))
            if r.verdict == "better":
                ET.SubElement(cprops, "property", name="improvement", value=_pct(r.change))
        ET.SubElement(case, "system-out").text = detail
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def markdown(rows: list[Row], tolerance: float, noise: float | None = None) -> str:
    failed = [r for r in rows if r.failed]
    head = (f"### perf compare: {len(failed)} regression(s) or failure(s) beyond "
            f"{tolerance * 100:.0f}%" if failed
            else f"### perf compare: no regression beyond {tolerance * 100:.0f}%")
    caveat = ("stored baseline: verdicts hold only when host noise is below the tolerance "
              f"({tolerance * 100:.0f}%); the noise within this run (largest trial spread) "
              + (f"was {noise * 100:.1f}%" if noise is not None else "was not measured "
                 "(fewer than 2 trials)")
              + ". `python -m perf ab` compares two builds in one run instead.")
    lines = [head, "", caveat, "", "| scenario | metric | baseline | new | change | verdict |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        mark = {"REGRESSION": "❌ ", "MISSING": "❌ ", "FAILED": "❌ ",
                "better": "✅ "}.get(r.verdict, "")
        lines.append(f"| {r.scenario} | {r.metric} | {_f(r.baseline)} | {_f(r.new)} | "
                     f"{_pct(r.change)} | {mark}{r.verdict} |")
    return "\n".join(lines) + "\n"


def cmd_compare(args) -> int:
    with open(args.new) as f:
        new = json.load(f)
    if not os.path.exists(args.baseline):
        if args.allow_missing:
            print(f"perf compare: no baseline {args.baseline}; nothing compared (--allow-missing)")
            return 0
        print(f"perf compare: baseline {args.baseline} does not exist; store one (copy a run "
              "there) or pass --allow-missing", file=sys.stderr)
        return 2
    with open(args.baseline) as f:
        base = json.load(f)
    rows, regressed = compare(base, new, args.tolerance, args.absolute)
    print(table(rows))
    if args.junit:
        with open(args.junit, "w") as f:
            f.write(junit_xml(rows, args.tolerance))
    summary = markdown(rows, args.tolerance, run_noise(new))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(summary)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as f:
            f.write(summary)
    failed = failed_sides(new)
    if failed:
        print("\nperf compare: sides of the new run failed:\n  " + "\n  ".join(failed))
        return 2
    if regressed:
        print(f"\nregression beyond {args.tolerance * 100:.0f}%, or scenarios missing")
        return 1
    return 0


def add_arguments(c) -> None:
    c.add_argument("baseline")
    c.add_argument("new")
    c.add_argument("--tolerance", type=float, default=0.05)
    c.add_argument("--absolute", action="store_true",
                   help="compare absolute Mpps when the host fingerprints match")
    c.add_argument("--junit", metavar="FILE", help="also write JUnit XML (one testcase per "
                   "scenario and metric)")
    c.add_argument("--markdown", metavar="FILE", help="also write a markdown summary")
    c.add_argument("--allow-missing", action="store_true",
                   help="exit 0 when the baseline file does not exist (first run on a host)")
    c.set_defaults(func=cmd_compare)
