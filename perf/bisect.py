"""``python -m perf bisect GOOD BAD --scenario S``: the first commit between GOOD and BAD
whose build is a regression against GOOD, found like ``git bisect run`` with ``perf ab`` as
the test.

    python -m perf bisect GOOD BAD --scenario vhost-rx [--tolerance 0.03] [--budget-s 300]
                          [--seconds 2] [--json FILE]

The commits are those on the ancestry path from GOOD to BAD (``git rev-list
--ancestry-path``), oldest first. Each midpoint is built and measured against GOOD: a
regression makes it bad, no-change (the interval inside the tolerance band) good; when
that is inconclusive, the bad end is measured against the midpoint, and a regression
there makes it good. A midpoint that is neither stops the search with the range still
open (exit 3). When the search ends at BAD itself, BAD is measured against GOOD: unless
that is a regression there is nothing to find (exit 3). Exit status: 0 the culprit
found, 2 a build, a side or the harness failed, 3 undecided.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dpdkvirtio import decide
from perf import ab, builds, host
from perf.setups import Options


class Undecided(Exception):
    """The verdicts along the way do not name one commit."""


def commits_between(good: str, bad: str, repo=builds.REPO) -> list[str]:
    """SHAs after GOOD up to and including BAD on the ancestry path, oldest first. Raises
    BuildError when GOOD is not an ancestor of BAD."""
    g = builds.resolve(builds.parse_side(good), repo)
    b = builds.resolve(builds.parse_side(bad), repo)
    if not builds.is_ancestor(g, b, repo):
        raise builds.BuildError(f"{good} ({g[:12]}) is not an ancestor of {bad} ({b[:12]})")
    listed = builds.git("rev-list", "--reverse", "--ancestry-path", f"{g}..{b}", repo=repo)
    return listed.split()


def bisect(good: str, bad: str, scenario: str, o: Options, tolerance: float, budget_s: float,
           options: tuple[str, ...] = (), repo=builds.REPO, log=print) -> dict:
    """The search; returns {"culprit": sha, "subject", "steps": [...]} or raises Undecided
    (its args[0] is that record without a culprit)."""
    def side(ref: str) -> builds.Build:
        spec = ref + (":" + ",".join(options) if options else "")
        return builds.build(builds.parse_side(spec), repo, log=log)

    def measure(base: builds.Build, cand: builds.Build, why: str) -> str:
        r = ab.run_scenario(scenario, base, cand, o, tolerance, budget_s, log=lambda m: None)
        steps.append({"base": base.sha, "candidate": cand.sha, "why": why,
                      **{k: r[k] for k in ("verdict", "ratio", "ci_low", "ci_high", "trials",
                                           "screened", "seconds")}})
        ci = (f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r["ci_low"] is not None
              else "[-]")
        log(f"perf bisect: {cand.sha[:12]} against {base.sha[:12]} ({why}): {r['verdict']}, "
            f"ratio {r['ratio']}, CI {ci}, {r['trials']} pairs, {r['seconds']:.0f} s")
        return r["verdict"]

    commits = commits_between(good, bad, repo)
    steps: list[dict] = []
    record = {"good": good, "bad": bad, "scenario": scenario, "commits": commits,
              "steps": steps, "tolerance": tolerance}
    if not commits:
        raise builds.BuildError(f"no commits between {good} and {bad}")
    base = side(good)
    lo, hi = -1, len(commits) - 1              # commits[lo] good (-1: GOOD), commits[hi] bad
    hi_known_bad = False                       # BAD itself is measured only if it comes to it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        m = side(commits[mid])
        log(f"perf bisect: {hi - lo - 1} commit(s) left to test; measuring {commits[mid][:12]}")
        v = measure(base, m, "midpoint against GOOD")
        if v == "regression":
            hi, hi_known_bad = mid, True
        elif v == "no-change" or measure(m, side(commits[hi]),
                                         "the bad end against the midpoint") == "regression":
            lo = mid
        else:
            raise Undecided(record | {"why": f"{commits[mid][:12]} is neither a regression "
                                      "against GOOD nor faster than the bad end",
                                      "range": [commits[lo] if lo >= 0 else good,
                                                commits[hi]]})
    if not hi_known_bad and measure(base, side(commits[hi]), "BAD against GOOD") != "regression":
        raise Undecided(record | {"why": "BAD is not a regression against GOOD"})
    culprit = commits[hi]
    subject = builds.git("log", "-1", "--format=%s", culprit, repo=repo)
    return record | {"culprit": culprit, "subject": subject}


def cmd_bisect(args) -> int:
    o = Options(seconds=args.seconds, warmup_s=args.warmup,
                memory_mode=host.memory_mode_for(args.memory_mode),
                pkt_size=args.pkt_size)
    repo = builds.REPO if args.repo is None else Path(args.repo).resolve()
    try:
        record = bisect(args.good, args.bad, args.scenario, o, args.tolerance, args.budget_s,
                        tuple(args.option or ()), repo=repo,
                        log=lambda m: print(m, flush=True))
        status = 0
        print(f"perf bisect: the first regression is {record['culprit']} "
              f"({record['subject']})")
    except Undecided as e:
        record, status = e.args[0], 3
        print(f"perf bisect: undecided: {record['why']}", file=sys.stderr)
    except (builds.BuildError, ab.SideFailed) as e:
        print(f"perf bisect: {e}", file=sys.stderr)
        return decide.EXIT_FAILED
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return status


def add_arguments(p) -> None:
    p.add_argument("good", help="a commit whose build is not slow")
    p.add_argument("bad", help="a later commit whose build is (a regression against GOOD)")
    p.add_argument("--scenario", required=True, choices=ab.AB_SCENARIOS)
    p.add_argument("--option", action="append", metavar="NAME=VALUE",
                   help="a meson option for every build (repeatable)")
    p.add_argument("--repo", help="the repository to bisect (default: this checkout)")
    p.add_argument("--tolerance", type=float, default=0.03)
    p.add_argument("--budget-s", type=float, default=300.0, help="time per ab step")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--pkt-size", type=int, default=64)
    p.add_argument("--memory-mode", choices=("auto", "hugepages", "no-huge"), default="auto")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--force", action="store_true", help="measure even with busy pollers around")
