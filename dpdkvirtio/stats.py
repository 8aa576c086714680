"""Counters as numpy arrays, and the arithmetic on them (pure Python over L1 buffers).

``port.counters`` (the same as ``queue_counters(port)``) is a live, read-only structured
array, one row per queue pair, written by the data path while Python reads it. Every
figure derived from counters (totals, drops by reason, busy share, cycles per packet,
rates) is computed here, once, for the API, the CLI, telemetry's twin and the benchmarks.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt

from ._core import counters as _counters  # noqa: F401  (buffer owner type)
from ._core import counters as _layouts
from ._core import flows as _flows


def _dtype_from_layout(layout: tuple[int, list[tuple[str, int]]]) -> np.dtype[np.void]:
    size, fields = layout
    dt = np.dtype({"names": [n for n, _ in fields], "formats": ["<u8"] * len(fields),
                   "offsets": [o for _, o in fields], "itemsize": size})
    # Tie the dtype to the C struct: a drift between the two must fail loudly at import.
    if dt.itemsize != size:
        raise ImportError(f"counter dtype is {dt.itemsize} bytes, the C struct {size}")
    for name, off in fields:
        if off + 8 > size:
            raise ImportError(f"counter field {name} at {off} lies outside the {size}-byte struct")
    return dt


def _pmd_dtype() -> np.dtype[np.void]:
    size, fields, hist_off, bins = _layouts.pmd_stats_layout()
    dt = np.dtype({"names": [n for n, _ in fields] + ["hist"],
                   "formats": ["<u8"] * len(fields) + [("<u8", (bins,))],
                   "offsets": [o for _, o in fields] + [hist_off], "itemsize": size})
    if dt.itemsize != size or hist_off + 8 * bins > size:
        raise ImportError(f"PMD counter dtype ({dt.itemsize} bytes) does not match the C "
                          f"struct ({size})")
    return dt


# Every counter block the data path writes, as numpy dtypes tied to the C structs' sizeof
# and offsets (checked here, at import).
QUEUE_STATS_DTYPE = _dtype_from_layout(_layouts.queue_stats_layout())
PMD_STATS_DTYPE = _pmd_dtype()
POLL_STATS_DTYPE = _dtype_from_layout(_layouts.poll_stats_layout())
FLOW_STATS_DTYPE = _dtype_from_layout(_flows.flow_layout())

# Drop counters, by reason, as the demo and the switch report them.
DROP_FIELDS = {
    "tx_failure": "tx_failure_drops",        # peer ring full after retries (OVS tx_failure_drops)
    "tx_not_ready": "tx_not_ready_drops",    # no peer / queue disabled
    "tx_nombuf": "tx_nombuf_drops",          # generator found the mempool empty
}
# Received packets dropped before anyone saw them: a driver gave an mbuf whose lengths
# run past its buffer (a hostile virtio back-end's used-ring length).
RX_DROP_FIELDS = {"rx_malformed": "rx_malformed_drops"}


def counters_array(counters: Any, dtype: np.dtype[np.void]) -> npt.NDArray[np.void]:
    """A live read-only view of an L1 Counters block as ``dtype`` rows."""
    return np.frombuffer(counters, dtype=dtype)


def queue_counters(port: Any) -> npt.NDArray[np.void]:
    """Per-queue counters of ``port`` (live view; keeps the memory alive)."""
    return counters_array(port.core.counter_block, QUEUE_STATS_DTYPE)


def totals(arr: npt.NDArray[np.void]) -> dict[str, int]:
    """Sum a structured counter array over its rows: {field: int}."""
    return {name: int(arr[name].sum()) for name in arr.dtype.names or ()}


def port_stats(port: Any) -> dict[str, int]:
    """OVS-style interface statistics of ``port``: rx_packets, rx_bytes, tx_packets,
    tx_bytes, tx_dropped (all tx reasons), tx_failure_drops, tx_not_ready_drops,
    tx_nombuf_drops, tx_retries, rx_malformed_drops, and per queue rx_q<N>_good_packets /
    tx_q<N>_good_packets."""
    arr = queue_counters(port)
    t = totals(arr)
    out = {
        "rx_packets": t["rx_packets"],
        "rx_bytes": t["rx_bytes"],
        "tx_packets": t["tx_packets"],
        "tx_bytes": t["tx_bytes"],
        "tx_dropped": sum(t[f] for f in DROP_FIELDS.values()),
        "tx_failure_drops": t["tx_failure_drops"],
        "tx_not_ready_drops": t["tx_not_ready_drops"],
        "tx_nombuf_drops": t["tx_nombuf_drops"],
        "tx_retries": t["tx_retries"],
        "rx_malformed_drops": t["rx_malformed_drops"],
        "rx_bursts": t["rx_bursts"],
        "tx_bursts": t["tx_bursts"],
    }
    for q in range(len(arr)):
        out[f"rx_q{q}_good_packets"] = int(arr["rx_packets"][q])
        out[f"rx_q{q}_good_bytes"] = int(arr["rx_bytes"][q])
        out[f"tx_q{q}_good_packets"] = int(arr["tx_packets"][q])
        out[f"tx_q{q}_good_bytes"] = int(arr["tx_bytes"][q])
    return out


def packets_handled(rx_packets: int, tx_packets: int) -> int:
    """The packets a PMD handled: each received, or made and sent (a generator), once. A
    forwarder receives and sends each packet, so it is the larger of the two counts (the
    one definition behind every cycles-per-packet figure: Pmd.perf, ctl top, and DPDK
    telemetry's ``busy_cycles_per_packet``, which computes it in C the same way)."""
    return max(int(rx_packets), int(tx_packets))


def cycles_per_packet(busy_cycles: int, rx_packets: int, tx_packets: int) -> float:
    """Busy TSC cycles per packet handled (``packets_handled``); 0.0 with none."""
    n = packets_handled(rx_packets, tx_packets)
    return busy_cycles / n if n else 0.0


def busy_pct(busy_cycles: int, idle_cycles: int) -> float:
    """A poller's busy share, %: busy / (busy + idle) TSC cycles of its poll rounds (time
    slept or waiting for a kick is neither); 0.0 before any round. DPDK telemetry's
    ``busy_permille`` is the same ratio in integer per mille."""
    total = busy_cycles + idle_cycles
    return 100.0 * busy_cycles / total if total else 0.0


def pmd_derived(c: Any, tsc_hz: int) -> dict[str, float | int]:
    """What is derived from one PMD counter row (``PMD_STATS_DTYPE``), the one definition
    that Pmd.perf, ``pmd-perf-show``, ``ctl top`` and the benchmarks use: busy %, cycles
    per packet, packets per poll (from the burst histogram) and the stalled time in ns."""
    busy, idle = int(c["busy_cycles"]), int(c["idle_cycles"])
    hist = np.asarray(c["hist"], dtype=np.int64)
    polls = int(hist.sum())
    moved = int((hist * np.arange(len(hist))).sum())
    return {"busy_pct": busy_pct(busy, idle),
            "cycles_per_packet": cycles_per_packet(busy, int(c["rx_packets"]),
                                                   int(c["tx_packets"])),
            "packets_per_poll": moved / polls if polls else 0.0,
            "stalled_ns": int(c["stall_cycles"]) * 10**9 // tsc_hz,
            "stall_max_ns": int(c["stall_max_cycles"]) * 10**9 // tsc_hz}


def rates(cur: Any, old: Any, elapsed_s: float, fields: Any) -> dict[str, float]:
    """Per-second rates of ``fields`` between two cumulative readings (dicts, or rows
    of a counter array, summed over rows). Raises ValueError for a non-positive interval."""
    if elapsed_s <= 0:
        raise ValueError(f"the interval must be positive, got {elapsed_s!r} s")
    return {f: float(np.sum(np.asarray(cur[f], dtype=np.int64)
                            - np.asarray(old[f], dtype=np.int64))) / elapsed_s
            for f in fields}


def pmd_interval(cur: dict[str, Any], old: dict[str, Any], elapsed_s: float) -> dict[str, float | None]:
    """A PMD between two ``Pmd.perf()`` readings: busy %, cycles per packet (None when it
    handled no packet), Mpps handled, the share of time slept (%) and kicks per second."""
    busy = cur["busy_cycles"] - old["busy_cycles"]
    idle = cur["idle_cycles"] - old["idle_cycles"]
    rx = cur["rx_packets"] - old["rx_packets"]
    tx = cur["tx_packets"] - old["tx_packets"]
    r = rates(cur, old, elapsed_s, ("slept_ns", "intr_wakeups"))
    return {"busy_pct": busy_pct(busy, idle),
            "cycles_per_packet": cycles_per_packet(busy, rx, tx) if max(rx, tx) else None,
            "mpps": packets_handled(rx, tx) / elapsed_s / 1e6,
            "slept_pct": r["slept_ns"] / 1e7,
            "wakeups_per_s": r["intr_wakeups"]}


def drops_by_reason(arr: np.ndarray) -> dict[str, int]:
    """Drops of a port's queues by reason (the tx reasons, then rx_malformed)."""
    return {reason: int(arr[field].sum())
            for reason, field in {**DROP_FIELDS, **RX_DROP_FIELDS}.items()}


class RateMeter:
    """Rates between successive readings of a counter array:

        meter = RateMeter(port.counters)
        ...
        rates = meter.sample()      # {field: per-second rate} since the last sample
    """

    def __init__(self, arr: np.ndarray):
        self.arr = arr
        self._last = arr.copy()
        self._t = time.perf_counter()

    def sample(self) -> dict[str, float]:
        now = time.perf_counter()
        cur = self.arr.copy()
        out = rates(cur, self._last, max(now - self._t, 1e-9), cur.dtype.names or ())
        self._last, self._t = cur, now
        return out
