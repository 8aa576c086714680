"""The documentation: `make docs`'s Sphinx build passes with warnings as errors, and every
``python`` block of the getting-started pages runs (each page in one fresh interpreter,
blocks in order), so that the examples people copy cannot rot."""
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

PAGES = sorted((REPO / "docs" / "getting-started").glob("*.md"))


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, re.M | re.S)


def test_sphinx_build_has_no_warnings(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q",
                        "-b", "html", "docs", str(tmp_path / "html")], cwd=str(REPO),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    api = (tmp_path / "html" / "api.html").read_text()
    for name in ("dpdkvirtio.VhostUserPort.wait_running", "dpdkvirtio.Pmd.add_rxq",
                 "dpdkvirtio.Burst.alloc",
                 "dpdkvirtio.FlowStats.flow", "dpdkvirtio.serve_metrics"):
        assert f'id="{name}"' in api, name
    for page in ("getting-started/script.html", "observability.html", "capture.html"):
        assert (tmp_path / "html" / page).exists(), page


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_getting_started_code_runs(page):
    blocks = python_blocks(page.read_text())
    if page.stem != "perf-ci":                  # that page is shell commands only
        assert blocks, f"{page.name} has no python block"
    if not blocks:
        return
    r = subprocess.run([sys.executable, "-c", "\n\n".join(blocks)], cwd="/tmp",
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
