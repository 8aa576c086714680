"""Adversarial virtqueues against vhost-user ports in another process (the target, a
``dpdkvirtio.peers.Agent``): each case is one connection of the hostile driver
(``hostile.Driver``) that writes one family's bad ring contents (``ringcases``), kicks,
and has the target receive (``drain``: the guest's tx ring, dequeued by
rte_vhost_dequeue_burst) or send (``send``: the guest's rx ring, rte_vhost_enqueue_burst).
Then the verdicts:

- the target answered (it survived);
- **no disclosure**: every byte of every packet the target dequeued is a pattern byte of
  guest memory (0x80..0xBC, see ``hostile``), the two bytes of a software checksum the
  back-end writes where the header asked for one (``NEEDS_CSUM``, only on the port
  offering host offloads), or guest memory found in the ring region (``foreign_runs``);
  on the rx side every guest byte the back-end changed lies inside a buffer the guest
  offered (bar DPDK 22.11's short-header write, within its bound) and holds the packets'
  fill byte 0x5A, a zero, or one of two ``num_buffers`` bytes per used element;
- what happened to the port: ``refused`` (the device never started), ``disconnected``
  (the back-end hung up), ``carried`` (packets moved) or ``dropped`` (the device ran and
  moved nothing: the bad descriptors were refused).

Every case derives from (seed, index); a failure names the command that replays it
against a target of its own:

    python -m tests.reliability.ringfuzz SOCKET_DIR SEED INDEX
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from tests.reliability import hostile as H
from tests.reliability.ringcases import (
    FAMILIES,
    FILL,
    MAY_REFUSE,
    NEEDS_CSUM,
    NET_HDR,
    OFFLOAD_FAMILIES,
    RX_FAMILIES,
    Ctx,
    case_seed,
    placement,
)


@dataclass
class Result:
    index: int
    family: str
    packed: bool = False
    note: str = ""
    outcome: str = ""          # refused / disconnected / carried / dropped
    packets: int = 0
    read_only_written: bool = False
    known_issue: str = ""
    problems: list[str] = field(default_factory=list)


def foreign_runs(packet: bytes, csum_at: set[int], ring: bytes, context: int = 8):
    """The runs of non-pattern bytes in ``packet`` that are not guest memory: a run is
    explained by the checksum bytes the back-end writes (``csum_at``) or by being found,
    with up to ``context`` neighbouring packet bytes on one side or on both (or alone
    when at least 4 bytes long), in the ring region's contents (tables and headers a
    back-end may legitimately copy as data when it ignores a flag). Returns [(offset,
    hex)] of the unexplained runs."""
    data = np.frombuffer(packet, np.uint8)
    foreign = (data < H.PATTERN_LO) | (data > H.PATTERN_HI)
    for o in csum_at:
        if o < data.size:
            foreign[o] = False
    out = []
    idx = np.flatnonzero(foreign)
    if idx.size == 0:
        return out
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]])) + 1
    for s, e in zip(starts.tolist(), ends.tolist()):
        lo, hi = max(0, s - context), min(len(packet), e + context)
        windows = [packet[lo:hi], packet[lo:e], packet[s:hi]]
        if e - s >= 4:
            windows.append(packet[s:e])
        if not any(len(w) >= 4 and w in ring for w in windows):
            out.append((s, packet[s:e][:32].hex()))
    return out


class Runner:
    """Runs cases against the target's ports: ``plain`` (default features) and
    ``offloads`` (host offloads offered), both polled by the target's Python thread."""

    def __init__(self, agent, paths: dict[str, str], seed: int):
        self.agent, self.paths, self.seed = agent, paths, seed
        self.mem = H.GuestMemory()
        self.devices = {name: agent.call("port_status", name=name)["status"]["devices"]
                        for name in paths}
        self.sent_total = 0

    def family_of(self, index: int) -> str:
        return list(FAMILIES)[index % len(FAMILIES)]

    def run(self, index: int) -> Result:
        rng = random.Random(case_seed(self.seed, index))
        family = self.family_of(index)
        port = "offloads" if family in OFFLOAD_FAMILIES else "plain"
        res = Result(index, family, packed=rng.random() < 0.4)
        self.mem.reset()
        want = (1 << H.F_INDIRECT_DESC) | (1 << H.F_MRG_RXBUF) | (
            H.HOST_OFFLOADS if port == "offloads" else 0)
        drv = H.Driver(self.paths[port], self.mem, want, res.packed)
        ctx = None
        try:
            addresses, where = (placement(rng, self.mem) if family == "ring_placement" else (None, ""))
            drv.handshake(addresses)
            drv.send(H.GET_FEATURES)                     # answered once all before it is handled
            try:
                drv._reply()
            except (ConnectionError, OSError):
                pass
            res.packed = drv.packed
            up = self.agent.call("device_wait", name=port, devices=self.devices[port] + 1,
                                 wait_s=0.05)
            self.devices[port] = up["status"]["devices"]
            if not up["done"]:
                res.outcome = "refused"
                if family not in MAY_REFUSE:
                    res.problems.append(f"the device did not start: {up['status']}")
                return res
            ctx = Ctx(rng, self.mem, drv)
            ctx.placement_note = where
            res.note = FAMILIES[family](ctx)
            if family in RX_FAMILIES:
                self._send(ctx, port, res)
            else:
                self._drain(ctx, port, res)
            if res.outcome == "" and drv.closed_by_peer():
                res.outcome = "disconnected"
            res.outcome = res.outcome or ("carried" if res.packets else "dropped")
            return res
        finally:
            if ctx is not None:
                ctx.finish()
            drv.close()
            gone = self.agent.call("device_wait", name=port, devices=None, wait_s=5.0)
            if not gone["done"]:
                res.problems.append(f"the connection did not end: {gone['status']}")

    def _drain(self, ctx: Ctx, port: str, res: Result):
        # the target dequeues only when the drain polls, so without a thread of the case
        # still writing (TOCTOU, storms) the first empty poll means the ring is done
        out = self.agent.call("drain", name=port, lo=H.PATTERN_LO, hi=H.PATTERN_HI,
                              idle_s=0.002 if ctx.threads else 0.0, max_s=0.5)
        ctx.finish()
        res.packets = out["packets"]
        csum_at = set()
        if port == "offloads":
            for h in ctx.headers:
                flags, _g, _hl, _gs, start, offset, _nb = struct.unpack("<BBHHHHH", h)
                if flags & NEEDS_CSUM:                   # DPDK's offset is a uint16_t
                    csum_at |= {(start + offset) & 0xFFFF, (start + offset + 1) & 0xFFFF}
        ring = self.mem.ring_bytes()
        for pkt, length, _bad, data_hex in out["foreign"]:
            unexplained = foreign_runs(bytes.fromhex(data_hex), csum_at, ring)
            if unexplained:
                res.problems.append(f"disclosure: packet {pkt} ({length} bytes) holds bytes "
                                    f"that are not guest memory: (offset, bytes) {unexplained}")

    def _send(self, ctx: Ctx, port: str, res: Result):
        count = ctx.rng.randrange(1, 33)
        size = ctx.rng.choice([60, 64, 100, 1500])
        drops0 = sum(self.agent.call("stats", name=port)["drops"].values())
        out = self.agent.call("send", name=port, count=count, size=size, fill=FILL)
        ctx.finish()
        res.packets = out["sent"]
        dropped = sum(out["drops"].values()) - drops0
        if out["sent"] + dropped != count:
            res.problems.append(f"{count} sent: {out['sent']} taken + {dropped} counted drops")
        used = ctx.rx.used_entries()
        outside = self.mem.changed_outside(ctx.offered)
        if outside:
            # the known DPDK 22.11 write past a buffer that follows one shorter than the
            # header: from that buffer's start + up to 11 bytes, one packet long
            short = [(gpa, NET_HDR + size) for gpa, n in ctx.offered if n < NET_HDR]
            if short and not self.mem.changed_outside(ctx.offered + short):
                res.known_issue = "rx_short_header"
            else:
                res.problems.append(f"the back-end wrote outside the buffers the guest offered: {outside}")
        # DPDK 22.11 does not check VRING_DESC_F_WRITE: it fills device-readable buffers
        # too (guest memory the guest offered; counted, not a host matter)
        res.read_only_written = bool(self.mem.changed_inside(ctx.read_only))
        values = self.mem.changed_values()
        odd = values[(values != FILL) & (values != 0)]
        if odd.size > 2 * len(used):
            res.problems.append(f"disclosure: {odd.size} written bytes are neither the packets' "
                                f"0x5A nor zero nor num_buffers fields ({len(used)} used "
                                f"elements): {odd[:16].tolist()}")

    def close(self):
        self.mem.close()


def summarize(results: list[Result]) -> dict:
    by_family: dict[str, Counter] = {}
    for r in results:
        key = r.family + ("/packed" if r.packed else "/split")
        by_family.setdefault(key, Counter())[r.outcome] += 1
    return {k: dict(v) for k, v in sorted(by_family.items())}


def main(argv=None):
    import sys

    from dpdkvirtio.peers import Agent
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m tests.reliability.ringfuzz SOCKET_DIR SEED INDEX", file=sys.stderr)
        return 2
    sockdir, seed, index = args[0], int(args[1]), int(args[2])
    with Agent("no-huge") as ag:
        paths = start_target(ag, sockdir)
        runner = Runner(ag, paths, seed)
        try:
            print(runner.run(index))
        finally:
            runner.close()
    return 0


def start_target(ag, sockdir: str) -> dict[str, str]:
    """The attacked ports in the target: ``plain`` and ``offloads`` (host offloads
    offered: the virtio-net header's checksum and GSO fields are acted on)."""
    import os
    paths = {"plain": os.path.join(sockdir, "plain.sock"),
             "offloads": os.path.join(sockdir, "offloads.sock")}
    ag.call("port", name="plain", kind="vhost-server", path=paths["plain"])
    ag.call("port", name="offloads", kind="vhost-server", path=paths["offloads"],
            enable_features=H.HOST_OFFLOADS)
    return paths


if __name__ == "__main__":
    raise SystemExit(main())
