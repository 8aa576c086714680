"""A second dpdkvirtio process for integration tests: JSON commands on stdin, one JSON
reply per line on stdout. It ends (closing everything) on "exit", on EOF and when its
parent dies."""

import ctypes
import json
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dpdkvirtio as dv  # noqa: E402

state = {"ports": {}, "pmd": None, "gens": {}}


def _pdeathsig():
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)
    except OSError:
        pass


def op_init(memory_mode="auto", cpu=0):
    eal = dv.init(memory_mode=memory_mode, workers={1: cpu}, log_level="warning")
    return {"memory_mode": eal.memory_mode, "pid": os.getpid()}


def op_port(name, kind, path, **kw):
    cls = {"virtio-user": dv.VirtioUserPort, "vhost-server": dv.VhostUserPort,
           "vhost-client": dv.VhostUserClientPort}[kind]
    port = cls(path, **kw)
    state["ports"][name] = port
    return {"name": port.name}


def op_wait(name, what="running", timeout=10.0):
    port = state["ports"][name]
    ok = port.wait_running(timeout) if what == "running" else port.wait_link_up(timeout)
    return {"done": bool(ok)}


def _pmd():
    if state["pmd"] is None:
        state["pmd"] = dv.Pmd(lcore=1)
    return state["pmd"]


def op_gen(name, queue=0, count=0, pkt_size=64, pps=0, vars=None, tag=None, start=True):
    port = state["ports"][name]
    fvars = [dv.FieldVar(**v) for v in (vars or [])]
    stream = dv.Stream(dv.udp_frame(pkt_size), vars=fvars, count=count,
                       mode="single_burst" if count else "continuous",
                       pps=pps or None)
    g = _pmd().add_generator(port, queue, stream)
    state["gens"][tag or name] = g
    if start:
        _pmd().start()
    return {}


def op_rx(name, queue=0, action="rxonly", out=None, start=True):
    out_port = state["ports"][out] if out else None
    _pmd().add_rxq(state["ports"][name], queue, action, out_port=out_port)
    if start:
        _pmd().start()
    return {}


def op_pmd(action):
    p = _pmd()
    getattr(p, action)()
    return {}


def op_gen_wait(tag, timeout=30.0):
    g = state["gens"][tag]
    return {"done": g.wait_done(timeout), "built": g.built}


def op_stats(name):
    port = state["ports"][name]
    return {"stats": port.stats(), "drops": port.drops(),
            "in_use": port.mempool.in_use if not port.closed else None}


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


def op_sleep(seconds):
    time.sleep(seconds)
    return {}


def main():
    _pdeathsig()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for line in sys.stdin:
        msg = json.loads(line)
        op = msg.pop("op")
        if op == "exit":
            if state["pmd"] is not None:
                state["pmd"].close()
            for p in list(state["ports"].values()):
                p.close()
            print(json.dumps({"ok": True}), flush=True)
            return 0
        try:
            reply = globals()[f"op_{op}"](**msg)
            reply["ok"] = True
        except Exception as e:  # noqa: BLE001 - reported to the test
            reply = {"ok": False, "type": type(e).__name__, "error": str(e),
                     "trace": traceback.format_exc()}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
