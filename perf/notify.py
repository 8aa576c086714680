"""python -m perf notify: what sleeping and interrupt mode cost and save (issue 14).

The receiving PMD (rxonly with a FlowStats table, on the back CPU) runs in each mode —
pure polling, pmd-sleep-max 50 and 300 us, interrupt — fed by our measured generator
through virtio-user at 0, 10 kpps, 1 Mpps and unpaced. Recorded per mode and load: the
receiving thread's CPU share (utime + stime from /proc), the rate it received, and the
latency p50/p99 of the measured flow.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
import time
from pathlib import Path

from dpdkvirtio.peers import unique_prefix
from perf.setups import BACK, FRONT, start_pair, steal_ms, warmup_s

MODES = {"poll": {}, "sleep-50us": {"sleep_max_us": 50}, "sleep-300us": {"sleep_max_us": 300},
         "interrupt": {"mode": "interrupt"}}
LOADS = {"idle": 0.0, "1kpps": 1e3, "10kpps": 1e4, "1mpps": 1e6, "max": None}


def thread_cpu_s(lcore: int) -> float:
    for t in glob.glob("/proc/self/task/*"):
        if Path(t, "comm").read_text().strip() == f"rte-worker-{lcore}":
            f = Path(t, "stat").read_text().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    raise RuntimeError(f"no thread for lcore {lcore}")


def one(dv, sockdir: str, mode_kw: dict, pps: float | None, seconds: float) -> dict:
    v, u = start_pair(dv, sockdir)
    a, b = dv.Pmd(cpu=FRONT), dv.Pmd(cpu=BACK, **mode_kw)
    try:
        flows = dv.FlowStats(max_flows=2)
        b.add_rxq(v, 0, "rxonly", flows=flows)
        g = None
        if pps != 0.0:
            g = a.add_generator(u, 0, dv.Stream(dv.udp_frame(64), flow_id=1, pps=pps))
        b.start()
        a.start()
        time.sleep(warmup_s(seconds))
        flows.reset()
        rx0, cpu0, t0, st0 = v.stats()["rx_packets"], thread_cpu_s(b.lcore), time.monotonic(), steal_ms()
        time.sleep(seconds)
        rx1, cpu1, t1, st1 = v.stats()["rx_packets"], thread_cpu_s(b.lcore), time.monotonic(), steal_ms()
        if g is not None:
            g.pause()
        f = flows.flow(1)
        s = b.sleep_show()
        return {"cpu_share": (cpu1 - cpu0) / (t1 - t0), "mpps": (rx1 - rx0) / (t1 - t0) / 1e6,
                "p50_us": None if f["p50_ns"] is None else f["p50_ns"] / 1e3,
                "p99_us": None if f["p99_ns"] is None else f["p99_ns"] / 1e3,
                "lost": f["lost"], "steal_ms": st1 - st0,
                "intr_wakeups": s["intr_wakeups"], "sleeps": s["iterations_slept"]}
    finally:
        a.close()
        b.close()
        u.close()
        v.close()


def run(seconds: float = 3.0, memory_mode: str = "auto", log=print) -> dict:
    import dpdkvirtio as dv
    dv.init(memory_mode=memory_mode, file_prefix=unique_prefix("perfn"), log_level="error",
            workers={1: FRONT, 2: BACK})
    sockdir = tempfile.mkdtemp(prefix="dvperfn-", dir="/tmp")
    out: dict = {}
    for mode, kw in MODES.items():
        out[mode] = {}
        for load, pps in LOADS.items():
            r = one(dv, sockdir, kw, pps, seconds)
            out[mode][load] = r
            log(f"{mode:12} {load:7}: cpu {r['cpu_share'] * 100:5.1f}%  {r['mpps']:.3f} Mpps  "
                f"p50 {r['p50_us']} us  p99 {r['p99_us']} us  lost {r['lost']}  "
                f"steal {r['steal_ms']:.0f} ms")
    return out


def format_table(r: dict) -> str:
    lines = ["| mode | load | CPU % | Mpps | p50 us | p99 us | lost | wake-ups | host steal ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for mode, loads in r.items():
        for load, x in loads.items():
            p50 = "-" if x["p50_us"] is None else f"{x['p50_us']:.1f}"
            p99 = "-" if x["p99_us"] is None else f"{x['p99_us']:.1f}"
            lines.append(f"| {mode} | {load} | {x['cpu_share'] * 100:.1f} | {x['mpps']:.3f} | "
                         f"{p50} | {p99} | {x['lost']} | {x['intr_wakeups']} | {x['steal_ms']:.0f} |")
    return "\n".join(lines)


def cmd_notify(args) -> int:
    r = run(args.seconds, args.memory_mode)
    print(format_table(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0
