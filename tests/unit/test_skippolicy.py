"""The no-skip rule of `make test`: a skipped test turns the run red unless ALLOW_SKIPS=1."""
import os
import subprocess
import sys

from tests.helpers import REPO


def _run(tmp_path, allow):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_runs():\n    pass\n"
        "def test_needs_a_peer():\n    pytest.skip('peer X is not installed')\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), ALLOW_SKIPS=allow)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.skippolicy", "-q",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120)


def test_a_skip_fails_the_run_and_names_the_reason(tmp_path):
    r = _run(tmp_path, "")
    assert r.returncode == 1, r.stdout
    assert "1 skipped test(s): a FAILURE of set-up" in r.stdout
    assert any("test_needs_a_peer" in l and "peer X is not installed" in l for l in r.stdout.splitlines())


def test_allow_skips_accepts_them(tmp_path):
    r = _run(tmp_path, "1")
    assert r.returncode == 0, r.stdout
    assert "allowed (ALLOW_SKIPS=1)" in r.stdout and "peer X is not installed" in r.stdout
