import os
import shutil

import pytest

from tests.helpers import short_dir


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
