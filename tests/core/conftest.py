import os

import pytest


@pytest.fixture
def pair(eal, sockdir):
    """A vhost-user server port and a virtio-user port connected to it (same process)."""
    import dpdkvirtio as dv
    v = dv.VhostUserPort(os.path.join(sockdir, "v.sock"))
    u = dv.VirtioUserPort(v.path, queue_size=256)
    try:
        assert v.wait_running(10), "virtio-user never brought the vhost device up"
        assert u.wait_link_up(5)
        yield v, u
    finally:
        u.close()
        v.close()


@pytest.fixture
def pmds(eal):
    """Two PMDs: one on the first CPU (senders), one on the last (receivers)."""
    import dpdkvirtio as dv
    from tests import helpers
    front, back = helpers.front_back()
    a, b = dv.Pmd(cpu=front), dv.Pmd(cpu=back)
    yield a, b
    a.close()
    b.close()
