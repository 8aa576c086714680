"""Measured streams, the receiving side: per-flow loss, reordering, duplicates, latency
(min/mean/max, a log-linear histogram, percentiles) and RFC 3550 jitter, counted in C on
every measured packet and read live as numpy.

    flows = dv.FlowStats(max_flows=16)
    rx = pmd_b.add_rxq(vhost_port, 0, "rxonly", flows=flows)     # the PMD accounts
    g = pmd_a.add_generator(virtio_port, 0, dv.Stream(dv.udp_frame(64), flow_id=3, pps=1e6))
    ...
    flows.percentiles(3)                 # {50: ns, 99: ns, 99.9: ns, 99.99: ns}
    flows.flow(3, sent=g.built)          # counters, latency summary, sent == received + lost

A Python receiver accounts its bursts with ``flows.account(burst)`` (one C loop per
burst). Each table has one writer: a PMD rx assignment, or the Python thread.

Latency is the receiver's TSC when the burst came out of the port minus the TSC the
sender stamped right before its enqueue; across processes this needs a TSC that runs at
one rate on every CPU and never stops (``constant_tsc`` and ``nonstop_tsc``), checked
when a table is made. Histogram buckets: exact below 128 ns, then 64 per power of two, so
a percentile (reported at its bucket's middle) is within 0.79 % of the true value, from 1
ns up to 2**38 ns (275 s; larger values fall into the last bucket, the max stays exact).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import eal as _eal_mod
from . import marker as _marker
from ._core import flows as _flows
from ._core import pmd as _pmd
from .errors import ConfigError
from .stats import FLOW_STATS_DTYPE, counters_array

LAT_BUCKETS: int = _flows.LAT_BUCKETS
LAT_SUB: int = _flows.LAT_SUB
SEQ_WINDOW: int = _flows.SEQ_WINDOW
DEFAULT_PERCENTILES = (50.0, 99.0, 99.9, 99.99)

if (_marker.OFFSET, _marker.MIN_FRAME) != (_flows.MARK_OFFSET, _flows.MARK_MIN_FRAME):
    raise ImportError("marker.py and the C data path disagree on the marker layout: rebuild")


def bucket_bounds() -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """(lowest value, width) in ns of every histogram bucket."""
    i = np.arange(LAT_BUCKETS, dtype=np.uint64)
    shift = np.where(i < 2 * LAT_SUB, 0, i // LAT_SUB - 1).astype(np.uint64)
    low = np.where(i < 2 * LAT_SUB, i, (i - shift * LAT_SUB) << shift).astype(np.uint64)
    return low, (np.uint64(1) << shift).astype(np.uint64)


_LOW, _WIDTH = bucket_bounds()
_MID = _LOW.astype(np.float64) + (_WIDTH.astype(np.float64) - 1) / 2


def tsc() -> int:
    """The TSC now (what the C generator stamps; for Python senders and receivers)."""
    return int(_pmd.rdtsc())


def tsc_hz() -> int:
    return int(_pmd.tsc_hz())


def invariant_tsc_problem(cpuinfo_path: str = "/proc/cpuinfo") -> str | None:
    """Why TSC timestamps cannot be compared across CPUs and processes here, or None."""
    try:
        with open(cpuinfo_path) as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError as e:
        return f"cannot read {cpuinfo_path}: {e}"
    missing = [f for f in ("constant_tsc", "nonstop_tsc") if f not in flags]
    if missing:
        return (f"the CPU lacks {' and '.join(missing)}: its TSC may run at different rates "
                "or stop, so sender and receiver timestamps cannot be compared")
    return None


def percentiles_of(hist: npt.ArrayLike, q: Iterable[float] = DEFAULT_PERCENTILES,
                   lat_min_ns: int | None = None,
                   lat_max_ns: int | None = None) -> dict[float, float | None]:
    """Percentiles (ns) of one histogram row; each reported at the middle of the bucket
    holding it, clamped to the exact min/max when given. None when the row is empty."""
    qs = [float(x) for x in q]
    for x in qs:
        if not 0 < x <= 100 or math.isnan(x):
            raise ConfigError(f"percentiles lie in (0, 100], got {x!r}")
    counts = np.asarray(hist, dtype=np.uint64)
    total = int(counts.sum())
    if total == 0:
        return {x: None for x in qs}
    cum = np.cumsum(counts)
    out: dict[float, float | None] = {}
    for x in qs:
        rank = max(1, math.ceil(x / 100.0 * total))
        v = float(_MID[int(np.searchsorted(cum, rank))])
        if lat_min_ns is not None:
            v = max(v, float(lat_min_ns))
        if lat_max_ns is not None:
            v = min(v, float(lat_max_ns))
        out[x] = v
    return out


class FlowStats:
    """Per-flow counters and latency histograms for flow ids ``0..max_flows-1``.

    ``counters`` is a live structured array (FLOW_STATS_DTYPE, one row per flow id) and
    ``histograms`` a live ``(max_flows, LAT_BUCKETS)`` uint64 array; both are written by
    the table's one writer while the data plane runs (readers may see a row mid-update).
    Fields: received (unique packets), bytes, lost (sequence gaps not filled later),
    out_of_order (filled a gap), duplicates, stale (older than the last 1024 sequence
    numbers: neither counted received nor lost), lat_min/max/sum_ns, jitter_ns16 (16x the
    RFC 3550 estimate), next_seq, clock_errors (stamped in the receiver's future).
    A loss at the very end of a flow is seen only against the sender's count:
    ``flow(i, sent=...)``.

    Raises ConfigError for a table size outside 1..65536, and when this host's TSC is
    not invariant (see ``invariant_tsc_problem``).
    """

    def __init__(self, max_flows: int = 256):
        _eal_mod.ensure()
        if isinstance(max_flows, bool) or not isinstance(max_flows, int) \
                or not 1 <= max_flows <= _marker.MAX_FLOW_ID + 1:
            raise ConfigError(f"max_flows must be 1..{_marker.MAX_FLOW_ID + 1}, got {max_flows!r}")
        problem = invariant_tsc_problem()
        if problem:
            raise ConfigError(f"latency measurement refused: {problem}")
        self.table = _flows.FlowTable(max_flows)
        self.counters = counters_array(self.table.rows, FLOW_STATS_DTYPE)
        hist: Any = self.table.hist                        # exports the buffer protocol
        self.histograms = np.frombuffer(hist, dtype=np.uint64).reshape(
            max_flows, LAT_BUCKETS)

    @property
    def max_flows(self) -> int:
        return int(self.table.n_flows)

    @property
    def unknown_flow(self) -> int:
        """Measured packets whose flow id is >= max_flows."""
        return int(self.table.unknown_flow)

    @property
    def unmeasured(self) -> int:
        """Packets without a marker seen by this table's receiver."""
        return int(self.table.unmeasured)

    @property
    def writer(self) -> int | None:
        """The lcore of the PMD writing this table, or None (the Python thread)."""
        w = int(self.table.writer)
        return None if w < 0 else w

    def account(self, burst, rx_tsc: int | None = None) -> None:
        """Count the measured packets of a burst this thread received (one C loop), at TSC
        ``rx_tsc`` (default: now; ``tsc()`` read right after the rx is the honest value)."""
        self.table.account(burst, rx_tsc)

    def reset(self, timeout_s: float = 5.0) -> None:
        """Zero all counters and histograms, done by the writer (race-free); returns once
        done. Sequence tracking restarts with each flow's next packet."""
        self.table.reset(timeout_s)

    def _check(self, flow_id: object) -> int:
        if isinstance(flow_id, bool) or not isinstance(flow_id, (int, np.integer)) \
                or not 0 <= int(flow_id) < self.max_flows:
            raise ConfigError(f"flow {flow_id!r} is not in this table (flow ids 0.."
                              f"{self.max_flows - 1}; make FlowStats(max_flows=...) larger)")
        return int(flow_id)

    def histogram(self, flow_id: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64],
                                                npt.NDArray[np.uint64]]:
        """(lowest ns, width ns, count) of the non-empty buckets of a flow (a snapshot)."""
        counts = self.histograms[self._check(flow_id)].copy()
        nz = np.nonzero(counts)[0]
        return _LOW[nz], _WIDTH[nz], counts[nz]

    def percentiles(self, flow_id: int,
                    q: Sequence[float] = DEFAULT_PERCENTILES) -> dict[float, float | None]:
        """Latency percentiles of a flow in ns (None while it has no packets)."""
        row = self.counters[self._check(flow_id)]
        return percentiles_of(self.histograms[flow_id].copy(), q,
                              int(row["lat_min_ns"]), int(row["lat_max_ns"]))

    def active(self) -> list[int]:
        """Flow ids that received a packet or saw a gap."""
        c = self.counters
        return [int(i) for i in np.nonzero((c["received"] > 0) | (c["lost"] > 0)
                                           | (c["duplicates"] > 0) | (c["stale"] > 0))[0]]

    def flow(self, flow_id: int, sent: int | None = None) -> dict:
        """A snapshot of one flow: counters, latency summary (ns), jitter (ns), and given
        the sender's ``sent`` count, ``tail_lost`` (sent beyond the last sequence number
        seen) and ``lost_total`` = lost + tail_lost, so that sent == received + lost_total."""
        i = self._check(flow_id)
        row = self.counters[i].copy()
        d: dict[str, Any] = {name: int(row[name]) for name in FLOW_STATS_DTYPE.names or ()}
        received = d["received"]
        d["flow_id"] = i
        d["lat_mean_ns"] = d["lat_sum_ns"] / received if received else None
        d["jitter_ns"] = d["jitter_ns16"] / 16.0
        pct = percentiles_of(self.histograms[i].copy(), DEFAULT_PERCENTILES,
                             d["lat_min_ns"], d["lat_max_ns"])
        d.update({f"p{q:g}_ns": v for q, v in pct.items()})
        span = d["last_rx_tsc"] - d["first_rx_tsc"]
        d["rx_pps"] = (received - 1) / (span * self.table.ns_per_tsc * 1e-9) \
            if received > 1 and span else None
        if sent is not None:
            d["sent"] = int(sent)
            d["tail_lost"] = max(0, int(sent) - d["next_seq"])
            d["lost_total"] = d["lost"] + d["tail_lost"]
        return d

    def summary(self, sent: dict[int, int] | None = None) -> dict[int, dict]:
        """flow(i) for every active flow (and every flow in ``sent``)."""
        ids = sorted(set(self.active()) | set(sent or {}))
        return {i: self.flow(i, (sent or {}).get(i)) for i in ids}

    def __repr__(self):
        return f"<FlowStats max_flows={self.max_flows} active={len(self.active())}>"
