"""PMD threads: Python sets the data plane up and watches it, C poll loops on pinned
lcores move the packets.

    import dpdkvirtio as dv
    dv.init()
    port = dv.VhostUserPort("/tmp/vhu0.sock")
    pmd = dv.Pmd(cpu=1)                              # a poll-mode lcore on CPU 1
    pmd.add_rxq(port, 0, "rxonly")                   # count and free what the guest sends
    pmd.add_generator(port, 0, dv.Stream(dv.udp_frame(64),
                      vars=[dv.FieldVar("ip.src", "127.0.0.1", "127.0.0.254")], pps=1e6))
    pmd.start()
    print(pmd.perf())                                # like ovs-appctl dpif-netdev/pmd-perf-show

Engines (testpmd's forwarding modes) are C functions in ``_core/dp_hot.pyx``, named
once in its engine table (``ENGINES`` here comes from it): ``rxonly`` (count and free),
``io`` (forward to another port/queue), ``macswap`` (swap Ethernet addresses, send back),
``generator`` (templates + field engine + TSC pacing; ``Stream.replay`` /
``Stream.from_pcap`` replay packets in a loop). Assignments, burst size and CPU placement
change while the PMD runs. Each (port, queue, direction) has one owner, recorded in the
C port (``Port.claim``/``release``): Python's burst API, or one PMD.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import eal as _eal_mod
from ._core import dp_hot as _engines
from ._core import eal as _core_eal
from ._core import pmd as _pmd
from .config import available_cpus
from .errors import ConfigError, PmdError, PmdStateError
from .placement import parse_rxq_affinity, place_rxqs
from .resource import Resource
from .stats import PMD_STATS_DTYPE, POLL_STATS_DTYPE, counters_array, pmd_derived
from .streams import MAX_VARS, GeneratorHandle, Stream

log = logging.getLogger("dpdkvirtio.pmd")

ENGINES: dict[str, int] = {name: uses for name, (_i, uses) in _engines.ENGINES.items()}
ACTIONS = tuple(n for n, uses in ENGINES.items() if uses & _engines.USES_RX)
PMD_MAX_BURST = _pmd.PMD_MAX_BURST      # the largest Pmd.burst_size (dv.MAX_BURST is a Burst's capacity)

if MAX_VARS != _pmd.MAX_VARS:
    raise ImportError(f"streams.MAX_VARS ({MAX_VARS}) differs from the C engine's "
                      f"DV_MAX_VARS ({_pmd.MAX_VARS}): rebuild")


# ------------------------------------------------------------------------------ PMDs

@dataclass
class Assignment:
    action: str
    port: Any
    queue: int
    out_port: Any = None
    out_queue: int = 0
    generator: Any = None
    stream: Stream | None = None
    row: int = 0
    flows: Any = None                 # a FlowStats this assignment's receiver accounts into

    @property
    def uses(self) -> int:
        return ENGINES[self.action]

    def queues(self) -> list[tuple[Any, int, str]]:
        """(port, queue, direction) this assignment owns while it is in a PMD."""
        out = []
        if self.uses & _engines.USES_RX:
            out.append((self.port, self.queue, "rx"))
        if self.uses & _engines.USES_TX_OUT:
            out.append((self.out_port, self.out_queue, "tx"))
        if self.uses & _engines.USES_TX_OWN:
            out.append((self.port, self.queue, "tx"))
        return out

    def copy(self) -> Assignment:
        """The same receiver (action, queues, flow table) for another PMD, row unset."""
        return Assignment(self.action, self.port, self.queue, self.out_port, self.out_queue,
                          flows=self.flows)

    def describe(self) -> dict:
        d = {"action": self.action, "port": self.port.name, "queue": self.queue}
        if self.out_port is not None:
            d.update(out_port=self.out_port.name, out_queue=self.out_queue)
        return d


_control_lock = threading.RLock()         # PMD creation and queue claims, across PMDs


def _free_worker_lcores() -> list[int]:
    busy = {p.lcore for p in _eal_mod.current().objects(Pmd) if not p.closed}
    return [lc for lc in _pmd.worker_lcores() if lc not in busy]


class Pmd(Resource):
    """A PMD thread: a worker lcore running a C poll loop over its assignments.

    Parameters
    ----------
    cpu : int, optional
        Pin the PMD to this CPU (a free worker lcore is chosen and moved if needed).
    lcore : int, optional
        Use this worker lcore (as mapped at EAL init).
    burst_size : int
        Packets per rx poll / generator burst (1..64, default 32), changeable later.
    sleep_max_us : int
        0 (default): poll without pause. N (1..10000): OVS ``pmd-sleep-max`` semantics —
        after a round in which every queue moved fewer than half a burst (and no
        generator had work), sleep, 1 us more per idle round up to N us; any busy round
        resets it. Costs up to N us of latency; saves the CPU when idle. Changeable later.
        Applies in ``mode="poll"``.
    mode : "poll" | "interrupt"
        "interrupt": after ``interrupt_after_rounds`` empty rounds the PMD enables guest
        notifications on its rx queues, polls one more round, and sleeps in epoll until a
        guest kicks a vhost-user queue or a virtio-user queue's call arrives (ports opened
        with ``rx_interrupts=True``), ``interrupt_timeout_ms`` pass, a vhost-user device
        comes up, or the control side changes something; then it polls again. A queue with
        no such notification raises ConfigError naming it. Changeable while running.
    interrupt_timeout_ms : int
        The longest interrupt-mode wait (1..60000, default 100): a bound on how late a
        missed notification is noticed, and the idle wake-ups per second. Changeable later.

    Raises
    ------
    PmdError
        No free worker lcore, the main lcore or an unknown lcore asked for.
    ConfigError
        A CPU this process may not use.
    """

    _close_rank = 0                   # closed before ports at EAL exit
    _collect_errors = (PmdError,)

    def __init__(self, cpu: int | None = None, *, lcore: int | None = None, burst_size: int = 32,
                 max_assignments: int = 2048, sleep_max_us: int = 0, mode: str = "poll",
                 interrupt_after_rounds: int = _pmd.DEFAULT_INTR_AFTER_ROUNDS,
                 interrupt_timeout_ms: int = _pmd.INTR_TIMEOUT_MS):
        eal = _eal_mod.ensure()
        if cpu is not None:
            if cpu not in available_cpus():
                raise ConfigError(f"CPU {cpu} is not available to this process "
                                  f"(available: {available_cpus()})")
        with _control_lock:
            if lcore is None:
                free = _free_worker_lcores()
                if not free:
                    raise PmdStateError("no free worker lcore for another PMD (workers: "
                                        f"{_pmd.worker_lcores()})",
                                        "Close a PMD, or initialise DPDK with more worker lcores "
                                        "(EalConfig(workers={lcore: cpu, ...}))")
                if cpu is not None:
                    exact = [lc for lc in free if _core_eal.lcore_cpus(lc) == [cpu]]
                    lcore = exact[0] if exact else free[0]
                else:
                    lcore = free[0]
            elif lcore in {p.lcore for p in eal.objects(Pmd) if not p.closed}:
                raise PmdStateError(f"lcore {lcore} already runs a PMD")
            self._t = _pmd.PmdThread(lcore, burst_size, max_assignments)
            self._t.sleep_max_us = sleep_max_us
            self._t.mode = mode
            self._t.interrupt_after_rounds = interrupt_after_rounds
            self._t.interrupt_timeout_ms = interrupt_timeout_ms
        self.lcore = lcore
        self._assignments: list[Assignment] = []
        self._rows_free = list(range(max_assignments))
        self._lock = threading.RLock()
        self._closed = False
        self._cpu = _core_eal.lcore_cpus(lcore)[0] if len(_core_eal.lcore_cpus(lcore)) == 1 else None
        self.counters = counters_array(self._t.stats, PMD_STATS_DTYPE)
        self.poll_counters = counters_array(self._t.poll_stats, POLL_STATS_DTYPE)
        if cpu is not None and cpu != self._cpu:
            self._t.request_cpu(cpu)
            self._cpu = cpu
        self._track(eal)

    # -- state --------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def running(self) -> bool:
        return self._t.running

    @property
    def cpu(self) -> int | None:
        """The CPU this PMD is pinned to."""
        return self._cpu

    @property
    def burst_size(self) -> int:
        return self._t.burst_size

    @burst_size.setter
    def burst_size(self, value: int):
        self._t.burst_size = value

    @property
    def sleep_max_us(self) -> int:
        """Load-based sleep maximum (0: pure polling); see the class docstring."""
        return self._t.sleep_max_us

    @sleep_max_us.setter
    def sleep_max_us(self, value: int):
        self._t.sleep_max_us = value

    @property
    def mode(self) -> str:
        """"poll" or "interrupt" (see the class docstring); changeable while running."""
        return self._t.mode

    @mode.setter
    def mode(self, value: str):
        self._t.mode = value

    @property
    def interrupt_after_rounds(self) -> int:
        return self._t.interrupt_after_rounds

    @interrupt_after_rounds.setter
    def interrupt_after_rounds(self, value: int):
        self._t.interrupt_after_rounds = value

    @property
    def interrupt_timeout_ms(self) -> int:
        return self._t.interrupt_timeout_ms

    @interrupt_timeout_ms.setter
    def interrupt_timeout_ms(self, value: int):
        self._t.interrupt_timeout_ms = value

    def _check_open(self):
        if self._closed:
            raise PmdStateError(f"PMD on lcore {self.lcore} is closed")

    def __repr__(self):
        state = "closed" if self._closed else ("running" if self.running else "stopped")
        return f"<Pmd lcore={self.lcore} cpu={self._cpu} {state} assignments={len(self._assignments)}>"

    def _wait_rounds(self, rounds: int, timeout_s: float):
        """Return after the running poll loop completed ``rounds`` more rounds."""
        if not self.running:
            return
        iterations = self.counters["iterations"]          # a live view
        target = int(iterations[0]) + rounds
        deadline = time.monotonic() + timeout_s
        while int(iterations[0]) < target and self.running:
            if time.monotonic() > deadline:
                raise PmdError(None, f"PMD on lcore {self.lcore} did not complete a poll round "
                               f"within {timeout_s:g} s")
            time.sleep(0.0002)

    # -- assignments -------------------------------------------------------------------
    def _publish(self):
        self._t.set_plan([_pmd.PlanEntry(
            engine=a.action, port=a.port.core, queue=a.queue,
            out_port=a.out_port.core if a.out_port is not None else None,
            out_queue=a.out_queue, generator=a.generator, poll_row=a.row,
            flow_table=a.flows.table if a.flows is not None else None)
            for a in self._assignments])

    def _claim(self, a: Assignment):
        """Record this PMD as the owner of every queue ``a`` touches (in the C ports),
        all or nothing."""
        done = []
        with _control_lock:
            try:
                for port, queue, direction in a.queues():
                    lcore = port.core.owner(queue, direction)
                    if lcore is not None and (direction == "rx" or lcore != self.lcore):
                        what = "polled" if direction == "rx" else "used"
                        raise ConfigError(f"{direction} queue {queue} of port {port.name!r} is "
                                          f"already {what} by the PMD on lcore {lcore}; remove "
                                          "it there first (or use move_rxq, or another queue)")
                    port.core.claim(queue, direction, self.lcore)
                    done.append((port, queue, direction))
                if a.flows is not None:
                    a.flows.table.claim(self.lcore)
            except BaseException:
                for port, queue, direction in reversed(done):
                    port.core.release(queue, direction, self.lcore)
                raise

    def _release(self, a: Assignment):
        """Give the queues of ``a`` back (after the PMD stopped using them)."""
        with _control_lock:
            for port, queue, direction in a.queues():
                if not port.closed:
                    port.core.release(queue, direction, self.lcore)
            if a.flows is not None:
                a.flows.table.release(self.lcore)
        self._rows_free.append(a.row)

    def _add(self, a: Assignment):
        self._check_open()
        for p in (a.port, a.out_port):
            if p is not None and not hasattr(p, "core"):
                raise ConfigError(f"ports must be dpdkvirtio ports, got {type(p).__name__}")
        if a.port.closed:
            raise ConfigError(f"port {a.port.name!r} is closed")
        if not isinstance(a.queue, int) or not 0 <= a.queue < a.port.n_queues:
            raise ConfigError(f"queue {a.queue!r} out of range: port {a.port.name!r} has "
                              f"{a.port.n_queues} queue(s)")
        if a.out_port is not None:
            if a.out_port.closed:
                raise ConfigError(f"port {a.out_port.name!r} is closed")
            if not isinstance(a.out_queue, int) or not 0 <= a.out_queue < a.out_port.n_queues:
                raise ConfigError(f"out_queue {a.out_queue!r} out of range: port "
                                  f"{a.out_port.name!r} has {a.out_port.n_queues} queue(s)")
        with self._lock:
            if not self._rows_free:
                raise PmdStateError(f"the PMD on lcore {self.lcore} has no room for more "
                                    "assignments")
            a.row = self._rows_free.pop(0)
            self._claim(a)
            self._assignments.append(a)
            # the poll counters row starts from zero for the new assignment
            try:
                self._publish()
            except BaseException:
                self._assignments.remove(a)
                self._release(a)
                raise
        return a

    def add_rxq(self, port, queue: int = 0, action: str = "rxonly", out_port=None,
                out_queue: int | None = None, *, flows=None) -> Assignment:
        """Poll rx queue ``queue`` of ``port``: ``rxonly`` counts and frees; ``io`` forwards
        to (``out_port``, ``out_queue``); ``macswap`` swaps the Ethernet addresses and sends
        to (``out_port``, ``out_queue``), by default back out of the same port and queue.
        ``flows``: a FlowStats this queue's measured packets are accounted into (the PMD
        becomes its only writer; give each receiver its own), or True for a new one
        (``assignment.flows``)."""
        if action not in ACTIONS:
            raise ConfigError(f"action must be one of {ACTIONS}, got {action!r}")
        if flows is True:
            from .flows import FlowStats
            flows = FlowStats()
        elif flows is not None and not hasattr(flows, "table"):
            raise ConfigError(f"flows must be a dv.FlowStats (or True), got {type(flows).__name__}")
        uses = ENGINES[action]
        if uses & _engines.USES_TX_OUT and out_port is None:
            if not uses & _engines.OUT_DEFAULTS_TO_IN:
                raise ConfigError(f"the {action} engine needs out_port")
            out_port = port
        if not uses & _engines.USES_TX_OUT and out_port is not None:
            raise ConfigError(f"{action} sends nothing: no out_port")
        if out_queue is None:
            out_queue = queue if out_port is not None and queue < out_port.n_queues else 0
        return self._add(Assignment(action, port, queue, out_port, out_queue, flows=flows))

    def add_generator(self, port, queue: int, stream: Stream) -> GeneratorHandle:
        """Generate ``stream`` into tx queue ``queue`` of ``port``; packets come from the
        port's mempool."""
        if not isinstance(stream, Stream):
            raise ConfigError("add_generator needs a Stream")
        self._check_open()
        gen = _pmd.Generator(**stream.generator_args(port.mempool.core))
        a = self._add(Assignment("generator", port, queue, None, 0, gen, stream))
        return GeneratorHandle(self, a)

    def remove(self, port, queue: int | None = None, *, generators: bool = True) -> int:
        """Stop polling ``port`` (all its queues, or ``queue``), including generators into
        it and forwards out of it. Returns how many assignments were removed. Returns once
        the PMD no longer touches them."""
        with self._lock:
            gone = [a for a in self._assignments
                    if (a.port is port and (queue is None or a.queue == queue)
                        and (generators or a.uses & _engines.USES_RX))
                    or (a.out_port is port and queue is None)]
            if not gone:
                return 0
            self._assignments = [a for a in self._assignments if a not in gone]
            self._publish()
            for a in gone:
                self._release(a)
            return len(gone)

    def remove_generator(self, handle: GeneratorHandle) -> None:
        with self._lock:
            if handle._a not in self._assignments:
                return
            self._assignments.remove(handle._a)
            self._publish()
            self._release(handle._a)

    def assignments(self) -> list[Assignment]:
        with self._lock:
            return list(self._assignments)

    def move_rxq(self, port, queue: int, to: Pmd) -> Assignment:
        """Move the assignment polling (port, queue) to PMD ``to`` while traffic runs:
        removed here (after this PMD acknowledges) then added there; packets wait in the
        ring meanwhile, none is lost. Never two pollers at once, and never none: when ``to``
        refuses it (closed, full, a queue its mode cannot serve) the assignment comes back
        here (with fresh poll counters) and ``to``'s error is raised."""
        if to is self:
            raise ConfigError(f"rx queue {queue} of {port.name!r} is already on lcore {self.lcore}")
        with self._lock:
            found = [a for a in self._assignments if a.port is port and a.queue == queue
                     and a.uses & _engines.USES_RX]
            if not found:
                raise ConfigError(f"rx queue {queue} of {port.name!r} is not on lcore {self.lcore}")
            a = found[0]
            self._assignments.remove(a)
            self._publish()
            self._release(a)
            try:
                return to._add(a.copy())
            except BaseException:
                self._add(a.copy())             # back where it was
                raise

    # -- run ----------------------------------------------------------------------------
    def start(self):
        self._check_open()
        self._t.start()

    def stop(self):
        """Stop polling (assignments stay; start() resumes)."""
        if not self._closed:
            self._t.stop()

    def move_to_cpu(self, cpu: int) -> None:
        """Re-pin this PMD's thread to ``cpu`` (while running: between two poll rounds)."""
        self._check_open()
        if cpu not in available_cpus():
            raise ConfigError(f"CPU {cpu} is not available to this process "
                              f"(available: {available_cpus()})")
        self._t.request_cpu(cpu)
        self._cpu = cpu

    def close(self):
        """Stop and drop every assignment (idempotent)."""
        super().close()

    def _is_closed(self) -> bool:
        return getattr(self, "_closed", True)

    def _close_resources(self) -> None:
        try:
            self._t.stop()
        finally:
            with self._lock:
                gone, self._assignments = self._assignments, []
                try:
                    self._publish()
                except Exception:  # noqa: BLE001 - EAL may be gone at exit
                    pass
                for a in gone:
                    self._release(a)
                if not self._t.running:
                    self._t.release()          # its epoll and wake descriptors
            self._closed = True

    # -- observation -------------------------------------------------------------------
    def perf(self) -> dict:
        """A pmd-perf-show style summary: iterations, busy %, cycles per packet, packets per
        poll, the burst-size histogram, and the stalls: polls that lasted 100 us or more
        because the CPU was taken away (``stalls``, ``stalled_ns``, ``stall_max_ns``);
        every packet in flight then waited as long. ``stall_busy_cycles``: the stalls'
        cycles that ``busy_cycles`` includes (they fell in rounds that moved packets)."""
        c = self.counters[0]
        derived = pmd_derived(c, _pmd.tsc_hz())
        return {
            "lcore": self.lcore, "cpu": self._cpu, "running": self.running,
            "iterations": int(c["iterations"]), "busy_cycles": int(c["busy_cycles"]),
            "idle_cycles": int(c["idle_cycles"]), "busy_pct": derived["busy_pct"],
            "rx_packets": int(c["rx_packets"]), "tx_packets": int(c["tx_packets"]),
            "cycles_per_packet": derived["cycles_per_packet"],
            "packets_per_poll": derived["packets_per_poll"],
            "empty_iterations": int(c["empty_iterations"]),
            "sleep_max_us": self.sleep_max_us, "sleeps": int(c["sleeps"]),
            "slept_ns": int(c["slept_ns"]), "mode": self.mode,
            "intr_arms": int(c["intr_arms"]), "intr_wakeups": int(c["intr_wakeups"]),
            "burst_histogram": c["hist"].astype(np.int64).tolist(),
            "tsc_hz": _pmd.tsc_hz(),
            "stalls": int(c["stalls"]), "stalled_ns": derived["stalled_ns"],
            "stall_max_ns": derived["stall_max_ns"],
            "stall_busy_cycles": int(c["stall_busy_cycles"]),
        }

    def sleep_show(self) -> dict:
        """Like ``ovs-appctl dpif-netdev/pmd-sleep-show`` plus counters: the mode, the
        maximum, how many rounds slept, the time slept (total and longest single sleep,
        ns); in interrupt mode how often it waited for a kick (``intr_arms``), was woken
        (``intr_wakeups``), woke for nothing (``intr_spurious``) or timed out."""
        c = self.counters[0]
        iterations, sleeps = int(c["iterations"]), int(c["sleeps"])
        return {"lcore": self.lcore, "cpu": self._cpu, "mode": self.mode,
                "sleep_max_us": self.sleep_max_us,
                "iterations": iterations, "iterations_slept": sleeps,
                "iterations_without_sleep": iterations - sleeps,
                "slept_ns": int(c["slept_ns"]), "sleep_max_ns": int(c["sleep_max_ns"]),
                "interrupt_after_rounds": self.interrupt_after_rounds,
                "interrupt_timeout_ms": self.interrupt_timeout_ms,
                **{k: int(c[k]) for k in ("intr_arms", "intr_wakeups", "intr_spurious",
                                          "intr_timeouts")}}

    def rxq_show(self) -> list[dict]:
        """Per assignment: port, queue, action, packets, polls, the TSC cycles its polls
        took and their share of this PMD's (like ovs-appctl dpif-netdev/pmd-rxq-show). A
        generator's packets are those it sent."""
        with self._lock:
            rows = [(a, self.poll_counters[a.row]) for a in self._assignments]
        total = sum(int(r["cycles"]) for _, r in rows) or 1
        return [{**a.describe(), "packets": int(r["packets"]), "polls": int(r["polls"]),
                 "cycles": int(r["cycles"]), "usage_pct": 100.0 * int(r["cycles"]) / total}
                for a, r in rows]


# --------------------------------------------------------------------- queue placement
# (the pure part, parse_rxq_affinity and place_rxqs, lives in placement.py)

def assign_rxqs(port, pmds: list[Pmd], affinity: str | dict | None = None, action: str = "rxonly",
                out_port=None) -> list[Assignment]:
    """Spread the rx queues of ``port`` over ``pmds``: round-robin by default, or as an OVS
    ``pmd-rxq-affinity`` string / {queue: cpu} dict says (CPUs of the given PMDs). As in
    OVS, a PMD that gets pinned queues is isolated: the other queues go round-robin to the
    PMDs without pinned queues."""
    if not pmds:
        raise ConfigError("no PMDs to assign queues to")
    if any(p.cpu is None for p in pmds):
        raise ConfigError("queue placement needs PMDs pinned to one CPU each")
    by_cpu = {p.cpu: p for p in pmds}
    amap: dict[int, int] = {}
    if affinity is not None:
        amap = parse_rxq_affinity(affinity) if isinstance(affinity, str) else dict(affinity)
    load = {int(p.cpu or 0): sum(1 for a in p.assignments() if a.uses & _engines.USES_RX)
            for p in pmds}
    placement = place_rxqs(port.n_queues, amap, load, set())
    out = []
    for q in sorted(placement):
        kw = {}
        if out_port is not None:
            kw = {"out_port": out_port, "out_queue": q if q < out_port.n_queues else 0}
        out.append(by_cpu[placement[q]].add_rxq(port, q, action, **kw))
    return out
