import pytest

from tests.helpers import settle


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
