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
    for name, job in doc.items():                           # GitLab CI
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
