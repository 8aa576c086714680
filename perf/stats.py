"""Rates from cumulative counters, and summaries of trials."""

from __future__ import annotations

import statistics
import time


def sample_rate(read, seconds: float, warmup_s: float = 1.0, period_s: float = 1.0,
                cycles=None) -> dict:
    """Read the cumulative packet counter ``read()`` every ``period_s`` for ``seconds``
    after ``warmup_s``; the median of the per-period rates (packets/s) and the periods.
    ``cycles()``, when given, returns (busy, idle) TSC cycles of our poller: the share of
    time it was busy over the window tells whether it or its peer set the rate."""
    time.sleep(warmup_s)
    cyc0 = cycles() if cycles else None
    c0, t0 = read(), time.monotonic()
    rates = []
    end = t0 + seconds
    while True:
        time.sleep(max(0.0, min(period_s, end - time.monotonic())))
        c1, t1 = read(), time.monotonic()
        if t1 - t0 > 1e-3:
            rates.append((c1 - c0) / (t1 - t0))
        c0, t0 = c1, t1
        if t1 >= end - 1e-3:
            break
    out = {"pps": statistics.median(rates) if rates else 0.0, "periods": rates}
    if cycles:
        b1, i1 = cycles()
        busy, idle = b1 - cyc0[0], i1 - cyc0[1]
        out["busy_pct"] = 100.0 * busy / (busy + idle) if busy + idle else None
    return out


def summary(values: list[float]) -> dict:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
