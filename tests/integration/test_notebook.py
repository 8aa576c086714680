"""examples/affinity_tuning.ipynb runs headless with a small sweep, so it cannot rot."""

import pytest

from tests.helpers import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def test_affinity_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DV_SWEEP_SECONDS", "0.5")
    monkeypatch.setenv("DV_SWEEP_BURSTS", "16,32")
    plot = tmp_path / "affinity.png"
    monkeypatch.setenv("DV_PLOT", str(plot))
    nb = nbformat.read(REPO / "examples" / "affinity_tuning.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "best placement:" in outputs
    assert "every placement moved packets: True" in outputs
    assert outputs.count("Mpps") >= 6
    assert plot.exists() and plot.stat().st_size > 1000
