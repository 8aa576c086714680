"""Topology files (TOML): a switch, its ports, its rules. ``plan()`` checks a topology and
says what would be created — PMD ↔ CPU ↔ queue placement, mempool sizes, socket paths —
without creating anything; ``build()`` creates it.

    [switch]
    name = "br0"
    [switch.other_config]
    pmd-cpu-mask = "0x2"
    vhost-sock-dir = "/run/dpdkvirtio"

    [[port]]
    name = "vhu0"
    type = "dpdkvhostuser"

    [[port]]
    name = "vhu1"
    type = "dpdkvhostuserclient"
    options = { vhost-server-path = "/run/vm1.sock", n_rxq = 2, pmd-rxq-affinity = "0:1" }

    [[flow]]
    in_port = "vhu0"
    out_port = "vhu1"        # or "drop"

    [[generator]]            # optional: the switch sends a (measured) stream out of a port
    name = "probe"
    port = "vhu0"
    flow_id = 1              # measured (flows the switch receives show in `ctl flow-stats`
    rate = "10kpps"          #   with other_config flow-stats = "true"); or pps = 10000;
                             #   size = 64, count = 0

    [control]
    socket = "/run/dpdkvirtio/br0.ctl"    # optional
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from . import sockets
from .config import available_cpus, mempool_size
from .errors import ConfigError
from .placement import place_rxqs
from .switchconfig import (
    DEFAULT_RUN_DIR,
    SHARED_POOL_PORTS,
    PortSpec,
    SwitchConfig,
    check_port_name,
    port_spec,
)

MBUF_BYTES = 2304                 # one 2 KB-data mbuf with its header and mempool overhead


def load(path) -> dict:
    """Read a TOML topology; ConfigError names the file and what is wrong."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    unknown = sorted(set(data) - {"switch", "port", "flow", "generator", "control"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)} (known: switch, "
                          "port, flow, generator, control)")
    return data


@dataclass
class PortPlan:
    name: str
    type: str
    options: dict
    n_rxq: int
    ring: int
    socket: str | None
    socket_state: str | None = None       # "free" or "stale (will be removed)"
    placement: dict = field(default_factory=dict)
    mempool: str = ""
    warnings: list = field(default_factory=list)
    spec: PortSpec | None = None          # what Switch.add_port makes it from


@dataclass
class Plan:
    name: str
    other_config: dict
    config: SwitchConfig
    pmd_cpus: list[int]
    main_cpus: list[int]
    ports: list[PortPlan]
    flows: list[tuple[str, str]]
    generators: list[dict]
    mempools: list[dict]
    memory_mb: int
    control_socket: str
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "switch": self.name, "other_config": self.other_config,
            "main_cpus": self.main_cpus, "pmd_cpus": self.pmd_cpus,
            "pmds": [{"cpu": c, "queues": [f"{p.name}:{q}" for p in self.ports
                                            for q, cpu in sorted(p.placement.items()) if cpu == c]}
                     for c in self.pmd_cpus],
            "ports": [{"name": p.name, "type": p.type, "n_rxq": p.n_rxq, "socket": p.socket,
                       "socket_state": p.socket_state, "mempool": p.mempool,
                       "options": p.options, "warnings": p.warnings} for p in self.ports],
            "flows": [{"in_port": i, "out_port": o} for i, o in self.flows],
            "generators": self.generators,
            "mempools": self.mempools,
            "memory_mb": self.memory_mb,
            "control_socket": self.control_socket,
            "warnings": self.warnings,
        }

    def text(self) -> str:
        d = self.as_dict()
        lines = [f"switch {self.name}: main lcore on CPU(s) {self.main_cpus}, "
                 f"PMD threads on CPU(s) {self.pmd_cpus}, DPDK memory {self.memory_mb} MB"]
        for pmd in d["pmds"]:
            lines.append(f"  PMD on CPU {pmd['cpu']}: rx queues {', '.join(pmd['queues']) or '(none)'}")
        lines.append("ports:")
        for p in self.ports:
            where = f" socket {p.socket} ({p.socket_state})" if p.socket else ""
            lines.append(f"  {p.name:<16} {p.type:<20} n_rxq={p.n_rxq} mempool={p.mempool}{where}")
            for w in p.warnings:
                lines.append(f"    warning: {w}")
        lines.append("rules:" if self.flows else "rules: (none: every port drops what it receives)")
        for i, o in self.flows:
            lines.append(f"  {i} -> {o}")
        for g in self.generators:
            what = f"measured flow {g['flow_id']}" if g.get("flow_id") is not None else "unmeasured"
            lines.append(f"generator {g['name']}: out of {g['port']}, {what}, "
                         f"{g.get('rate') or (str(g['pps']) + ' pps' if g.get('pps') else 'max rate')}, "
                         f"{g.get('size', 64)} B")
        lines.append("mempools:")
        for m in self.mempools:
            lines.append(f"  {m['name']:<12} {m['mbufs']:>7} mbufs  ~{m['mb']} MB  "
                         f"for {', '.join(m['ports'])}")
        lines.append(f"control socket: {self.control_socket}")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        return "\n".join(lines)


def _server_socket_state(path: str) -> str:
    """Check a server socket path without changing anything."""
    if os.path.dirname(path) == DEFAULT_RUN_DIR and not os.path.exists(DEFAULT_RUN_DIR):
        return f"free ({DEFAULT_RUN_DIR} is created at run)"
    try:
        sockets.check_server_path(path, remove_stale=False)
        return "free"
    except ConfigError as e:
        if "stale socket" in str(e):
            return "stale (will be removed)"
        raise


def plan(topology: dict) -> Plan:
    """Validate a topology and compute what build() would create. Touches nothing."""
    sw = topology.get("switch", {})
    if not isinstance(sw, dict):
        raise ConfigError("[switch] must be a table")
    unknown = sorted(set(sw) - {"name", "other_config"})
    if unknown:
        raise ConfigError(f"[switch]: unknown key(s) {', '.join(unknown)} (known: name, other_config)")
    name = check_port_name(sw.get("name", "br0"))
    oc = {str(k): (str(v) if not isinstance(v, bool) else str(v).lower())
          for k, v in sw.get("other_config", {}).items()}
    cfg = SwitchConfig.from_other_config(oc)
    eal = cfg.eal_config()
    pmd_cpus = sorted(set(eal.resolved_workers().values()))
    main_cpus = list(eal.main_cpus or ())
    if set(main_cpus) & set(pmd_cpus) and len(available_cpus()) > 1:
        raise ConfigError(f"the main lcore (CPUs {main_cpus}) would share a CPU with a PMD thread "
                          f"(pmd-cpu-mask CPUs {pmd_cpus}): leave it one CPU (dpdk-lcore-mask)")
    eal.validate()
    warnings: list[str] = []
    load = {c: 0 for c in pmd_cpus}
    isolated: set[int] = set()
    ports: list[PortPlan] = []
    seen = set()
    for i, raw in enumerate(topology.get("port", [])):
        if not isinstance(raw, dict):
            raise ConfigError(f"[[port]] #{i + 1} must be a table")
        extra = sorted(set(raw) - {"name", "type", "options"})
        if extra:
            raise ConfigError(f"[[port]] #{i + 1}: unknown key(s) {', '.join(extra)} "
                              "(known: name, type, options)")
        spec = port_spec(raw.get("name", ""), raw.get("type"), raw.get("options"), cfg)
        if spec.name in seen:
            raise ConfigError(f"port {spec.name!r} appears twice")
        seen.add(spec.name)
        pp = PortPlan(spec.name, spec.type, spec.options, spec.n_rxq, spec.ring, spec.socket,
                      warnings=list(spec.warnings), spec=spec)
        if spec.type == "dpdkvhostuser" and spec.socket is not None:
            pp.socket_state = _server_socket_state(spec.socket)
        elif spec.type == "dpdkvhostuserclient" and spec.socket is not None:
            pp.socket_state = ("exists" if os.path.exists(spec.socket)
                               else "not there yet (will reconnect)")
        pp.placement = place_rxqs(spec.n_rxq, spec.affinity, load, isolated)
        ports.append(pp)
    flows = []
    names = {p.name for p in ports}
    ins = set()
    for i, raw in enumerate(topology.get("flow", [])):
        if not isinstance(raw, dict) or set(raw) != {"in_port", "out_port"}:
            raise ConfigError(f"[[flow]] #{i + 1} needs exactly in_port and out_port")
        a, b = raw["in_port"], raw["out_port"]
        if a not in names:
            raise ConfigError(f"[[flow]] #{i + 1}: no port {a!r}")
        if b != "drop" and b not in names:
            raise ConfigError(f"[[flow]] #{i + 1}: no port {b!r} (or use \"drop\")")
        if a == b:
            raise ConfigError(f"[[flow]] #{i + 1}: a port cannot forward to itself")
        if a in ins:
            raise ConfigError(f"[[flow]] #{i + 1}: port {a!r} already has a rule")
        ins.add(a)
        flows.append((a, b))
    generators = _plan_generators(topology.get("generator", []), names)
    # mempools, as the switch will make them
    pools: list[dict[str, Any]] = []
    lcores = len(pmd_cpus) + 1
    if cfg.per_port_memory:
        for p in ports:
            n = mempool_size(queues=p.n_rxq, rx_ring_size=p.ring, tx_ring_size=p.ring, lcores=lcores)
            pools.append({"name": f"port:{p.name}", "mbufs": n, "ports": [p.name]})
            p.mempool = pools[-1]["name"]
    else:
        for k in range(math.ceil(len(ports) / SHARED_POOL_PORTS)):
            group = ports[k * SHARED_POOL_PORTS:(k + 1) * SHARED_POOL_PORTS]
            ring = group[0].ring               # the switch sizes a pool for the port that opens it
            n = mempool_size(ports=SHARED_POOL_PORTS, queues=1, rx_ring_size=ring, tx_ring_size=ring,
                             lcores=lcores)
            pools.append({"name": f"shared{k}", "mbufs": n, "ports": [p.name for p in group]})
            for p in group:
                p.mempool = pools[-1]["name"]
    for m in pools:
        m["mb"] = math.ceil(m["mbufs"] * MBUF_BYTES / 2**20)
    memory_mb = cfg.socket_mem_mb or 1024
    need = sum(m["mb"] for m in pools)
    if need > memory_mb * 0.9:
        raise ConfigError(f"the mempools need about {need} MB but dpdk-socket-mem gives {memory_mb} "
                          "MB: raise dpdk-socket-mem or use fewer/smaller ports")
    control = topology.get("control", {}) or {}
    csock = control.get("socket") or os.path.join(cfg.vhost_sock_dir or DEFAULT_RUN_DIR, f"{name}.ctl")
    csock = os.path.abspath(csock)
    if len(os.fsencode(csock)) > sockets.MAX_PATH_BYTES:
        raise ConfigError(f"control socket path is over {sockets.MAX_PATH_BYTES} bytes: {csock}")
    if not os.path.isdir(os.path.dirname(csock)) and os.path.dirname(csock) != DEFAULT_RUN_DIR:
        raise ConfigError(f"the directory of the control socket does not exist: {os.path.dirname(csock)}")
    for p in ports:
        warnings += [f"port {p.name}: {w}" for w in p.warnings]
    return Plan(name, oc, cfg, pmd_cpus, main_cpus, ports, flows, generators, pools, memory_mb,
                csock, warnings)


GENERATOR_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str, "port": str, "flow_id": int, "pps": (int, float), "rate": (str, int, float),
    "size": int, "count": int}


def _plan_generators(raw_list: Any, port_names: set[str]) -> list[dict]:
    """Check the [[generator]] tables (streams built the way the switch will build them)."""
    from .packets import udp_frame
    from .streams import Stream
    out: list[dict] = []
    if not isinstance(raw_list, list):
        raise ConfigError("[[generator]] must be an array of tables")
    for i, raw in enumerate(raw_list):
        where = f"[[generator]] #{i + 1}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a table")
        extra = sorted(set(raw) - set(GENERATOR_KEYS))
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)} (known: "
                              f"{', '.join(GENERATOR_KEYS)})")
        for key in ("name", "port"):
            if key not in raw:
                raise ConfigError(f"{where} needs {key}")
        for key, kind in GENERATOR_KEYS.items():
            if key in raw and (isinstance(raw[key], bool) or not isinstance(raw[key], kind)):
                raise ConfigError(f"{where}: {key} has the wrong type ({raw[key]!r})")
        check_port_name(raw["name"])
        if raw["name"] in {g["name"] for g in out}:
            raise ConfigError(f"{where}: a generator named {raw['name']!r} already exists")
        if raw["port"] not in port_names:
            raise ConfigError(f"{where}: no port {raw['port']!r}")
        try:
            Stream(udp_frame(raw.get("size", 64)), flow_id=raw.get("flow_id"),
                   pps=raw.get("pps"), rate=raw.get("rate"), count=raw.get("count", 0))
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        out.append(dict(raw))
    return out


def build(p: Plan):
    """Create the switch of a plan. On any failure everything created so far is closed
    and the exception propagates: nothing is left half-created."""
    from .switch import Switch
    sw = Switch(p.name, p.other_config)
    try:
        for port in p.ports:
            assert port.spec is not None              # (plan() made every port's)
            sw.add_port(port.spec)
        for a, b in p.flows:
            sw.add_flow(a, b)
        for g in p.generators:
            sw.add_generator(g["name"], g["port"], flow_id=g.get("flow_id"), pps=g.get("pps"),
                             rate=g.get("rate"), size=g.get("size", 64), count=g.get("count", 0))
    except BaseException:
        sw.close()
        raise
    return sw
