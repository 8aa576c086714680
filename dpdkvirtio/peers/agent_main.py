"""A second dpdkvirtio process for tests and benchmarks (``python -m
dpdkvirtio.peers.agent_main``):
JSON-RPC 2.0 (dpdkvirtio.rpc) requests on stdin, replies on stdout; the methods are the
``op_*`` functions. It ends (closing everything) on "exit", on EOF and when its parent
dies. Driven by dpdkvirtio.peers.Agent."""

import os
import signal
import sys
import threading
import time
from typing import Any

import dpdkvirtio as dv
from dpdkvirtio import rpc
from dpdkvirtio._core import vhost as _vhost
from dpdkvirtio._process import set_pdeathsig
from dpdkvirtio.events import wait_until

state: dict[str, Any] = {"ports": {}, "pmd": None, "gens": {}, "loop": None, "flows": {}}


def op_init(memory_mode="auto", cpu=0, control_cpus=None, spare_cpus=()):
    workers = {1: cpu, **{2 + k: c for k, c in enumerate(spare_cpus)}}
    eal = dv.init(memory_mode=memory_mode, workers=workers, log_level="warning")
    # keep this (control) thread off the poller's CPU, or where the caller says
    others = set(control_cpus) if control_cpus else set(os.sched_getaffinity(0)) - {cpu}
    if others:
        os.sched_setaffinity(0, others)
    return {"memory_mode": eal.memory_mode, "pid": os.getpid()}


def op_port(name, kind, path, **kw):
    cls = {"virtio-user": dv.VirtioUserPort, "vhost-server": dv.VhostUserPort,
           "vhost-client": dv.VhostUserClientPort}[kind]
    t0 = time.perf_counter()
    port = cls(path, **kw)
    seconds = time.perf_counter() - t0
    state["ports"][name] = port
    return {"name": port.name, "seconds": seconds}


def op_wait(name, what="running", timeout=10.0):
    port = state["ports"][name]
    ok = port.wait_running(timeout) if what == "running" else port.wait_link_up(timeout)
    return {"done": bool(ok)}


def _pmd():
    if state["pmd"] is None:
        state["pmd"] = dv.Pmd(lcore=1)
    return state["pmd"]


def op_gen(name, queue=0, count=0, pkt_size=64, pps=0, vars=None, tag=None, start=True,
           flow_id=None):
    port = state["ports"][name]
    fvars = [dv.FieldVar(v.pop("field"), v.pop("min"), v.pop("max"), **v) for v in (vars or [])]
    stream = dv.Stream(dv.udp_frame(pkt_size), vars=fvars, count=count,
                       mode="single_burst" if count else "continuous",
                       pps=pps or None, flow_id=flow_id)
    g = _pmd().add_generator(port, queue, stream)
    state["gens"][tag or name] = g
    if start:
        _pmd().start()
    return {}


def op_rx(name, queue=0, action="rxonly", out=None, start=True, flows=False):
    out_port = state["ports"][out] if out else None
    table = dv.FlowStats(64) if flows else None
    _pmd().add_rxq(state["ports"][name], queue, action, out_port=out_port, flows=table)
    if table is not None:
        state["flows"][name] = table
    if start:
        _pmd().start()
    return {}


def op_io(a, b, queue=0, both=True, start=True):
    """Forward a -> b (and b -> a) on the PMD."""
    pa, pb = state["ports"][a], state["ports"][b]
    _pmd().add_rxq(pa, queue, "io", out_port=pb)
    if both:
        _pmd().add_rxq(pb, queue, "io", out_port=pa)
    if start:
        _pmd().start()
    return {}


def op_total(names, key):
    return {"value": sum(state["ports"][n].stats()[key] for n in names)}


class _PyLoop(threading.Thread):
    """A Python loop over the burst API on a thread pinned to one CPU."""

    def __init__(self, port, role, cpu, burst, pkt_size):
        super().__init__(daemon=True, name=f"pyloop-{role}")
        self.port, self.role, self.cpu = port, role, cpu
        self.burst, self.tmpl = burst, dv.udp_frame(pkt_size)
        self.stop = False

    def run(self):
        os.sched_setaffinity(threading.get_native_id(), {self.cpu})
        port, n = self.port, self.burst
        b = dv.Burst(n)
        if self.role == "rx":
            rx, free = port.rx_burst, b.free
            while not self.stop:
                for _ in range(1024):
                    if rx(0, b):
                        free()
        else:
            alloc, tx, pool, tmpl = b.alloc, port.tx_burst, port.mempool, self.tmpl
            while not self.stop:
                for _ in range(1024):
                    alloc(pool, n, tmpl)
                    tx(0, b)


def op_pyloop(name, role="rx", cpu=0, burst=32, pkt_size=64):
    loop = _PyLoop(state["ports"][name], role, cpu, burst, pkt_size)
    state["loop"] = loop
    loop.start()
    return {}


def _pyloop_stop():
    loop = state.pop("loop", None)
    state["loop"] = None
    if loop is not None:
        loop.stop = True
        loop.join()
    return {}


def op_switch(name, ports, flows=(), cpu=None, other_config=None):
    """A Switch with ports [[name, type, path], ...] and flows [[in, out], ...]."""
    from dpdkvirtio.switch import Switch
    oc = dict(other_config or {})
    if cpu is not None:
        oc.setdefault("pmd-cpu-mask", hex(1 << cpu))
    sockdir = {os.path.dirname(p[2]) for p in ports if p[1] == "dpdkvhostuser"}
    if sockdir:
        oc.setdefault("vhost-sock-dir", sockdir.pop())
    sw = Switch(name, oc)
    state.setdefault("switches", {})[name] = sw
    for pname, ptype, path in ports:
        opts = {"vhost-server-path": path} if ptype == "dpdkvhostuserclient" else \
            {"dpdk-devargs": path} if ptype == "dpdk" else {}
        sw.add_port(pname, ptype, opts)
    for i, o in flows:
        sw.add_flow(i, o)
    return {}


def op_switch_wait(name, timeout=30.0):
    return {"done": state["switches"][name].wait_connected(timeout_s=timeout)}


def op_add_vhost_ports(paths, queues=1):
    """Create vhost-user server ports one by one on a shared pool, each added to the
    running PMD at once; the seconds each addition took."""
    pool = dv.Mempool(dv.mempool_size(ports=len(paths), queues=queues, rx_ring_size=0,
                                       tx_ring_size=0))
    seconds = []
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        port = dv.VhostUserPort(path, queues=queues, mempool=pool)
        for q in range(queues):
            _pmd().add_rxq(port, q, "rxonly")
        seconds.append(time.perf_counter() - t0)
        state["ports"][f"p{i}"] = port
    return {"seconds": seconds}


def op_pmd_perf(switch=None):
    """Busy/idle cycles of the agent's PMD (or of a switch's PMDs, summed)."""
    pmds = state["switches"][switch].pmds if switch else [_pmd()]
    perfs = [p.perf() for p in pmds]
    return {"perf": perfs[0], "busy_cycles": sum(p["busy_cycles"] for p in perfs),
            "idle_cycles": sum(p["idle_cycles"] for p in perfs),
            "stall_busy_cycles": sum(p["stall_busy_cycles"] for p in perfs),
            "rx_packets": sum(p["rx_packets"] for p in perfs),
            "tx_packets": sum(p["tx_packets"] for p in perfs)}


def op_pmd(action):
    p = _pmd()
    getattr(p, action)()
    return {}


def op_gen_wait(tag, timeout=30.0):
    g = state["gens"][tag]
    return {"done": g.wait_done(timeout), "built": g.built}


def op_flows(name, sent=None):
    """The FlowStats summary of port ``name``'s receiver ({flow id: flow dict}; ``sent``:
    {flow id: count} from the generators)."""
    sent = {int(k): v for k, v in (sent or {}).items()}
    return {str(k): v for k, v in state["flows"][name].summary(sent).items()}


def op_stats(name):
    port = state["ports"][name]
    return {"stats": port.stats(), "drops": port.drops(),
            "in_use": port.mempool.in_use if not port.closed else None}


def op_device_wait(name, devices=None, wait_s=1.0):
    """Wait until vhost port ``name`` has set up its ``devices``-th device (status()'s
    count) and runs it, or with ``devices=None`` until no front-end is connected
    (``vid`` -1); returns done and the status."""
    port = state["ports"][name]

    def reached():
        st = port.status()
        if devices is None:
            return st["vid"] < 0
        return st["devices"] >= devices and st["running"]
    done = wait_until(reached, wait_s, _vhost.events_fd())
    return {"done": bool(done), "status": port.status()}


def op_canary(name, byte=0xCC):
    """Fill the data room of every free mbuf of port ``name``'s mempool with ``byte``:
    bytes a receive path hands over without having written them show as canary."""
    pool = state["ports"][name].mempool
    fill = bytes([byte]) * pool.data_size
    held: list = []                          # hold them all: each free mbuf once
    try:
        while pool.available:
            burst = dv.Burst(min(512, pool.available))
            held.append(burst)
            if not burst.alloc(pool, burst.capacity, fill):
                break
        return {"filled": sum(len(b) for b in held)}
    finally:
        for burst in held:
            burst.free()


def op_drain(name, queue=0, idle_s=0.002, max_s=1.0, lo=0, hi=255, max_report=16,
             dump=None, canary=None, burst_size=32):
    """Receive from Python until rx queue ``queue`` stays empty for ``idle_s`` (at most
    ``max_s``). Reports packets, bytes, the first lengths and, for up to ``max_report``
    packets, where bytes outside [lo, hi] sit and the packet itself: [packet index,
    length, [[offset, byte]...] (the first 8), its first 64 KiB in hex]. ``dump``: a
    file (created or truncated) that receives every distinct packet whole, each as a
    4-byte little-endian length and its bytes (a packet equal to one already written is
    counted, not written again). ``canary``: each packet's first segment is overwritten
    with this byte before its mbuf goes back to the pool. ``burst_size``: packets asked
    for per poll (1 reads each chain at its own moment: more chances for a racing
    writer to be seen)."""
    import numpy as np
    port = state["ports"][name]
    burst = dv.Burst(burst_size)
    packets = nbytes = 0
    lengths: list[int] = []
    foreign: list[list] = []
    last = time.monotonic()
    end = last + max_s
    out = open(dump, "wb") if dump else None
    written: set[bytes] = set()
    try:
        while True:
            got = port.rx_burst(queue, burst)
            now = time.monotonic()
            for i in range(got):
                raw = burst.packet(i)
                if out is not None and raw not in written:
                    written.add(raw)
                    out.write(len(raw).to_bytes(4, "little") + raw)
                if canary is not None:
                    seg = burst.view(i)
                    seg[:] = bytes([canary]) * len(seg)
                    seg.release()
                data = np.frombuffer(raw, np.uint8)
                # (the whole byte range asked for: nothing to look for)
                bad = np.flatnonzero((data < lo) | (data > hi)) if lo > 0 or hi < 255 else data[:0]
                if bad.size and len(foreign) < max_report:
                    foreign.append([packets, int(data.size),
                                    [[int(o), int(data[o])] for o in bad[:8]],
                                    data[:65536].tobytes().hex()])
                if len(lengths) < 64:
                    lengths.append(int(data.size))
                packets += 1
                nbytes += int(data.size)
            burst.free()
            if got:
                last = now
            elif now - last > idle_s or now > end:
                break
    finally:
        burst.free()
        if out is not None:
            out.close()
    return {"packets": packets, "bytes": nbytes, "lengths": lengths, "foreign": foreign,
            "status": _status(port), "drops": port.drops()}


def _status(port):
    return port.status() if hasattr(port, "status") else {}


def _spare_pmd():
    """The interrupt-mode PMD of ``pmd_drain`` (on the first spare CPU)."""
    if state.get("spare_pmd") is None:
        state["spare_pmd"] = dv.Pmd(lcore=2, mode="interrupt", interrupt_timeout_ms=10_000)
    return state["spare_pmd"]


def _sink():
    """A port that takes every packet and keeps none: io's way out of an attacked port."""
    if state.get("sink") is None:
        state["sink"] = dv.VdevPort("net_nullsink0", "copy=0")
    return state["sink"]


def op_pmd_drain(name, dump, mode="poll", action="rxonly", idle_s=0.05, max_s=1.0):
    """Receive on a PMD engine rather than from Python: rx queue 0 of port ``name`` on
    the agent's PMD (``mode="poll"``: beside whatever that PMD serves) or on the spare
    PMD in interrupt mode, as ``rxonly`` or ``io`` into a null port, with a FlowStats table
    and a capture of everything received written to ``dump`` (pcapng, whole packets up
    to 65,535 bytes), until rx_packets stays still for ``idle_s`` (at most ``max_s``);
    then the assignment is removed and the capture stopped. Returns the packets and bytes
    received, the capture's result, the table's unmeasured count and, in interrupt mode, whether
    the PMD went back to waiting for a kick while the port was still assigned."""
    port = state["ports"][name]
    pmd = _pmd() if mode == "poll" else _spare_pmd()
    flows = dv.FlowStats(4)
    s0 = port.stats()
    rx0 = s0["rx_packets"]
    cap = port.capture(dump, direction="rx", snaplen=65535)
    try:
        pmd.add_rxq(port, 0, action, out_port=_sink() if action == "io" else None, flows=flows)
        try:
            if not pmd.running:
                pmd.start()
            last, seen = time.monotonic(), rx0
            end = last + max_s
            while True:
                time.sleep(0.001)
                now, rx = time.monotonic(), port.stats()["rx_packets"]
                if rx != seen:
                    last, seen = now, rx
                elif now - last > idle_s or now > end:
                    break
            asleep = None
            if mode == "interrupt":
                def waiting():
                    s = pmd.sleep_show()
                    return s["intr_arms"] > s["intr_wakeups"] + s["intr_timeouts"]
                asleep = wait_until(waiting, 0.5)
        finally:
            pmd.remove(port)
    finally:
        result = cap.stop()
    s1 = port.stats()
    return {"packets": s1["rx_packets"] - rx0, "bytes": s1["rx_bytes"] - s0["rx_bytes"],
            "capture": result,
            "unmeasured": flows.unmeasured, "asleep": asleep, "drops": port.drops(),
            "status": _status(port)}


def op_send(name, queue=0, count=1, size=64, fill=0x5A, payloads=None):
    """Send ``count`` frames of ``size`` bytes, every byte ``fill`` (or the frames
    ``payloads``, base64), from Python; returns how many the peer took and the port's
    drop counters (the rest are counted there)."""
    import base64
    port = state["ports"][name]
    frames = ([base64.b64decode(p) for p in payloads] if payloads is not None
              else [bytes([fill]) * size] * count)
    burst = dv.Burst(max(1, len(frames)))
    try:
        for frame in frames:
            if burst.alloc(port.mempool, 1, frame) != 1:
                raise dv.MempoolError(None, f"{name}'s mempool ran out of mbufs",
                                      hint="send fewer frames at once")
        sent = port.tx_burst(queue, burst)
    finally:
        burst.free()
    return {"sent": sent, "drops": port.drops(), "status": _status(port)}


def op_remove(name):
    if state["pmd"] is not None:
        state["pmd"].remove(state["ports"][name])
    return {}


def op_close(name):
    port = state["ports"].pop(name)
    if state["pmd"] is not None:
        state["pmd"].remove(port)
    port.close()
    return {}


def op_ping():
    return {"pid": os.getpid()}


def op_resources():
    """Open fds, resident memory, mbufs in use per pool of this process's ports, and per
    port with a capture tap, its (copies, format buffers) in use."""
    fds = len(os.listdir("/proc/self/fd"))
    with open("/proc/self/statm") as f:
        rss_kb = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    pools = {}
    for p in state["ports"].values():
        if not p.closed and p.mempool is not None:
            pools[p.mempool.name] = p.mempool.in_use
    taps = {name: list(p.core.capture_tap.buffers_in_use())
            for name, p in state["ports"].items()
            if not p.closed and p.core.capture_tap is not None}
    return {"fds": fds, "rss_kb": rss_kb, "in_use": pools, "capture_in_use": taps}


def op_port_status(name):
    p = state["ports"][name]
    return {"status": _status(p), "stats": p.stats()}


def op_pause(tag, paused=True):
    g = state["gens"][tag]
    g.pause() if paused else g.resume()
    return {"built": g.built}


def op_sleep(seconds):
    time.sleep(seconds)
    return {}


def op_exit():
    """Close everything this agent made; the agent ends after the reply."""
    state["exiting"] = True
    _pyloop_stop()
    for sw in state.get("switches", {}).values():
        sw.close()
    for key in ("pmd", "spare_pmd"):
        if state.get(key) is not None:
            state[key].close()
    for p in list(state["ports"].values()) + ([state["sink"]] if state.get("sink") else []):
        p.close()
    return {}


def _method(name):
    fn = globals().get(f"op_{name}")
    return fn if callable(fn) else None


def main():
    set_pdeathsig()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    known = sorted(n[3:] for n, f in globals().items() if n.startswith("op_") and callable(f))
    rpc.serve(sys.stdin.fileno(), sys.stdout.fileno(), _method, lambda: known,
              max_bytes=1 << 24, stop=lambda: state.get("exiting", False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
