"""An OVS-DPDK-style switch: other_config settings with OVS names, ports added by OVS type,
port-to-port rules, PMD threads on a CPU mask.

    sw = Switch(other_config={"pmd-cpu-mask": "0x2", "vhost-sock-dir": "/run/dv"})
    sw.add_port("vhu0", "dpdkvhostuser")                                   # we listen
    sw.add_port("vhu1", "dpdkvhostuserclient", {"vhost-server-path": "/run/qemu1.sock"})
    sw.add_port("vu0", "dpdk", {"dpdk-devargs": "net_virtio_user0,path=/run/x.sock"})
    sw.add_flow("vhu0", "vhu1"); sw.add_flow("vhu1", "vhu0")                # patch both ways
    print(sw.port_stats("vhu0")["rx_packets"])

Every rx queue of every port is polled by a PMD: a port with a rule forwards to its
output port (``io``), a port without one (or with ``drop``) counts and frees (``rxonly``)
so that no guest ring stalls. Rules, ports and settings change while traffic flows; the
other ports lose nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import eal as _eal_mod
from . import sockets
from .config import mempool_size
from .errors import ConfigError, DpdkError, StateError
from .flows import FlowStats
from .mempools import Mempool
from .metrics import Sources
from .packets import udp_frame
from .placement import parse_rxq_affinity, place_rxqs
from .pmd import Pmd
from .ports import VdevPort, VhostUserClientPort, VhostUserPort
from .resource import Resource
from .streams import GeneratorHandle, Stream
from .switchconfig import (
    SHARED_POOL_PORTS,
    PortSpec,
    SwitchConfig,
    check_port_name,
    check_tx_retries,
    port_spec,
)

log = logging.getLogger("dpdkvirtio.switch")

@dataclass
class SwitchPort:
    name: str
    type: str
    options: dict
    port: Any
    ofport: int
    pool_owned: bool = False
    added_at: float = field(default_factory=time.time)

    def describe(self) -> dict:
        p = self.port
        d = {"name": self.name, "type": self.type, "ofport": self.ofport,
             "options": dict(self.options), "queues": p.n_queues, "state": p.state,
             "tx_retries_max": p.tx_retries_max,             # what the data path applies
             "mempool": {"name": p.mempool.name, "size": p.mempool.size}
             if p.mempool is not None else None}
        if hasattr(p, "status"):
            st = p.status()
            d.update(mode=p.mode, socket=p.path, running=st["running"],
                     features=hex(st["features"]), num_of_vrings=st["n_vrings"],
                     connections=st["connections"], refused=st["refused"])
        else:
            d.update(devargs=p.devargs, link_up=p.link()[0] if not p.closed else False)
        return d


class Switch(Resource):
    """A bridge. See the module docstring.

    Parameters
    ----------
    name : str
    other_config : dict
        OVS other_config keys (see OTHER_CONFIG). The DPDK-level ones (masks, memory)
        apply when this switch initialises DPDK; if DPDK already runs, the running EAL's
        worker lcores are used for PMDs.
    """

    _close_rank = -1                  # at EAL exit: closes its own PMDs, ports and pools

    def __init__(self, name: str = "br0", other_config: dict | None = None):
        self.name = check_port_name(name)
        self.config = SwitchConfig.from_other_config(other_config)
        self.other_config = dict(other_config or {})
        self._eal = _eal_mod.ensure(self.config.eal_config())
        self._lock = threading.RLock()
        self.ports: dict[str, SwitchPort] = {}
        self.rules: dict[str, str] = {}        # in_port -> out_port or "drop"
        self._next_ofport = 1
        self._pools: list[Mempool] = []       # shared pools (pool.users: ports using one)
        self.pmds: list[Pmd] = []
        self._load: dict[int, int] = {}       # rx queues per PMD CPU
        self._isolated: set[int] = set()      # PMD CPUs with pinned queues
        self._placement: dict[str, dict[int, int]] = {}   # port -> {queue: cpu}
        self._flow_tables: dict[tuple[str, int], FlowStats] = {}   # (port, rx queue)
        self._generators: dict[str, tuple[str, Pmd, GeneratorHandle]] = {}
        self._closed = False
        cpus_ = self.config.pmd_cpus or sorted(set(self._eal.workers.values()))[-1:]
        try:
            for cpu in cpus_:
                pmd = Pmd(cpu=cpu, sleep_max_us=self.config.sleep_max_for(cpu),
                          mode=self.config.mode_for(cpu))
                pmd.start()
                self.pmds.append(pmd)
                self._load[cpu] = 0
        except BaseException:
            for p in self.pmds:
                p.close()
            self._closed = True
            raise
        self._track(self._eal)

    # -- helpers ------------------------------------------------------------------------
    def _check_open(self):
        if self._closed:
            raise StateError(f"switch {self.name!r} is closed", "make a new Switch")

    def _pmd_for_cpu(self, cpu: int) -> Pmd:
        for p in self.pmds:
            if p.cpu == cpu:
                return p
        raise ConfigError(f"pmd-rxq-affinity names CPU {cpu}, where no PMD of this switch runs "
                          f"(PMD CPUs: {[p.cpu for p in self.pmds]})")

    def _pool_for_new_port(self, queues: int, ring: int):
        """(pool, owned): a pool of its own (per-port-memory), or a shared pool with room
        for one more port (its L1 user count: the ports opened with it)."""
        if self.config.per_port_memory:
            return Mempool(mempool_size(queues=queues, rx_ring_size=ring,
                                        tx_ring_size=ring, lcores=len(self.pmds) + 1)), True
        for pool in self._pools:
            if pool.users < SHARED_POOL_PORTS:
                return pool, False
        pool = Mempool(mempool_size(ports=SHARED_POOL_PORTS, queues=1, rx_ring_size=ring,
                                    tx_ring_size=ring, lcores=len(self.pmds) + 1))
        self._pools.append(pool)
        return pool, False

    def _release_pool(self, sp: SwitchPort):
        """After sp's port is closed: close its own pool (a shared one counted the port
        off itself when the port closed)."""
        if sp.pool_owned:
            pool = sp.port.mempool
            try:
                pool.close()
            except DpdkError as e:
                log.debug("pool %s of port %s freed at exit: %s", pool.name, sp.name, e)

    @property
    def eal(self) -> Any:
        """The Eal this switch runs on (file prefix, memory mode, version)."""
        return self._eal

    def port_name(self, port: object) -> str | None:
        """The name under which ``port`` (a port object, e.g. an event's) is on this
        switch, or None."""
        return next((n for n, sp in list(self.ports.items()) if sp.port is port), None)

    # -- ports --------------------------------------------------------------------------
    def add_port(self, name: str | PortSpec, type: str | None = None,
                 options: dict | None = None) -> SwitchPort:
        """Add a port by OVS type: ``dpdkvhostuser`` (we listen on vhost-sock-dir/name),
        ``dpdkvhostuserclient`` (options vhost-server-path), ``dpdk`` (options
        dpdk-devargs, e.g. a virtio-user or any vdev). Options: n_rxq, n_rxq_desc,
        n_txq_desc, pmd-rxq-affinity, tx-retries-max, socket-mode, socket-group. ``name``
        may be a PortSpec (switchconfig.port_spec; a topology's plan hands its own).
        Nothing is left half-created on failure."""
        with self._lock:
            self._check_open()
            spec = name if isinstance(name, PortSpec) else port_spec(name, type, options,
                                                                      self.config)
            name, type, options = spec.name, spec.type, spec.options
            if name in self.ports:
                raise ConfigError(f"port {name!r} already exists on {self.name}")
            for cpu in spec.affinity.values():
                self._pmd_for_cpu(cpu)
            if spec.socket is not None and type == "dpdkvhostuser":
                sockets.check_server_path(spec.socket)
            for warning in spec.warnings:
                log.warning("port %s: %s", name, warning)
            pool, owned = self._pool_for_new_port(spec.n_rxq, spec.ring)
            port: Any
            try:
                if type == "dpdkvhostuser":
                    port = VhostUserPort(spec.socket, queues=spec.n_rxq, mempool=pool,
                                         tx_retries_max=spec.tx_retries_max,
                                         iommu_support=self.config.iommu,
                                         postcopy_support=self.config.postcopy,
                                         socket_mode=spec.socket_mode, group=spec.socket_group)
                elif type == "dpdkvhostuserclient":
                    port = VhostUserClientPort(spec.socket, queues=spec.n_rxq, mempool=pool,
                                               tx_retries_max=spec.tx_retries_max,
                                               iommu_support=self.config.iommu,
                                               postcopy_support=self.config.postcopy)
                else:
                    port = VdevPort(spec.devname or "", spec.devargs or "", queues=spec.n_rxq,
                                    ring_size=spec.ring, mempool=pool,
                                    tx_retries_max=spec.tx_retries_max)
            except BaseException:
                if owned:
                    pool.close()
                raise
            sp = SwitchPort(name, type, options, port, self._next_ofport, owned)
            port.core.telemetry_name = name          # /dpdkvirtio/port,NAME
            self._next_ofport += 1
            self.ports[name] = sp
            try:
                self._placement[name] = place_rxqs(port.n_queues, spec.affinity, self._load,
                                                   self._isolated)
                self._assign(sp)
            except BaseException:
                del self.ports[name]
                self._unplace(name)
                self._unassign(sp)
                port.close()
                self._release_pool(sp)
                raise
            log.info("%s: added port %s (%s)", self.name, name, type)
            return sp

    def _unplace(self, name: str):
        for cpu in self._placement.pop(name, {}).values():
            self._load[cpu] -= 1
        pinned = set()
        for sp in self.ports.values():
            if "pmd-rxq-affinity" in sp.options:
                pinned |= set(parse_rxq_affinity(sp.options["pmd-rxq-affinity"]).values())
        self._isolated = pinned

    def _assign(self, sp: SwitchPort):
        """(Re)create the PMD assignments of sp's rx queues from its placement and the rules."""
        rule = self.rules.get(sp.name)
        out = self.ports[rule].port if rule and rule != "drop" else None
        for q, cpu in sorted(self._placement[sp.name].items()):
            pmd = self._pmd_for_cpu(cpu)
            flows = self._flows_for(sp.name, q)
            if out is None:
                pmd.add_rxq(sp.port, q, "rxonly", flows=flows)
            else:
                oq = q if q < out.n_queues else self.pmds.index(pmd) % out.n_queues
                pmd.add_rxq(sp.port, q, "io", out_port=out, out_queue=oq, flows=flows)

    def _unassign(self, sp: SwitchPort, as_output_too: bool = True):
        for pmd in self.pmds:
            if as_output_too:
                pmd.remove(sp.port)
            else:
                for a in pmd.assignments():
                    if a.port is sp.port and a.action != "generator":
                        pmd.remove(sp.port, a.queue, generators=False)

    def del_port(self, name: str) -> None:
        """Remove a port (and the rules that name it). Other ports keep forwarding."""
        with self._lock:
            self._check_open()
            sp = self.ports.get(name)
            if sp is None:
                raise ConfigError(f"no port {name!r} on {self.name}")
            feeding = [i for i, o in self.rules.items() if o == name]
            for i in feeding:                     # those ports now drop
                del self.rules[i]
                self._reassign(i)
            self.rules.pop(name, None)
            self._unassign(sp)
            for g in [g for g, (p, _, _) in self._generators.items() if p == name]:
                del self._generators[g]
            for key in [k for k in self._flow_tables if k[0] == name]:
                del self._flow_tables[key]
            del self.ports[name]
            self._unplace(name)
            sp.port.close()
            self._release_pool(sp)
            log.info("%s: deleted port %s", self.name, name)

    def _reassign(self, name: str):
        sp = self.ports[name]
        self._unassign(sp, as_output_too=False)
        self._assign(sp)

    # -- rules --------------------------------------------------------------------------
    def add_flow(self, in_port: str, out_port: str) -> None:
        """Forward everything received on ``in_port`` to ``out_port`` ("drop" drops)."""
        with self._lock:
            self._check_open()
            if in_port not in self.ports:
                raise ConfigError(f"no port {in_port!r} on {self.name}")
            if out_port != "drop" and out_port not in self.ports:
                raise ConfigError(f"no port {out_port!r} on {self.name} (or use 'drop')")
            if out_port == in_port:
                raise ConfigError("a port cannot forward to itself")
            old = self.rules.get(in_port)
            self.rules[in_port] = out_port
            try:
                self._reassign(in_port)
            except BaseException:
                if old is None:
                    self.rules.pop(in_port, None)
                else:
                    self.rules[in_port] = old
                self._reassign(in_port)
                raise

    def del_flow(self, in_port: str) -> None:
        """Back to dropping what ``in_port`` receives."""
        with self._lock:
            if self.rules.pop(in_port, None) is not None:
                self._reassign(in_port)

    def set_port_options(self, name: str, options: dict) -> None:
        """Change tx-retries-max or pmd-rxq-affinity of a running port."""
        with self._lock:
            sp = self.ports.get(name)
            if sp is None:
                raise ConfigError(f"no port {name!r} on {self.name}")
            unknown = sorted(set(options) - {"tx-retries-max", "pmd-rxq-affinity"})
            if unknown:
                raise ConfigError(f"option(s) {', '.join(unknown)} cannot change on a running port "
                                  "(delete and add the port again)")
            if "tx-retries-max" in options:
                sp.port.tx_retries_max = check_tx_retries(options["tx-retries-max"])
                sp.options["tx-retries-max"] = options["tx-retries-max"]
            if "pmd-rxq-affinity" in options:
                aff = parse_rxq_affinity(options["pmd-rxq-affinity"])
                for q, cpu in aff.items():
                    if q >= sp.port.n_queues:
                        raise ConfigError(f"pmd-rxq-affinity names queue {q}; port {name!r} has "
                                          f"{sp.port.n_queues}")
                    self._pmd_for_cpu(cpu)
                sp.options["pmd-rxq-affinity"] = options["pmd-rxq-affinity"]
                self._unassign(sp, as_output_too=False)
                self._unplace(name)
                self._placement[name] = place_rxqs(sp.port.n_queues, aff, self._load,
                                                   self._isolated)
                self._assign(sp)

    # -- measured streams ---------------------------------------------------------------
    def _flows_for(self, port: str, queue: int) -> FlowStats | None:
        """The flow table of (port, rx queue) when other_config:flow-stats is on; it lives
        as long as the port, across rule changes."""
        if not self.config.flow_stats:
            return None
        key = (port, queue)
        if key not in self._flow_tables:
            fs = FlowStats(self.config.flow_stats)
            fs.table.telemetry_name = f"{port}:{queue}"     # /dpdkvirtio/flows,PORT:QUEUE
            self._flow_tables[key] = fs
        return self._flow_tables[key]

    def add_generator(self, name: str, port: str, *, flow_id: int | None = None,
                      pps: float | None = None, size: int = 64, count: int = 0,
                      rate: str | float | None = None) -> dict:
        """Send UDP frames (127.0.0.1 -> 127.0.0.2) of ``size`` bytes out of ``port``, at
        ``pps`` or ``rate`` ("10mpps", "5gbps": streams.parse_rate; neither: as fast as
        possible), ``count`` of them (0: until removed); a
        ``flow_id`` makes it a measured stream. Runs on the PMD that already uses the
        port's tx queue 0 (else the one polling its rx queue 0)."""
        with self._lock:
            self._check_open()
            check_port_name(name)
            if name in self._generators:
                raise ConfigError(f"generator {name!r} already exists on {self.name}")
            sp = self.ports.get(port)
            if sp is None:
                raise ConfigError(f"no port {port!r} on {self.name}")
            stream = Stream(udp_frame(size), flow_id=flow_id, pps=pps, rate=rate, count=count,
                            mode="single_burst" if count else "continuous")
            owner = sp.port.core.owner(0, "tx")
            pmd = next((p for p in self.pmds if p.lcore == owner), None) \
                or self._pmd_for_cpu(self._placement[port][0])
            self._generators[name] = (port, pmd, pmd.add_generator(sp.port, 0, stream))
            return self.generators()[name]

    def del_generator(self, name: str) -> None:
        with self._lock:
            entry = self._generators.pop(name, None)
            if entry is None:
                raise ConfigError(f"no generator {name!r} on {self.name}")
            entry[1].remove_generator(entry[2])

    def generators(self) -> dict[str, dict]:
        return {n: {"port": p, "flow_id": g.flow_id, "pps": g.pps, "sent": g.built,
                    "done": g.done, "pmd_cpu": pmd.cpu}
                for n, (p, pmd, g) in list(self._generators.items())}

    def flow_stats(self, port: str | None = None) -> list[dict]:
        """Per (port, rx queue, flow id) seen: FlowStats.flow() plus port and queue, with
        ``sent`` when a generator of this switch sends that flow id. Raises ConfigError
        when flow-stats is off or the port is unknown."""
        if not self.config.flow_stats:
            raise ConfigError("flow statistics are off: set other_config:flow-stats=true")
        if port is not None and port not in self.ports:
            raise ConfigError(f"no port {port!r} on {self.name}")
        sent: dict[int, int] = {}
        for _, _, g in list(self._generators.values()):
            if g.flow_id is not None:
                sent[g.flow_id] = sent.get(g.flow_id, 0) + g.built
        rows = []
        for (pname, q), table in sorted(self._flow_tables.items()):
            if port is None or pname == port:
                for fid in table.active():
                    rows.append({"port": pname, "queue": q, **table.flow(fid, sent.get(fid))})
        return rows

    # -- observation --------------------------------------------------------------------
    def port_stats(self, name: str) -> dict:
        """OVS-style statistics of a port (rx_packets, tx_dropped, tx_failure_drops, ...)."""
        sp = self.ports.get(name)
        if sp is None:
            raise ConfigError(f"no port {name!r} on {self.name}")
        return sp.port.stats()

    def capture(self, name: str, path, **kw):
        """Start capturing port ``name`` (Port.capture's arguments); returns the Capture.
        The port may be deleted meanwhile: that ends the capture."""
        sp = self.ports.get(name)
        if sp is None:
            raise ConfigError(f"no port {name!r} on {self.name}")
        return sp.port.capture(path, name=name, **kw)

    def metrics_sources(self) -> Sources:
        """What a metrics scrape reads now (dpdkvirtio.metrics.Sources): the ports by
        name, the PMDs and the flow tables by (port, rx queue)."""
        with self._lock:
            return Sources({n: sp.port for n, sp in self.ports.items()}, list(self.pmds),
                           dict(self._flow_tables))

    def all_port_stats(self) -> dict[str, dict]:
        return {n: sp.port.stats() for n, sp in list(self.ports.items())}

    def mempools(self) -> list[dict]:
        pools: dict[str, Any] = {}
        for sp in self.ports.values():
            mp = sp.port.mempool
            if mp is not None and not mp.closed:
                pools.setdefault(mp.name, {"name": mp.name, "size": mp.size, "in_use": mp.in_use,
                                           "ports": []})["ports"].append(sp.name)
        return list(pools.values())

    def show(self) -> dict:
        return {
            "bridge": self.name,
            "other_config": dict(self.other_config),
            "dpdk": {"version": self._eal.version, "memory_mode": self._eal.memory_mode,
                     "file_prefix": self._eal.file_prefix},
            "pmds": [{"lcore": p.lcore, "cpu": p.cpu, "running": p.running} for p in self.pmds],
            "ports": [sp.describe() for sp in self.ports.values()],
            "rules": [{"in_port": i, "out_port": o} for i, o in self.rules.items()],
            "generators": self.generators(),
            "mempools": self.mempools(),
        }

    def pmd_rxq_show(self) -> list[dict]:
        out = []
        names = {id(sp.port): n for n, sp in self.ports.items()}
        for p in self.pmds:
            for row in p.rxq_show():
                row = dict(row)
                for key in ("port", "out_port"):
                    if key in row:
                        row[key] = next((n for pid, n in names.items()
                                         if self.ports[n].port.name == row[key]), row[key])
                out.append({"pmd_cpu": p.cpu, "lcore": p.lcore, **row})
        return out

    def pmd_perf_show(self) -> list[dict]:
        return [p.perf() for p in self.pmds]

    def pmd_sleep_show(self) -> list[dict]:
        """Per PMD: its pmd-sleep-max and how much it slept (Pmd.sleep_show)."""
        return [p.sleep_show() for p in self.pmds]

    def wait_connected(self, names=None, timeout_s: float = 30.0) -> bool:
        """Wait until the named vhost-user ports (default: all) have a running device."""
        names = list(self.ports) if names is None else names
        deadline = time.monotonic() + timeout_s
        for n in names:
            p = self.ports[n].port
            if hasattr(p, "wait_running"):
                if not p.wait_running(max(0.0, deadline - time.monotonic())):
                    return False
        return True

    # -- teardown -----------------------------------------------------------------------
    def close(self) -> None:
        """Stop the PMDs, close every port (server sockets are removed) and the pools."""
        with self._lock:
            super().close()

    def _is_closed(self) -> bool:
        return getattr(self, "_closed", True)

    def __repr__(self) -> str:
        if self._is_closed():
            return f"<Switch {self.name!r} closed>"
        return f"<Switch {self.name!r} ports={len(self.ports)} pmds={len(self.pmds)}>"

    def _close_resources(self) -> None:
        self._closed = True
        for p in self.pmds:
            p.close()
        for sp in list(self.ports.values()):
            try:
                sp.port.close()
                self._release_pool(sp)
            except DpdkError as e:
                log.warning("closing port %s: %s", sp.name, e)
        self.ports.clear()
        for pool in self._pools:
            try:
                pool.close()
            except DpdkError as e:
                log.debug("pool %s freed at exit: %s", pool.name, e)
        self._pools.clear()
