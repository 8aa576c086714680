"""Rates from cumulative counters, and summaries of trials."""

from __future__ import annotations

import statistics
import time

from perf import capacity


def sample_rate(read, seconds: float, warmup_s: float = 1.0, period_s: float = 1.0,
                cycles=None) -> dict:
    """Read the cumulative packet counter ``read()`` every ``period_s`` for ``seconds``
    after ``warmup_s``; the median of the per-period rates (packets/s) and the periods.
    ``cycles()``, when given, returns the measured poller's cumulative cycles (see
    perf.capacity.window): its busy cycles per packet and busy share over the window are
    added (``cycles_per_packet``, ``busy_pct``)."""
    time.sleep(warmup_s)
    cyc0 = cycles() if cycles else None
    tc0 = time.monotonic()
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
        cyc1 = cycles()
        out.update(capacity.window(cyc0, cyc1, time.monotonic() - tc0))
    return out


def summary(values: list[float]) -> dict:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
