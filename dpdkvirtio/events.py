"""vhost-user events: the state changes DPDK's vhost threads report (connections,
devices, vrings, features, refusals), drained from the L1 event ring without the GIL on
DPDK's side, and waiting helpers built on the ring's eventfd.

    for ev in dv.poll_events():
        print(ev.kind, ev.port, ev.queue)
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from . import eal as _eal_mod
from ._core import vhost as _vhost

log = logging.getLogger("dpdkvirtio.events")


class VhostEvent(NamedTuple):
    """A vhost-user state change, in the order DPDK reported it."""
    kind: str          # new_connection, new_device, vring_state_changed, features_changed,
                       # destroy_device, destroy_connection
    port: object       # the VhostUserPort / VhostUserClientPort (None if it was closed)
    vid: int
    queue: int         # vring index (vring_state_changed) or number of vrings (new_device)
    enable: int
    features: int
    tsc: int


_events_lock = threading.Lock()


def _ports_by_slot() -> dict:
    """(slot, generation) → open vhost-user port of this process (from the EAL's registry)."""
    if not _eal_mod.alive():
        return {}
    return {(p.core.slot, p.core.generation): p for p in _eal_mod.current().objects()
            if isinstance(getattr(p, "core", None), _vhost.VhostPort) and not p.closed}


def poll_events() -> list[VhostEvent]:
    """Drain the vhost event ring: return every new event and queue each on its port
    (``port.events()``). Safe from any thread; never blocks."""
    with _events_lock:
        raw = _vhost.drain_events()
        out = []
        by_slot = _ports_by_slot() if raw else {}
        for kind, slot, gen, vid, queue, enable, features, tsc in raw:
            port = by_slot.get((slot, gen))
            ev = VhostEvent(kind, port, vid, queue, enable, features, tsc)
            out.append(ev)
            if port is not None:
                port.deliver_event(ev)
                if kind == "new_device" and queue > 2 * port.n_queues:
                    log.warning("%s: the front-end uses %d queue pairs, the port serves %d; "
                                "the others are not polled", port.name, queue // 2, port.n_queues)
            log.debug("vhost event %s on %s vid=%d queue=%d enable=%d", kind,
                      port.name if port is not None else f"slot{slot}", vid, queue, enable)
        lost = _vhost.events_lost()
        if lost:
            log.debug("%d vhost events were dropped before being drained", lost)
        return out


def events_fd() -> int:
    """Readable when vhost events are waiting (for select/asyncio add_reader)."""
    return _vhost.events_fd()


def wait_until(predicate: Callable[[], bool], timeout_s: float | None,
               fd: int | None = None) -> bool:
    """Poll ``predicate`` until true (True) or ``timeout_s`` (False); with ``fd`` (the
    event ring's) drain the events meanwhile and wake on them."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        if fd is not None:
            poll_events()
        if predicate():
            return True
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        step = 0.05 if remaining is None else min(0.05, remaining)
        if fd is not None:
            select.select([fd], [], [], step)
        else:
            time.sleep(step)
