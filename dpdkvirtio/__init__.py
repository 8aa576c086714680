"""dpdkvirtio: vhost-user and virtio-user data planes on DPDK 22.11, driven from Python.

    import dpdkvirtio as dv
    eal = dv.init()                       # EAL once per process; memory mode auto
    port = dv.VhostUserPort("/tmp/vhu0.sock")
    burst = dv.Burst(32)
    ...

``dpdkvirtio.DPDK_VERSION`` is the DPDK runtime this module is running on.
"""

from ._core.mbuf import Burst, MAX_BURST
from ._core.mempool import Mempool
from .config import EalConfig
from .eal import Eal, current, dpdk_version, init
from .errors import (ConfigError, DpdkError, EalError, ForkedProcessError, MempoolBusyError,
                     MempoolError, PeerTimeoutError, PmdError, PortError, PortStateError,
                     SocketPathError, VhostError)
from .ports import (VdevPort, VhostEvent, VhostUserClientPort, VhostUserPort, VirtioUserPort,
                    create_mempool, events_fd, feature_names, mempool_size, poll_events)
from .stats import QUEUE_STATS_DTYPE, RateMeter, port_stats, queue_counters
from .engines import (FieldVar, GeneratorHandle, Pmd, SizeVar, Stream, assign_rxqs,
                      parse_rxq_affinity, read_pcap, write_pcap, PMD_STATS_DTYPE)
from .packets import udp_frame

__version__ = "0.1.0"
DPDK_VERSION = dpdk_version()
MIN_SAFE_DPDK = (22, 11, 7)        # vhost CVE fixes up to CVE-2024-11614


def _version_check(text: str) -> str | None:
    """A warning when the DPDK runtime lacks the vhost CVE fixes of 22.11.7, else None."""
    import re
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    if not m:
        return f"cannot tell the DPDK version from {text!r}; dpdkvirtio needs 22.11.7 or newer"
    v = tuple(int(x) for x in m.groups())
    if v < MIN_SAFE_DPDK:
        return (f"{text} lacks vhost security fixes a guest can reach (CVE-2024-11614 and "
                "earlier): upgrade DPDK to 22.11.7 or newer")
    return None


def _warn_old_dpdk():
    msg = _version_check(DPDK_VERSION)
    if msg:
        import warnings
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


_warn_old_dpdk()

__all__ = [
    "Burst", "MAX_BURST", "Mempool", "EalConfig", "Eal", "init", "current", "dpdk_version",
    "DPDK_VERSION", "DpdkError", "EalError", "MempoolError", "MempoolBusyError", "PortError",
    "PortStateError", "VhostError", "PmdError", "ConfigError", "SocketPathError",
    "PeerTimeoutError", "ForkedProcessError", "VhostUserPort", "VhostUserClientPort",
    "VirtioUserPort", "VdevPort", "VhostEvent", "poll_events", "events_fd", "create_mempool",
    "mempool_size", "feature_names", "QUEUE_STATS_DTYPE", "RateMeter", "port_stats",
    "queue_counters", "FieldVar", "GeneratorHandle", "Pmd", "SizeVar", "Stream", "assign_rxqs",
    "parse_rxq_affinity", "read_pcap", "write_pcap", "PMD_STATS_DTYPE", "udp_frame",
]
