"""examples/affinity_tuning.ipynb: stored executed (outputs and plots readable on a code
host without running it), and run headless here with a short sweep, so it cannot rot."""

import pytest

from tests.helpers import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = REPO / "examples" / "affinity_tuning.ipynb"


def _outputs(nb, kind):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if kind in o.get("data", {})]


def _text(nb) -> str:
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_the_stored_notebook_is_executed_with_inline_plots():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count and c.outputs for c in code), \
        [c.source[:40] for c in code if not (c.execution_count and c.outputs)]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert len(_outputs(nb, "image/png")) >= 3
    assert not any("matplotlib.use(" in c.source or "Agg" in c.source for c in code)
    assert "every placement moved packets: True" in _text(nb)


def test_affinity_notebook_runs(monkeypatch):
    monkeypatch.setenv("DV_SWEEP_SECONDS", "0.3")
    monkeypatch.setenv("DV_SWEEP_TRIALS", "2")
    monkeypatch.setenv("DV_SWEEP_BURSTS", "16")
    # the backend is set from outside, as a headless notebook server would
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()
    text = _text(nb)
    assert "every placement moved packets: True" in text
    # two trials: no interval, so no placement is called better
    assert "no placement is better than every other beyond the noise" in text
    assert "apply: pmd-cpu-mask=0x" in text and "pmd-rxq-affinity=" in text
    assert text.count("sweep: ") >= 2 * 5 and "sweep: 10/10" in text     # the progress lines
    html = "".join(o["data"]["text/html"] for o in _outputs(nb, "text/html"))
    assert "mpps_median" in html and "p99_us" in html                  # the DataFrames
    assert "Mpps so far" in html                                       # the live view
    assert len(_outputs(nb, "image/png")) >= 3                         # inline plots
