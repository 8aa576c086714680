"""The demo: a vhost-user port in this process, a virtio-user peer in a second process
(both this library), each side's loop pinned to its own CPU, 64-byte packets for
``--seconds``; live Mpps once a second, then a table (or one JSON object).

    python -m dpdkvirtio demo --seconds 10 [--json] [--engine c|python]

Exit status 0 only when sent == received + counted drops.

Protocol with the peer (JSON lines on its stdout, words on its stdin):
peer → {"event": "ready"}; parent → "go"; peer → {"event": "tick", ...} each second,
then {"event": "done", ...}; parent drains, sends "quit"; peer → {"event": "bye"}.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import signal
import sys
import tempfile
import time
from typing import Any

from . import eal as _eal_mod
from . import pmd as _pmd
from . import rpc
from . import stats as _stats
from ._process import Child, set_pdeathsig
from .errors import ConfigError
from .ports import Burst, VhostUserPort, VirtioUserPort
from .streams import Stream

DIRECTIONS = ("to-vhost", "to-virtio")
ENGINES = ("c", "python")


def _template(pkt_size: int) -> bytes:
    """An Ethernet/IPv4/UDP frame of ``pkt_size`` bytes (without FCS) from 127.0.0.1 to
    127.0.0.2, with a valid IPv4 header checksum."""
    from .packets import udp_frame
    return udp_frame(pkt_size, src_ip="127.0.0.1", dst_ip="127.0.0.2")


def _emit(event: str, **fields):
    """A notification to the parent (rpc: method = the event's name)."""
    rpc.write_all(1, rpc.encode_notification(event, fields))


class _Side:
    """One end of the demo: a port, a role ('tx' or 'rx') and a loop (C engine on a
    pinned PMD lcore, or a Python loop on the calling thread pinned to ``cpu``)."""

    def __init__(self, port, role: str, engine: str, cpu: int, pkt_size: int, burst: int):
        self.port = port
        self.role = role
        self.engine = engine
        self.cpu = cpu
        self.burst_size = burst
        self.template = _template(pkt_size)
        self.pmd: Any = None
        self.first_rx: float | None = None
        self.last_rx: float | None = None
        self.t_start: float | None = None
        self.t_stop: float | None = None

    # -- C engines ------------------------------------------------------------------------
    def start_c(self):
        self.pmd = _pmd.Pmd(cpu=self.cpu, burst_size=self.burst_size)
        if self.role == "tx":
            self.pmd.add_generator(self.port, 0, Stream([self.template]))
        else:
            self.pmd.add_rxq(self.port, 0, "rxonly")
        self.t_start = time.monotonic()
        self.pmd.start()

    def stop_c(self):
        if self.pmd is not None:
            self.pmd.stop()
            self.t_stop = time.monotonic()

    def close(self):
        if self.pmd is not None:
            self.pmd.close()
            self.pmd = None

    # -- counters -------------------------------------------------------------------------
    def totals(self) -> dict:
        t = _stats.totals(self.port.counters)
        drops = _stats.drops_by_reason(self.port.counters)
        return {"tx_packets": t["tx_packets"], "rx_packets": t["rx_packets"], "drops": drops}

    def sent(self) -> int:
        c = self.totals()
        return c["tx_packets"] + sum(c["drops"].values())


def _pin(cpu: int):
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as e:
        raise ConfigError(f"cannot pin the loop to CPU {cpu}: {e}") from None


def _python_tx_loop(side: _Side, stop_at: float, tick) -> None:
    """Python loop over the burst API: allocate a burst of template copies, send it."""
    port, pool, tmpl, n = side.port, side.port.mempool, side.template, side.burst_size
    burst = Burst(n)
    alloc, tx = burst.alloc, port.tx_burst
    side.t_start = time.monotonic()
    i = 0
    while True:
        alloc(pool, n, tmpl)
        tx(0, burst)
        i += 1
        if not i & 1023:
            now = time.monotonic()
            if now >= stop_at:
                break
            tick(now)
    side.t_stop = time.monotonic()


def _python_rx_loop(side: _Side, should_stop, tick) -> None:
    """Python loop over the burst API: receive a burst, free it."""
    port = side.port
    burst = Burst(side.burst_size)
    rx, free = port.rx_burst, burst.free
    side.t_start = time.monotonic()
    i = 0
    while True:
        if rx(0, burst):
            free()
        i += 1
        if not i & 1023:
            now = time.monotonic()
            if should_stop(now):
                break
            tick(now)
    side.t_stop = time.monotonic()


# ------------------------------------------------------------------------------ peer

class _Words:
    """Words from the parent: rpc notifications on stdin (the method is the word)."""

    def __init__(self):
        self._reader = rpc.LineReader(0)

    @property
    def closed(self) -> bool:
        return self._reader.eof

    def poll(self, timeout_s: float = 0.0):
        """The next word, "eof" once the parent closed stdin, or None when none arrived
        within ``timeout_s``."""
        line = self._reader.read_line(timeout_s)
        if line is None:
            return "eof" if self._reader.eof else None
        try:
            return rpc.parse(line).get("method")
        except rpc.RpcError:
            return None

    def wait(self, timeout_s: float | None = None, tick=None):
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while deadline is None or time.monotonic() < deadline:
            w = self.poll(0.05)
            if w is not None:
                return w
            if tick:
                tick(time.monotonic())
        return None


def run_peer(args) -> int:
    """The virtio-user process (started by the parent)."""
    set_pdeathsig()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    words = _Words()
    _eal_mod.init(memory_mode=args.memory_mode, workers={1: args.cpu}, log_level="warning")
    port = VirtioUserPort(args.socket, queues=1, queue_size=args.queue_size)
    role = "tx" if args.direction == "to-vhost" else "rx"
    side = _Side(port, role, args.engine, args.cpu, args.pkt_size, args.burst)
    port.wait_link_up(10)
    _emit("ready", pid=os.getpid(), memory_mode=_eal_mod.current().memory_mode)
    if words.wait(60) != "go":
        return 1
    stop_at = time.monotonic() + args.seconds
    next_tick = [time.monotonic() + 1.0]

    def tick(now):
        if now >= next_tick[0]:
            next_tick[0] += 1.0
            _emit("tick", t=now, **side.totals())

    if args.engine == "c":
        side.start_c()
        if role == "tx":
            while time.monotonic() < stop_at:
                time.sleep(0.05)
                tick(time.monotonic())
        else:
            words.wait(None, tick)             # "stop": the sender is done and drained
        side.stop_c()
    else:
        _pin(args.cpu)
        if role == "tx":
            _python_tx_loop(side, stop_at, tick)
        else:
            _python_rx_loop(side, lambda now: words.poll(0) is not None, tick)
    duration = (side.t_stop or time.monotonic()) - (side.t_start or stop_at - args.seconds)
    _emit("done", duration=duration, t_start=side.t_start, t_stop=side.t_stop,
          first_rx=side.first_rx, **side.totals())
    # Keep the port (and the packets in its rings) until the parent has drained them.
    if role == "tx":
        words.wait(60)
    side.close()
    port.close()
    _emit("bye")
    return 0


# ------------------------------------------------------------------------------ parent

class _Peer:
    def __init__(self, argv):
        # its stderr is ours (the terminal): the peer's own errors show there
        self.child = Child(argv, stdin=True, stdout="rpc", stderr="inherit")
        self.proc = self.child.proc
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._conn = rpc.Connection(self.proc.stdout.fileno(), self.proc.stdin.fileno(),
                                    name="the virtio-user peer")
        self.ticks: list[dict] = []               # every tick, in order
        self.done = None
        self.ready = None

    def read_events(self, timeout_s: float = 0.0) -> list:
        """Events (notifications) that arrived, as {"event": name, **fields}; waits up to
        ``timeout_s`` for the first."""
        out: list[dict[str, Any]] = []
        wait: float | None = timeout_s
        while True:
            msg = self._conn.next_notification(wait)
            if msg is None:
                if self._conn.reader.eof and not out:
                    raise RuntimeError(f"the virtio-user peer exited (status {self.proc.poll()})")
                return out
            wait = 0.0
            params = msg["params"] if isinstance(msg.get("params"), dict) else {}
            ev = {"event": msg.get("method"), **params}
            out.append(ev)
            kind = ev["event"]
            if kind == "tick":
                self.ticks.append(ev)
            elif kind == "done":
                self.done = ev
            elif kind == "ready":
                self.ready = ev

    def wait_for(self, kind: str, timeout_s: float):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for ev in self.read_events(0.1):
                if ev.get("event") == kind:
                    return ev
            if self.proc.poll() is not None:
                break
        raise RuntimeError(f"the virtio-user peer did not report {kind!r} within {timeout_s:g} s "
                           f"(status {self.proc.poll()})")

    def say(self, word: str):
        try:
            self._conn.send(word)
        except rpc.RpcClosed:
            pass

    def stop(self):
        if self.child.running():
            self.say("quit")
            self.child.wait(10)
        self.child.stop(timeout_s=1.0, sig=signal.SIGKILL)


def _cpus():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        return cpus[-1], cpus[0]        # (our loop, the peer's loop)
    return cpus[0], cpus[0]


def run(args) -> int:
    own_cpu, peer_cpu = _cpus()
    eal = _eal_mod.init(memory_mode=args.memory_mode, workers={1: own_cpu}, log_level="warning")
    sockdir = tempfile.mkdtemp(prefix="dvdemo-", dir="/tmp")
    sock = os.path.join(sockdir, "vhu0.sock")
    port = VhostUserPort(sock, queues=1)
    role = "rx" if args.direction == "to-vhost" else "tx"
    side = _Side(port, role, args.engine, own_cpu, args.pkt_size, args.burst)
    peer = None
    out = sys.stderr if args.json else sys.stdout
    try:
        peer = _Peer([sys.executable, "-m", "dpdkvirtio", "demo-peer", "--socket", sock,
                      "--seconds", str(args.seconds), "--engine", args.engine,
                      "--direction", args.direction, "--memory-mode", eal.memory_mode,
                      "--cpu", str(peer_cpu), "--pkt-size", str(args.pkt_size),
                      "--burst", str(args.burst), "--queue-size", str(args.queue_size)])
        peer.wait_for("ready", 30)
        if not port.wait_running(10):
            raise RuntimeError("the virtio-user peer connected but its device never came up")
        print(f"dpdkvirtio demo: {eal.version}, memory {eal.memory_mode} ({eal.memory_reason}); "
              f"vhost-user server (pid {os.getpid()}, CPU {own_cpu}) <- virtio-user "
              f"(pid {peer.proc.pid}, CPU {peer_cpu})" if role == "rx" else
              f"dpdkvirtio demo: {eal.version}, memory {eal.memory_mode}; vhost-user server "
              f"(CPU {own_cpu}) -> virtio-user (pid {peer.proc.pid}, CPU {peer_cpu})", file=out)
        print(f"  {args.pkt_size}-byte packets, {args.engine} loops, {args.seconds:g} s", file=out)
        t0 = time.monotonic()
        live = _Live(side, peer, out, t0)
        peer.say("go")
        if role == "rx":
            _run_receiver(side, peer, live, args)
        else:
            _run_sender(side, peer, live, args, t0)
        result = _result(side, peer, eal, args)
    finally:
        if peer is not None:
            peer.stop()
        side.close()
        port.close()
        try:
            os.rmdir(sockdir)
        except OSError:
            pass
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result)
    return 0 if result["conserved"] else 1


class _Live:
    """Prints one line per second of the peer's: the peer's rate between two of its ticks
    and ours over the very same interval. Our counter is sampled at every call and read
    at the peer's tick times by linear interpolation (both processes stamp with
    CLOCK_MONOTONIC, one clock per host), so the two columns describe the same second.
    ``t0``: when the peer was told to go (its counters were 0 then)."""

    def __init__(self, side, peer, out, t0: float):
        self.side, self.peer, self.out, self.t0 = side, peer, out, t0
        self.times = [t0]
        self.counts = [self._own()]
        self.prev_tick = {"t": t0, "tx_packets": 0, "rx_packets": 0}
        self.printed = 0                       # ticks of peer.ticks already printed

    def _own(self) -> int:
        c = self.side.totals()
        return c["rx_packets"] if self.side.role == "rx" else c["tx_packets"]

    def own_at(self, t: float) -> float:
        """Our counter at time ``t``, interpolated between the samples around it."""
        i = bisect.bisect_left(self.times, t)
        if i == 0:
            return self.counts[0]
        if i == len(self.times):
            return self.counts[-1]
        ta, tb = self.times[i - 1], self.times[i]
        ca, cb = self.counts[i - 1], self.counts[i]
        return ca + (cb - ca) * (t - ta) / (tb - ta)

    def __call__(self, now: float):
        self.times.append(now)
        self.counts.append(self._own())
        self.peer.read_events(0)
        while self.printed < len(self.peer.ticks):
            tick = self.peer.ticks[self.printed]
            self.printed += 1
            prev = self.prev_tick
            if tick["t"] <= prev["t"]:
                continue
            self.prev_tick = tick
            print(self.line(prev, tick), file=self.out, flush=True)
        # what no later tick can ask for
        keep = bisect.bisect_left(self.times, self.prev_tick["t"]) - 1
        if keep > 0:
            del self.times[:keep], self.counts[:keep]

    def line(self, prev: dict, tick: dict) -> str:
        dt = tick["t"] - prev["t"]
        key = "tx_packets" if self.side.role == "rx" else "rx_packets"
        peer_rate = (tick[key] - prev[key]) / dt / 1e6
        own_rate = (self.own_at(tick["t"]) - self.own_at(prev["t"])) / dt / 1e6
        at = tick["t"] - self.t0
        if self.side.role == "rx":
            return (f"  t={at:5.1f}s  virtio-user tx {peer_rate:7.2f} Mpps   "
                    f"vhost-user rx {own_rate:7.2f} Mpps")
        return (f"  t={at:5.1f}s  vhost-user tx {own_rate:7.2f} Mpps   "
                f"virtio-user rx {peer_rate:7.2f} Mpps")


def _run_receiver(side, peer, live, args):
    """We receive; the peer sends for --seconds, then we drain until the ring is empty."""
    idle_since = [None]
    last_count = [0]

    def should_stop(now):
        if peer.done is None:
            peer.read_events(0)
            return False
        count = side.totals()["rx_packets"]
        if count != last_count[0]:
            last_count[0] = count
            idle_since[0] = now
            return False
        return now - (idle_since[0] or now) > 0.3

    if args.engine == "c":
        side.start_c()
        while True:
            time.sleep(0.02)
            now = time.monotonic()
            live(now)
            if should_stop(now):
                break
        side.stop_c()
    else:
        saved = os.sched_getaffinity(0)
        _pin(side.cpu)
        try:
            _python_rx_loop(side, should_stop, live)
        finally:
            os.sched_setaffinity(0, saved)


def _run_sender(side, peer, live, args, t0):
    stop_at = t0 + args.seconds
    if args.engine == "c":
        side.start_c()
        while time.monotonic() < stop_at:
            time.sleep(0.02)
            live(time.monotonic())
        side.stop_c()
    else:
        saved = os.sched_getaffinity(0)
        _pin(side.cpu)
        try:
            _python_tx_loop(side, stop_at, live)
        finally:
            os.sched_setaffinity(0, saved)
    # The receiver drains what is left in its ring, then reports.
    time.sleep(0.3)
    peer.say("stop")
    peer.wait_for("done", 30)


def _result(side, peer, eal, args) -> dict:
    if peer.done is None:
        peer.wait_for("done", 30)
    own = side.totals()
    theirs = peer.done
    if side.role == "rx":
        sent = theirs["tx_packets"] + sum(theirs["drops"].values())
        received = own["rx_packets"]
        dropped = dict(theirs["drops"])
        tx_name, rx_name = "virtio-user", "vhost-user"
        tx_seconds, rx_seconds = theirs["duration"], None
    else:
        sent = own["tx_packets"] + sum(own["drops"].values())
        received = theirs["rx_packets"]
        dropped = dict(own["drops"])
        tx_name, rx_name = "vhost-user", "virtio-user"
        tx_seconds = (side.t_stop or 0) - (side.t_start or 0)
        rx_seconds = theirs["duration"]
    rx_seconds = rx_seconds or tx_seconds
    tx_accepted = sent - sum(dropped.values())
    return {
        "sent": sent,
        "received": received,
        "dropped": dropped,
        "conserved": sent == received + sum(dropped.values()),
        "mpps": {f"{tx_name} tx": round(tx_accepted / tx_seconds / 1e6, 3) if tx_seconds else 0.0,
                 f"{rx_name} rx": round(received / tx_seconds / 1e6, 3) if tx_seconds else 0.0},
        "memory_mode": eal.memory_mode,
        "engine": args.engine,
        "direction": args.direction,
        "pkt_size": args.pkt_size,
        "seconds": args.seconds,
        "dpdk_version": eal.version,
    }


def _print_table(r: dict):
    rows = [("sent", f"{r['sent']:,}"), ("received", f"{r['received']:,}")]
    for reason, n in r["dropped"].items():
        rows.append((f"dropped ({reason})", f"{n:,}"))
    for side, v in r["mpps"].items():
        rows.append((f"Mpps {side}", f"{v:.2f}"))
    rows += [("memory mode", r["memory_mode"]), ("engine", r["engine"]),
             ("conserved (sent == received + drops)", "yes" if r["conserved"] else "NO")]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{width}}  {v:>16}")


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--seconds", type=float, default=10.0, help="traffic duration (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--engine", choices=ENGINES, default="c",
                   help="C poll engines on pinned lcores (default) or Python loops")
    p.add_argument("--python-loops", dest="engine", action="store_const", const="python",
                   help="same as --engine python")
    p.add_argument("--direction", choices=DIRECTIONS, default="to-vhost")
    p.add_argument("--memory-mode", choices=("auto", "hugepages", "no-huge"), default="auto")
    p.add_argument("--pkt-size", type=int, default=64, help="frame size without FCS (60..2048)")
    p.add_argument("--burst", type=int, default=32)
    p.add_argument("--queue-size", type=int, default=1024)


def add_peer_arguments(p: argparse.ArgumentParser):
    add_arguments(p)
    p.add_argument("--socket", required=True)
    p.add_argument("--cpu", type=int, required=True)


def check_args(args):
    if args.seconds <= 0:
        raise ConfigError("--seconds must be > 0")
    if not 60 <= args.pkt_size <= 2048:
        raise ConfigError("--pkt-size must be 60..2048")
    if not 1 <= args.burst <= 512:
        raise ConfigError("--burst must be 1..512")
