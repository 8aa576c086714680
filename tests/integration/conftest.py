import os
import shutil

import pytest

from tests.helpers import settle, short_dir


def quiesce(port, key="rx_packets"):
    """Wait until a port counter stops moving; return its value."""
    return settle(port, key, quiet=0.4, timeout=30.0)


@pytest.fixture
def pmd(eal):
    import dpdkvirtio as dv
    from tests.helpers import cpus
    p = dv.Pmd(cpu=cpus()[1])
    yield p
    p.close()


@pytest.fixture
def d():
    path = short_dir("dvc")
    os.chmod(path, 0o750)
    yield path
    leftovers = [f for f in os.listdir(path) if f != "topo.toml"]
    shutil.rmtree(path, ignore_errors=True)
    assert not leftovers, f"left behind: {leftovers}"
