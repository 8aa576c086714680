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


USER_SCRIPT = """
import dpdkvirtio as dv

eal = dv.init(memory_mode="no-huge")
port = dv.VhostUserPort("/tmp/dv-typing.sock")
burst = dv.Burst(32)
reveal_type(port.rx_burst.__call__)
reveal_type(dv.Pmd(cpu=1).add_rxq)
n: int = port.rx_burst(0, burst)
port.tx_burst(0, burst, drop_unsent=False)
port.rx_burst("zero", burst)
"""


def test_a_user_script_sees_the_real_types(tmp_path):
    """mypy on a user's script: ``dv.X`` are the real classes (the TYPE_CHECKING block of
    dpdkvirtio/__init__.py), the burst API has its signatures, a wrong argument is an
    error."""
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT)
    r = _run(sys.executable, "-m", "mypy", "--no-incremental", str(script))
    out = r.stdout
    assert 'Revealed type is "def (queue: int, burst: dpdkvirtio._core.mbuf.Burst) -> int"' \
        in out, out
    assert "-> dpdkvirtio.pmd.Assignment" in out, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "user.py:11:" in errors[0] and '"str"' in errors[0], out


def test_the_type_checking_block_names_every_export():
    """dpdkvirtio/__init__.py loads its names lazily (_EXPORTS); its TYPE_CHECKING block
    must import exactly those names from exactly those modules."""
    import ast
    tree = ast.parse((REPO / "dpdkvirtio" / "__init__.py").read_text())
    exports = block = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_EXPORTS":
            exports = {k: v for k, v in ast.literal_eval(_literal(node.value)).items()}
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            block = {a.name: "." * imp.level + (imp.module or "")
                     for imp in node.body if isinstance(imp, ast.ImportFrom) for a in imp.names}
    assert exports and block == exports


def _literal(node):
    """The _EXPORTS dict with its ``**{name: module for name in (...)}`` parts expanded, as
    source for literal_eval."""
    import ast
    items = []
    for k, v in zip(node.keys, node.values):
        if k is None:                               # **{name: "mod" for name in (...)}
            mod = ast.literal_eval(v.value)
            items += [(n, mod) for n in ast.literal_eval(v.generators[0].iter)]
        else:
            items.append((ast.literal_eval(k), ast.literal_eval(v)))
    return repr(dict(items))


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
