import time

import pytest


def quiesce(port, key="rx_packets", settle=0.4, timeout=30.0):
    """Wait until a port counter stops moving; return its value."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        cur = port.stats()[key]
        if cur != last:
            last, since = cur, time.monotonic()
        elif time.monotonic() - since > settle:
            return cur
        time.sleep(0.02)
    raise AssertionError(f"{key} of {port.name} kept moving")


@pytest.fixture
def pmd(eal):
    import dpdkvirtio as dv
    from tests.helpers import cpus
    p = dv.Pmd(cpu=cpus()[1])
    yield p
    p.close()
