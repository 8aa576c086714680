"""What a side costs, not what its counterpart allowed (pure; unit-tested without DPDK).

A throughput ratio of two sides that both waited for the same feeder measures the feeder.
So every measured poller reports cumulative cycles; over the measurement window they
give its busy cycles per packet and its busy share. A side whose poller was busy at least
``SELF_BOUND_PCT`` of the window set its own rate ("self"); otherwise its counterpart did
("counterpart"). A scenario's summary ratio is the throughput ratio when both sides were
self-bound, else the inverse ratio of busy cycles per packet (what each side spends on a
packet, whatever the rate was).
"""

from __future__ import annotations

SELF_BOUND_PCT = 95.0


def window(c0: dict, c1: dict, elapsed_s: float) -> dict:
    """Busy cycles per packet and busy share (%) between two cumulative readings
    ``{"busy", "packets", "total" (None: use elapsed_s x hz), "hz"}``."""
    busy = c1["busy"] - c0["busy"]
    packets = c1["packets"] - c0["packets"]
    if c1.get("total") is not None and c0.get("total") is not None:
        total = c1["total"] - c0["total"]
    elif c1.get("hz"):
        total = elapsed_s * c1["hz"]
    else:
        total = 0
    return {"cycles_per_packet": busy / packets if packets > 0 and busy >= 0 else None,
            "busy_pct": min(100.0, 100.0 * busy / total) if total > 0 else None}


def bound(busy_pct: float | None) -> str | None:
    """'self' when the poller was (nearly) always busy, 'counterpart' when it waited."""
    if busy_pct is None:
        return None
    return "self" if busy_pct >= SELF_BOUND_PCT else "counterpart"


def summary_ratio(ours_mpps, peer_mpps, ours_cpp, peer_cpp, ours_bound, peer_bound):
    """(ratio ours/peer, basis): throughput when both sides were self-bound (or nothing
    else is known), else the peer's busy cycles per packet over ours."""
    both_self = ours_bound == "self" and peer_bound == "self"
    if not both_self and ours_cpp and peer_cpp:
        return round(peer_cpp / ours_cpp, 3), "cycles"
    if ours_mpps and peer_mpps:
        return round(ours_mpps / peer_mpps, 3), "mpps"
    return None, None
