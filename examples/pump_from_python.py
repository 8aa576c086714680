"""Pump packets at line rate from a Python loop: the burst API, no Python object per
packet. This thread sends 64-byte UDP frames out of a virtio-user port (the guest side);
a PMD thread on the last CPU receives them on the vhost-user back-end and counts.

    python examples/pump_from_python.py --seconds 3 [--size 64] [--burst 32] [--json]

It prints the send rate, what the back-end received and what was dropped; received ==
sent - dropped exactly, from the ports' own counters.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import dpdkvirtio as dv


def pump(seconds: float, size: int = 64, burst_size: int = 32) -> dict:
    cpus = sorted(os.sched_getaffinity(0))
    sockdir = tempfile.mkdtemp(prefix="dvpump-", dir="/tmp")
    backend = guest = pmd = None
    try:
        backend = dv.VhostUserPort(os.path.join(sockdir, "vhu0.sock"))
        guest = dv.VirtioUserPort(backend.path, queue_size=1024)
        if not backend.wait_running(10):
            raise RuntimeError("the virtio-user port never brought the vhost device up")
        pmd = dv.Pmd(cpu=cpus[-1])                       # the receiver: a C poll loop
        pmd.add_rxq(backend, 0, "rxonly")
        pmd.start()
        os.sched_setaffinity(0, {cpus[0]})              # this thread: the sender
        burst = dv.Burst(burst_size)
        frame = dv.udp_frame(size)
        alloc, tx, pool = burst.alloc, guest.tx_burst, guest.mempool
        t0 = time.perf_counter()
        end = t0 + seconds
        while time.perf_counter() < end:
            for _ in range(1024):                        # the hot loop: two calls a burst
                alloc(pool, burst_size, frame)
                tx(0, burst)
        elapsed = time.perf_counter() - t0
        sent = guest.stats()
        received = backend.stats()["rx_packets"]
        deadline = time.monotonic() + 5                  # let the ring drain
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = backend.stats()["rx_packets"]
            if now == received:
                break
            received = now
        return {"seconds": round(elapsed, 3), "size": size, "burst": burst_size,
                "sent": sent["tx_packets"], "dropped": sent["tx_dropped"],
                "received": received, "mpps": round(sent["tx_packets"] / elapsed / 1e6, 3),
                "memory_mode": dv.current().memory_mode}
    finally:
        if pmd is not None:
            pmd.close()
        for port in (guest, backend):
            if port is not None:
                port.close()
        shutil.rmtree(sockdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--size", type=int, default=64, help="frame bytes (60..1514)")
    ap.add_argument("--burst", type=int, default=32, help="packets per tx_burst (1..512)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    dv.init(log_level="warning")
    r = pump(args.seconds, args.size, args.burst)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"sent {r['sent']:,} in {r['seconds']} s from Python: {r['mpps']} Mpps "
              f"({r['size']} B, bursts of {r['burst']}); received {r['received']:,}, "
              f"dropped {r['dropped']:,} (memory {r['memory_mode']})")
    return 0 if r["received"] == r["sent"] else 1


if __name__ == "__main__":
    sys.exit(main())
