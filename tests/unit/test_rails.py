"""The rails: type checking (mypy, with the configuration in pyproject.toml), the .pyi
stubs against the built extension modules (stubtest), lint (ruff on Python, cython-lint
on Cython). Each runs the real tool; a failure prints what it found."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "dpdkvirtio" / "_core"
BIN = Path(sys.executable).parent
CORE_MODULES = sorted(p.stem for p in (REPO / "cython" / "dpdkvirtio" / "_core").glob("*.pyx"))


def _run(*argv: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout_s)


def test_every_core_module_has_a_stub_and_the_package_is_typed():
    assert (REPO / "dpdkvirtio" / "py.typed").exists()
    assert CORE_MODULES and sorted(p.stem for p in CORE.glob("*.pyi")) == CORE_MODULES


def test_mypy():
    r = _run(sys.executable, "-m", "mypy")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


def test_stubs_match_the_built_modules():
    r = _run(sys.executable, "-m", "mypy.stubtest", "--ignore-disjoint-bases",
             "--allowlist", "tests/unit/stubtest-allowlist.txt",
             *[f"dpdkvirtio._core.{m}" for m in CORE_MODULES])
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("argv", [
    ("ruff", "check", "dpdkvirtio", "perf", "tests", "examples"),
    ("cython-lint", "cython"),
], ids=["ruff", "cython-lint"])
def test_lint(argv):
    r = _run(str(BIN / argv[0]), *argv[1:])
    assert r.returncode == 0, r.stdout + r.stderr
