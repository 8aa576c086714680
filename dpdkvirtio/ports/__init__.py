"""Ports: vhost-user (server and client, vhost library) and ethdev vdevs (virtio-user,
net_null, net_ring, net_tap ...), with mempools sized for them.

    import dpdkvirtio as dv
    dv.init()
    with dv.VhostUserPort("/tmp/vhu0.sock", queues=1) as port:
        port.wait_running(timeout_s=30)
        burst = dv.Burst(32)
        n = port.rx_burst(0, burst)
        burst.free()

Queue indexes are queue pairs: ``rx_burst(q, ...)`` reads the front-end's transmit
ring q, ``tx_burst(q, ...)`` writes its receive ring q. Ports are closed by
``close()``, by their ``with`` block, or at interpreter exit; one collected while open
emits ResourceWarning and is closed then.

Shape: base.py holds what every port shares (``_Port``), vhost.py the vhost-user ports,
ethdev.py virtio-user and the other vdevs. Each class owns an L1 handle, ``core``
(``_core.vhost.VhostPort`` or ``_core.ethdev.EthPort``), which holds the port's state
(see ``_core/port.pyx``). A port is built by one function per kind (``_open_vhost``,
``_open_ethdev``) and torn down by one, ``close``, the mirror of it.
"""
from .._core.mbuf import MAX_BURST, Burst
from ..events import VhostEvent, events_fd, poll_events
from ..virtio import DEFAULT_DISABLED_FEATURES, feature_names
from .ethdev import VdevPort, VirtioUserPort
from .vhost import VhostUserClientPort, VhostUserPort

__all__ = ["Burst", "MAX_BURST", "VhostUserPort", "VhostUserClientPort",
           "VirtioUserPort", "VdevPort", "VhostEvent", "poll_events", "events_fd",
           "feature_names", "DEFAULT_DISABLED_FEATURES"]     # (re-exported for callers)
