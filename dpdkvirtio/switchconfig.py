"""The switch's settings, pure Python: other_config keys with OVS names, port types and
options, validation. ``topology`` plans from these without loading DPDK; ``switch``
applies them."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import sockets
from .config import LOG_LEVELS, EalConfig, available_cpus
from .errors import ConfigError

PORT_TYPES = ("dpdkvhostuser", "dpdkvhostuserclient", "dpdk")
# other_config keys (OVS names) and what they mean here
OTHER_CONFIG = {
    "dpdk-lcore-mask": "hex CPU mask for the main lcore (control, stats)",
    "pmd-cpu-mask": "hex CPU mask: one PMD thread per CPU",
    "dpdk-socket-mem": "MB of DPDK memory per NUMA node, e.g. '1024' or '1024,0'",
    "vhost-sock-dir": "directory of dpdkvhostuser sockets (must exist, not world-writable; "
                      "`dpdkvirtio run` creates /run/dpdkvirtio)",
    "per-port-memory": "true: a mempool per port; false (default): shared mempools",
    "vhost-iommu-support": "true: offer vIOMMU support on vhost-user ports",
    "vhost-postcopy-support": "true: allow postcopy live migration on vhost-user ports",
    "tx-retries-max": "default enqueue retries for vhost-user ports (0..32, default 8)",
    "pmd-sleep-max": "us a PMD may sleep when its queues are idle (0..10000, default 0: poll); "
                     "per PMD as OVS: '50,1:0' (50, but 0 for the PMD on CPU 1)",
    "pmd-mode": "poll (default) or interrupt: wait for a guest's kick when idle; per PMD as "
                "'interrupt,1:poll' (dpdkvirtio extension)",
    "memory-mode": "auto, hugepages or no-huge (dpdkvirtio extension)",
    "flow-stats": "count measured streams per rx queue: false (default), true (64 flow ids) "
                  "or the number of flow ids (dpdkvirtio extension)",
    "dpdk-file-prefix": "EAL --file-prefix (default dv<pid>): DPDK's telemetry socket is "
                        "/var/run/dpdk/<prefix>/dpdk_telemetry.v2, found by "
                        "`dpdk-telemetry.py -f <prefix>` (dpdkvirtio extension)",
    "dpdk-extra": "further EAL arguments, space separated",
    "log-level": "DPDK log level (emerg .. debug)",
}
PORT_OPTIONS = ("n_rxq", "n_rxq_desc", "n_txq_desc", "pmd-rxq-affinity", "tx-retries-max",
                "vhost-server-path", "dpdk-devargs", "socket-mode", "socket-group")
SHARED_POOL_PORTS = 8            # ports per shared mempool
DEFAULT_RUN_DIR = "/run/dpdkvirtio"   # sockets and control sockets; `run` creates it
DEFAULT_FLOW_IDS = 64            # flow-stats=true: flow ids 0..63 per rx queue
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _bool(key, value) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{key} must be true or false, got {value!r}")


def parse_cpu_mask(key: str, value) -> list[int]:
    """'0x6' (or an int) → [1, 2]."""
    try:
        mask = int(value, 16) if isinstance(value, str) else int(value)
    except ValueError:
        raise ConfigError(f"{key} must be a hexadecimal CPU mask like 0x2, got {value!r}") from None
    if mask <= 0:
        raise ConfigError(f"{key} selects no CPU ({value!r})")
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def check_port_name(name) -> str:
    """OVS rules: no '/', no '..', not empty; we also keep names short and printable."""
    if not isinstance(name, str) or not name:
        raise ConfigError("a port name must be a non-empty string")
    if "/" in name or ".." in name or "\\" in name:
        raise ConfigError(f"port name {name!r} must not contain '/', '\\' or '..'")
    if not _NAME_RE.match(name):
        raise ConfigError(f"port name {name!r}: use 1-64 letters, digits, '_', '-', '.', ':'")
    return name


@dataclass
class SwitchConfig:
    """other_config, validated; see OTHER_CONFIG."""
    lcore_cpus: list[int] | None = None
    pmd_cpus: list[int] | None = None
    socket_mem_mb: int | None = None
    vhost_sock_dir: str | None = None
    per_port_memory: bool = False
    iommu: bool = False
    postcopy: bool = False
    tx_retries_max: int = 8
    pmd_sleep_max_us: int = 0
    pmd_sleep_max_per_cpu: dict = field(default_factory=dict)
    pmd_mode: str = "poll"
    pmd_mode_per_cpu: dict = field(default_factory=dict)
    flow_stats: int = 0                  # flow ids per rx queue table (0: no accounting)
    memory_mode: str = "auto"
    extra_args: tuple = ()
    log_level: str = "warning"
    file_prefix: str | None = None

    @classmethod
    def from_other_config(cls, oc: dict | None) -> SwitchConfig:
        oc = dict(oc or {})
        unknown = sorted(set(oc) - set(OTHER_CONFIG))
        if unknown:
            raise ConfigError(f"unknown other_config key(s) {', '.join(unknown)}; known: "
                              f"{', '.join(OTHER_CONFIG)}")
        c = cls()
        avail = available_cpus()
        if "dpdk-lcore-mask" in oc:
            c.lcore_cpus = parse_cpu_mask("dpdk-lcore-mask", oc["dpdk-lcore-mask"])
        if "pmd-cpu-mask" in oc:
            c.pmd_cpus = parse_cpu_mask("pmd-cpu-mask", oc["pmd-cpu-mask"])
        for key, cpus_ in (("dpdk-lcore-mask", c.lcore_cpus), ("pmd-cpu-mask", c.pmd_cpus)):
            for cpu in cpus_ or ():
                if cpu not in avail:
                    raise ConfigError(f"{key} names CPU {cpu}, which this process cannot use "
                                      f"(available: {avail})")
        if c.lcore_cpus and c.pmd_cpus and set(c.lcore_cpus) & set(c.pmd_cpus):
            raise ConfigError(f"pmd-cpu-mask and dpdk-lcore-mask overlap on CPU(s) "
                              f"{sorted(set(c.lcore_cpus) & set(c.pmd_cpus))}: a PMD thread "
                              "must not share its CPU with the main lcore")
        if "dpdk-socket-mem" in oc:
            try:
                parts = [int(x) for x in str(oc["dpdk-socket-mem"]).split(",")]
            except ValueError:
                raise ConfigError("dpdk-socket-mem must look like '1024' or '1024,0'") from None
            if any(p < 0 for p in parts) or sum(parts) < 64:
                raise ConfigError("dpdk-socket-mem must be at least 64 MB in total")
            c.socket_mem_mb = sum(parts)
        if "vhost-sock-dir" in oc:
            sock_dir = os.path.abspath(oc["vhost-sock-dir"])
            if sock_dir == DEFAULT_RUN_DIR and not os.path.exists(sock_dir):
                c.vhost_sock_dir = sock_dir      # `dpdkvirtio run` creates it (mode 0750)
            else:
                c.vhost_sock_dir = sockets.check_socket_dir(sock_dir,
                                                            allow_world_writable_sticky=False)
        c.per_port_memory = _bool("per-port-memory", oc.get("per-port-memory", False))
        c.iommu = _bool("vhost-iommu-support", oc.get("vhost-iommu-support", False))
        c.postcopy = _bool("vhost-postcopy-support", oc.get("vhost-postcopy-support", False))
        if "tx-retries-max" in oc:
            c.tx_retries_max = check_tx_retries(oc["tx-retries-max"])
        if "pmd-sleep-max" in oc:
            d, c.pmd_sleep_max_per_cpu = per_pmd("pmd-sleep-max", oc["pmd-sleep-max"],
                                                 check_sleep_max)
            c.pmd_sleep_max_us = c.pmd_sleep_max_us if d is None else d
        if "pmd-mode" in oc:
            m, c.pmd_mode_per_cpu = per_pmd("pmd-mode", oc["pmd-mode"], check_pmd_mode)
            c.pmd_mode = c.pmd_mode if m is None else m
        for key, per in (("pmd-sleep-max", c.pmd_sleep_max_per_cpu),
                         ("pmd-mode", c.pmd_mode_per_cpu)):
            for cpu in per:
                if c.pmd_cpus is not None and cpu not in c.pmd_cpus:
                    raise ConfigError(f"{key} names CPU {cpu}, where no PMD runs (pmd-cpu-mask "
                                      f"gives CPUs {c.pmd_cpus})")
        if "flow-stats" in oc:
            c.flow_stats = check_flow_stats(oc["flow-stats"])
        c.memory_mode = oc.get("memory-mode", "auto")
        if c.memory_mode not in ("auto", "hugepages", "no-huge"):
            raise ConfigError("memory-mode must be auto, hugepages or no-huge")
        c.extra_args = tuple(str(oc.get("dpdk-extra", "")).split())
        if "dpdk-file-prefix" in oc:
            c.file_prefix = str(oc["dpdk-file-prefix"])
        c.log_level = oc.get("log-level", "warning")
        if c.log_level not in LOG_LEVELS:
            raise ConfigError(f"log-level must be one of {', '.join(LOG_LEVELS)}")
        return c

    def sleep_max_for(self, cpu: int) -> int:
        return int(self.pmd_sleep_max_per_cpu.get(cpu, self.pmd_sleep_max_us))

    def mode_for(self, cpu: int) -> str:
        return str(self.pmd_mode_per_cpu.get(cpu, self.pmd_mode))

    def eal_config(self) -> EalConfig:
        avail = available_cpus()
        pmd = self.pmd_cpus or [avail[-1]]
        main = self.lcore_cpus or ([c for c in avail if c not in pmd] or avail)
        workers = {i + 1: cpu for i, cpu in enumerate(pmd)}
        return EalConfig(workers=workers, main_lcore=0, main_cpus=tuple(main),
                         memory_mode=self.memory_mode, memory_mb=self.socket_mem_mb or 1024,
                         log_level=self.log_level, extra_args=self.extra_args,
                         file_prefix=self.file_prefix)


def check_tx_retries(v) -> int:
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise ConfigError(f"tx-retries-max must be an integer 0..32, got {v!r}") from None
    if not 0 <= n <= 32:
        raise ConfigError(f"tx-retries-max must be 0..32, got {n}")
    return n


def check_ring_size(key, v, lo=64, hi=4096) -> int:
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a power of 2 in {lo}..{hi}, got {v!r}") from None
    if not lo <= n <= hi or n & (n - 1):
        raise ConfigError(f"{key} must be a power of 2 in {lo}..{hi}, got {v!r}")
    return n


def check_flow_stats(v: object) -> int:
    """flow-stats: false/0 (off), true (64 flow ids) or a count 1..65536. Raises ConfigError."""
    if isinstance(v, bool) or str(v).lower() in ("true", "false", "yes", "no", "on", "off"):
        return DEFAULT_FLOW_IDS if _bool("flow-stats", v) else 0
    try:
        n = int(str(v), 10)
    except ValueError:
        raise ConfigError(f"flow-stats must be true, false or a number of flow ids 1..65536, "
                          f"got {v!r}") from None
    if not 0 <= n <= 65536:
        raise ConfigError(f"flow-stats must be 0..65536 flow ids, got {n}")
    return n


def per_pmd(key: str, value: object, check: Callable[[object], Any]) -> tuple[Any, dict[int, Any]]:
    """OVS's per-PMD form "DEFAULT,CPU:VALUE,..." -> (DEFAULT or None when only per-CPU
    items are given, {cpu: value}); each value passes ``check``. Raises ConfigError."""
    text = str(value).strip()
    default = None
    per_cpu: dict[int, Any] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            raise ConfigError(f"{key}: empty item in {text!r} (expected e.g. '50,1:0')")
        if ":" in item:
            cpu_text, _, v = item.partition(":")
            try:
                cpu = int(cpu_text)
            except ValueError:
                raise ConfigError(f"{key}: {cpu_text!r} is not a CPU number in {text!r}") from None
            if cpu in per_cpu:
                raise ConfigError(f"{key}: CPU {cpu} given twice in {text!r}")
            per_cpu[cpu] = check(v)
        elif default is None:
            default = check(item)
        else:
            raise ConfigError(f"{key}: more than one default in {text!r}")
    return default, per_cpu


def check_pmd_mode(v: object) -> str:
    if str(v) not in ("poll", "interrupt"):
        raise ConfigError(f"pmd-mode must be poll or interrupt, got {v!r}")
    return str(v)


def check_sleep_max(v: object) -> int:
    """pmd-sleep-max in us, 0..10000 (as OVS). Raises ConfigError."""
    try:
        n = int(str(v))
    except ValueError:
        raise ConfigError(f"pmd-sleep-max must be an integer 0..10000 (us), got {v!r}") from None
    if not 0 <= n <= 10000:
        raise ConfigError(f"pmd-sleep-max must be 0..10000 us, got {n}")
    return n


@dataclass(frozen=True)
class PortSpec:
    """One port as the switch makes it: what ``port_spec`` parsed from (name, type,
    options) and the switch's config. ``topology.plan`` and ``Switch.add_port`` both take
    it, so a port is refused the same way, with the same message, in a plan and at
    runtime. ``socket``: the vhost-user socket (ours for dpdkvhostuser, the peer's for
    dpdkvhostuserclient); ``devname``/``devargs``: a dpdk port's vdev; ``warnings``:
    devargs the driver does not list."""
    name: str
    type: str
    options: dict[str, Any]
    n_rxq: int
    ring: int
    tx_retries_max: int
    affinity: dict[int, int]
    socket: str | None = None
    socket_mode: int | None = None
    socket_group: str | None = None
    devname: str | None = None
    devargs: str | None = None
    warnings: tuple[str, ...] = ()


def port_spec(name: object, type: object, options: dict | None, config: SwitchConfig) -> PortSpec:
    """Parse and check one port against ``config`` without touching anything (a
    dpdkvhostuser socket's directory and stale socket are the switch's to check when it
    listens). Raises ConfigError (SocketPathError for a bad client path) naming the port
    and the option."""
    from .placement import parse_rxq_affinity
    from .pmdinfo import check_devargs
    name = check_port_name(name)
    if type not in PORT_TYPES:
        raise ConfigError(f"port {name!r}: unknown port type {type!r}; type must be one of "
                          f"{', '.join(PORT_TYPES)}")
    opts = {str(k): v for k, v in (options or {}).items()}
    unknown = sorted(set(opts) - set(PORT_OPTIONS))
    if unknown:
        raise ConfigError(f"port {name!r}: unknown option(s) {', '.join(unknown)}; known: "
                          f"{', '.join(PORT_OPTIONS)}")
    try:
        n_rxq = int(opts.get("n_rxq", 1))
    except (TypeError, ValueError):
        raise ConfigError(f"port {name!r}: options:n_rxq must be an integer, got "
                          f"{opts.get('n_rxq')!r}") from None
    if not 1 <= n_rxq <= 128:
        raise ConfigError(f"port {name!r}: options:n_rxq must be 1..128, got {n_rxq}")
    ring = check_ring_size("n_rxq_desc", opts.get("n_rxq_desc", 1024))
    if "n_txq_desc" in opts:
        check_ring_size("n_txq_desc", opts["n_txq_desc"])
    retries = check_tx_retries(opts.get("tx-retries-max", config.tx_retries_max))
    affinity = (parse_rxq_affinity(str(opts["pmd-rxq-affinity"]))
                if "pmd-rxq-affinity" in opts else {})
    for q in affinity:
        if q >= n_rxq:
            raise ConfigError(f"port {name!r}: options:pmd-rxq-affinity names queue {q}; the "
                              f"port has {n_rxq} (set options:n_rxq)")
    base = PortSpec(name, type, opts, n_rxq, ring, retries, affinity)
    if type == "dpdkvhostuser":
        if not config.vhost_sock_dir:
            raise ConfigError(f"port {name!r}: dpdkvhostuser ports need "
                              "other_config:vhost-sock-dir")
        text = str(opts.get("socket-mode", "0660"))
        try:
            mode = int(text, 8)
        except ValueError:
            raise ConfigError(f"port {name!r}: options:socket-mode must be octal permission "
                              f"bits such as 0660, got {text!r}") from None
        group = opts.get("socket-group")
        return dataclasses.replace(base, socket=os.path.join(config.vhost_sock_dir, name),
                                   socket_mode=mode,
                                   socket_group=None if group is None else str(group))
    if type == "dpdkvhostuserclient":
        path = str(opts.get("vhost-server-path") or "")
        if not path:
            raise ConfigError(f"port {name!r}: dpdkvhostuserclient needs "
                              "options:vhost-server-path")
        return dataclasses.replace(base, socket=sockets.check_client_path(path))
    devargs = opts.get("dpdk-devargs")
    if not devargs or not isinstance(devargs, str):
        raise ConfigError(f"port {name!r}: type dpdk needs options:dpdk-devargs, e.g. "
                          "net_virtio_user0,path=/tmp/x.sock")
    devname, _, args = devargs.partition(",")
    return dataclasses.replace(base, devname=devname, devargs=args,
                               warnings=tuple(check_devargs(devname, args)))
