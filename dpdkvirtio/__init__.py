"""dpdkvirtio: vhost-user and virtio-user data planes on DPDK 22.11, driven from Python.

    import dpdkvirtio as dv
    eal = dv.init()                       # EAL once per process; memory mode auto
    port = dv.VhostUserPort("/tmp/vhu0.sock")
    burst = dv.Burst(32)
    ...

``dpdkvirtio.DPDK_VERSION`` is the DPDK runtime this module is running on.

The public names load their module on first use (PEP 562), so that the pure modules
(``errors``, ``config``, ``placement``, ``packets``, ``sockets``, ``streams``) import without the
compiled extension; the first name that needs DPDK loads it and checks its version.
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import TYPE_CHECKING

__version__ = _metadata.version("dpdkvirtio")     # from meson.build, the one place
MIN_SAFE_DPDK = (22, 11, 7)        # vhost CVE fixes up to CVE-2024-11614

# public name -> the module that defines it
_EXPORTS = {
    "Burst": "._core.mbuf", "MAX_BURST": "._core.mbuf",
    "Mempool": ".mempools", "mempool_size": ".config",
    "EalConfig": ".config",
    "Eal": ".eal", "current": ".eal", "dpdk_version": ".eal", "init": ".eal",
    **{name: ".errors" for name in (
        "ConfigError", "DpdkError", "EalError", "ForkedProcessError", "MempoolBusyError",
        "MempoolError", "PeerTimeoutError", "PmdError", "PmdStateError", "PortError",
        "PortStateError", "StateError", "SocketPathError", "VhostError")},
    **{name: ".ports" for name in (
        "VdevPort", "VhostUserClientPort", "VhostUserPort", "VirtioUserPort")},
    **{name: ".events" for name in ("VhostEvent", "events_fd", "poll_events")},
    "feature_names": ".virtio",
    **{name: ".stats" for name in ("QUEUE_STATS_DTYPE", "PMD_STATS_DTYPE", "POLL_STATS_DTYPE",
                                   "RateMeter", "port_stats", "queue_counters")},
    **{name: ".pmd" for name in (
        "ENGINES", "PMD_MAX_BURST", "Assignment", "Pmd", "assign_rxqs")},
    **{name: ".streams" for name in ("FieldVar", "SizeVar", "Stream", "GeneratorHandle")},
    "Capture": ".capture", "read_capture": ".pcapfile",
    "serve_metrics": ".metrics", "MetricsServer": ".metrics",
    "parse_rxq_affinity": ".placement",
    "udp_frame": ".packets",
    "Switch": ".switch", "SwitchConfig": ".switchconfig",
    "FlowStats": ".flows", "FLOW_STATS_DTYPE": ".stats",
}

__all__ = sorted(_EXPORTS) + ["DPDK_VERSION"]

if TYPE_CHECKING:      # the same names, eagerly, for type checkers and IDEs
    # (tests/unit/test_layering.py holds this block to _EXPORTS)
    from ._core.mbuf import MAX_BURST, Burst
    from .capture import Capture
    from .config import EalConfig, mempool_size
    from .eal import Eal, current, dpdk_version, init
    from .errors import (
        ConfigError,
        DpdkError,
        EalError,
        ForkedProcessError,
        MempoolBusyError,
        MempoolError,
        PeerTimeoutError,
        PmdError,
        PmdStateError,
        PortError,
        PortStateError,
        SocketPathError,
        StateError,
        VhostError,
    )
    from .events import VhostEvent, events_fd, poll_events
    from .flows import FlowStats
    from .mempools import Mempool
    from .metrics import MetricsServer, serve_metrics
    from .packets import udp_frame
    from .pcapfile import read_capture
    from .placement import parse_rxq_affinity
    from .pmd import ENGINES, PMD_MAX_BURST, Assignment, Pmd, assign_rxqs
    from .ports import VdevPort, VhostUserClientPort, VhostUserPort, VirtioUserPort
    from .stats import (
        FLOW_STATS_DTYPE,
        PMD_STATS_DTYPE,
        POLL_STATS_DTYPE,
        QUEUE_STATS_DTYPE,
        RateMeter,
        port_stats,
        queue_counters,
    )
    from .streams import FieldVar, GeneratorHandle, SizeVar, Stream
    from .switch import Switch
    from .switchconfig import SwitchConfig
    from .virtio import feature_names


def __getattr__(name: str):
    if name == "DPDK_VERSION":
        value = importlib.import_module(".eal", __name__).dpdk_version()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    else:
        raise AttributeError(f"module 'dpdkvirtio' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


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


def _warn_old_dpdk(version: str):
    """Called once, when dpdkvirtio.eal (the first module that loads DPDK) is imported."""
    msg = _version_check(version)
    if msg:
        import warnings
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
