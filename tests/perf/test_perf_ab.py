"""``perf ab``: the CI examples that run it, and one short real run each way (an injected
regression must be called a regression; a build against itself must not be)."""
import re
import shlex
import subprocess

import pytest
import yaml

from perf import cli
from tests.helpers import REPO

CI = REPO / "examples" / "ci"


def _commands(path) -> list[str]:
    """Every shell line a CI file runs: GitHub steps' ``run``, GitLab jobs' ``script``."""
    doc = yaml.safe_load(path.read_text())
    lines: list[str] = []
    for job in (doc.get("jobs") or {}).values():            # GitHub Actions
        for step in job.get("steps", []):
            if "run" in step:
                lines += step["run"].replace("\\\n", " ").splitlines()
    for job in doc.values():                                # GitLab CI
        if isinstance(job, dict) and "script" in job:
            lines += job["script"]
    return [ln.strip() for ln in lines if ln.strip()]


@pytest.mark.parametrize("path", sorted(CI.glob("*.yml")), ids=lambda p: p.stem)
def test_ci_example_parses_and_runs_commands_that_exist(path):
    commands = _commands(path)
    perf_lines = [c for c in commands if " -m perf " in c]
    assert perf_lines, f"{path.name} runs no perf command: {commands}"
    for line in commands:
        assigned = re.fullmatch(r"\w+=\$\((.*)\)", line)      # base=$(git merge-base ...)
        line = assigned.group(1) if assigned else line
        # CI variables stand for a commit: any ref parses the same
        words = shlex.split(re.sub(r"\$\{\{[^}]*\}\}|\$\{?\w+\}?", "HEAD", line))
        if words[0] == "make":
            r = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True,
                               text=True)
            assert r.returncode == 0, f"{path.name}: {line}: {r.stderr}"
        elif words[0].endswith("python") and words[1:3] == ["-m", "perf"]:
            assert (REPO / words[0]).parent.name == "bin", line
            args = cli.parser().parse_args(words[3:])      # exits (SystemExit) if a flag is wrong
            assert args.cmd == "ab" and args.scenario, line
        else:
            assert words[:2] in (["git", "merge-base"], ["git", "fetch"]), \
                f"{path.name}: a command this test does not check: {line!r}"


# --- short real runs ----------------------------------------------------------------------
# One variant build, cached for the session under the suite's build directory: the
# injected regression is compiled once (its one module) and shared by both tests.
SHORT = ["--seconds", "0.3", "--warmup", "0.1", "--memory-mode", "no-huge"]


@pytest.fixture(scope="session")
def perf_builds(tmp_path_factory):
    return tmp_path_factory.mktemp("perf-builds")


def _perf(*args, builds_dir, timeout=600):
    import os
    import sys
    env = {**os.environ, "DV_PERF_BUILDS": str(builds_dir)}
    return subprocess.run([sys.executable, "-m", "perf", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _verdicts(path) -> dict:
    import json
    return {r["scenario"]: r for r in json.loads(path.read_text())}


def test_ab_calls_an_injected_regression_a_regression(perf_builds, tmp_path):
    out = tmp_path / "ab.json"
    # each side in processes of its own (the A/A test below and the bisect run both
    # builds in one trial, interleaved: every path of ab is run once)
    r = _perf("ab", ".", ".:inject_busy_cycles=200", "--scenario", "vhost-rx", "--separate",
              "--budget-s", "60", "--json", str(out), *SHORT, builds_dir=perf_builds)
    rec = _verdicts(out)["vhost-rx"]
    assert rec["verdict"] == "regression", r.stdout[-3000:] + r.stderr[-2000:]
    assert r.returncode == 1
    # the candidate is a build of its own; the base is this checkout's installed build
    assert rec["candidate"]["options"] == ["inject_busy_cycles=200"]
    assert rec["base"]["build"] == "installed"
    trial = rec["pairs"][0]["candidate"]
    assert {"cycles_per_packet", "raw_cycles_per_packet", "stalls", "screened"} <= set(trial)
    assert rec["trials"] >= 6 and rec["ci_low"] > 1.03
    assert "| vhost-rx | ❌ regression |" in r.stdout


def test_ab_of_a_build_against_itself_is_not_a_regression(perf_builds, tmp_path):
    out = tmp_path / "ab.json"
    # budget 0: the 6 pairs a verdict needs, no more
    r = _perf("ab", ".", ".", "--scenario", "vhost-rx", "--budget-s", "0",
              "--json", str(out), *SHORT, builds_dir=perf_builds)
    rec = _verdicts(out)["vhost-rx"]
    assert r.returncode in (0, 3), r.stdout[-3000:] + r.stderr[-2000:]
    assert rec["verdict"] in ("no-change", "inconclusive"), rec
    assert rec["trials"] == 6 and rec["ci_low"] is not None
    # both builds ran in each trial, in alternating windows
    for pair in rec["pairs"]:
        il = pair["interleaved"]
        assert il["kept"] >= 1 and pair["ratio"] == il["ratio"]
        sides = [w["side"] for w in il["windows"]]
        assert sides[:4] == ["base", "candidate", "candidate", "base"], sides


def _git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_bisect_names_the_commit_that_turned_a_regression_on(perf_builds, tmp_path):
    """A throw-away history of 8 commits of this tree; commit 5 turns inject_busy_cycles
    on through its default in meson_options.txt. Bisect must name commit 5."""
    import json
    import shutil
    history = tmp_path / "history"
    history.mkdir()
    for name in _git(REPO, "ls-files").splitlines():
        src = REPO / name
        if src.is_file():
            (history / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, history / name)
    _git(history, "init", "-q")
    options = (history / "meson_options.txt").read_text()
    assert "option('inject_busy_cycles', type: 'integer', min: 0, value: 0," in options
    for i in range(1, 9):
        (history / "HISTORY").write_text(f"commit {i}\n")
        if i == 5:
            (history / "meson_options.txt").write_text(options.replace(
                "option('inject_busy_cycles', type: 'integer', min: 0, value: 0,",
                "option('inject_busy_cycles', type: 'integer', min: 0, value: 600,"))
        _git(history, "add", "-A")
        _git(history, "-c", "user.name=t", "-c", "user.email=t@127.0.0.1", "commit", "-q",
             "-m", f"commit {i}")
    shas = _git(history, "rev-list", "--reverse", "HEAD").split()
    out = tmp_path / "bisect.json"
    # a step's budget: 6 pairs decide on a quiet host; a noisy one (CIs 2x wider here:
    # [1.40, 3.09] for a 2.2x cost) measures more pairs, up to 60 s, before "undecided".
    # The injected cost is 600 cycles a packet (about 5x): the test is of the search, and
    # a 200-cycle step read 1.6x, CI [1.39, 2.17], against the 0.5 tolerance on a noisy run
    r = _perf("bisect", shas[0], shas[7], "--scenario", "vhost-rx", "--repo", str(history),
              "--budget-s", "60", "--tolerance", "0.5", "--json", str(out), *SHORT,
              builds_dir=perf_builds,
              timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    rec = json.loads(out.read_text())
    assert rec["culprit"] == shas[4] and rec["subject"] == "commit 5", rec
    assert f"the first regression is {shas[4]} (commit 5)" in r.stdout
    # every commit the search judged bad is 5 or later, every good one before it
    for step in rec["steps"]:
        if step["why"] == "midpoint against GOOD":
            assert (step["verdict"] == "regression") == (shas.index(step["candidate"]) >= 4), \
                step
