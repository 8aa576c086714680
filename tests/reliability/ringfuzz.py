"""Adversarial virtqueues against vhost-user ports in another process (the target, a
``dpdkvirtio.peers.Agent``): each case is one connection of the hostile driver
(``hostile.Driver``) that writes one family's bad ring contents (``ringcases``), kicks,
and has the target receive (``drain``: the guest's tx ring, dequeued by
rte_vhost_dequeue_burst) or send (``send``: the guest's rx ring, rte_vhost_enqueue_burst).
Then the verdicts, by ``oracle``:

- the target answered (it survived);
- **exact contents**: every packet the target dequeued is, byte for byte, whole buffers
  this case described, as the guest holds them; the back-end wrote nothing into guest
  memory but its device areas (and, on the rx side, exactly the headers and packets its
  used elements account for, bar DPDK 22.11's short-header write within its bound);
- what happened to the port: ``refused`` (the device never started), ``disconnected``
  (the back-end hung up), ``carried`` (packets moved) or ``dropped`` (the device ran and
  moved nothing: the bad descriptors were refused).

``Runner.control`` runs the positive controls: a back-end told a wrong mapping (offset
off by 4 KiB, the previous case's memory, a zero page) must be caught.

Every case derives from (seed, index); a failure names the command that replays it
against a target of its own:

    python -m tests.reliability.ringfuzz SOCKET_DIR SEED INDEX
"""

from __future__ import annotations

import base64
import os
import random
import struct
from collections import Counter
from dataclasses import dataclass, field

from tests.helpers import cpus, front_back
from tests.reliability import hostile as H
from tests.reliability import oracle
from tests.reliability.ringcases import (
    FAMILIES,
    MAY_REFUSE,
    NEEDS_CSUM,
    NET_HDR,
    OFFLOAD_FAMILIES,
    RX_FAMILIES,
    Ctx,
    case_seed,
    placement,
)

CANARY = 0xCC                      # the attacked ports' free mbufs hold this byte
CONTROLS = ("wrong_offset", "stale", "zero_page")
# who dequeues a tx case: the target's Python thread, or a PMD engine with a FlowStats
# table and a capture (the packets judged are the capture's): rxonly or io into a null
# port, on the PMD that serves the untouched pair, or alone on a PMD in interrupt mode
DRAINS = {"python": 0.6, "pmd_rxonly": 0.15, "pmd_io": 0.1, "pmd_interrupt": 0.15}
# a PMD dequeues a flood (an avail index moved by thousands: one chain again and again)
# faster than the capture's writer takes copies. Even with a writer that took none, the
# capture keeps every packet while its ring (RING_SIZE) and its copy pool (POOL_SIZE
# buffers of COPY_DATA_ROOM bytes, less CAPTURE_CACHE_SLACK that mempool caches of the
# other threads may hold) have room: a packet of L bytes takes at most 1 + L / room
# buffers. Within that, a dropped copy fails the case; past it, dropped copies are counted
# as unjudged.
CAPTURE_CACHE_SLACK = 4 * 384


def capture_must_keep(packets: int, nbytes: int) -> bool:
    """Whether a capture must have kept all ``packets`` (``nbytes`` in all) of a case."""
    from dpdkvirtio._core import capture as C
    buffers = packets + -(-nbytes // C.COPY_DATA_ROOM)
    return packets < C.RING_SIZE and buffers <= C.POOL_SIZE - CAPTURE_CACHE_SLACK
# features negotiated besides INDIRECT_DESC and MRG_RXBUF, in a share of cases each
# (IN_ORDER on tx cases only: its used ring may name only a batch's last chain, which
# the rx oracle does not read)
EXTRA_FEATURES = {H.F_EVENT_IDX: 0.5, H.F_IN_ORDER: 0.3}


@dataclass
class Result:
    index: int
    family: str
    packed: bool = False
    note: str = ""
    outcome: str = ""          # refused / disconnected / carried / dropped
    packets: int = 0
    bytes_checked: int = 0     # packet bytes compared with guest memory (tx) or written (rx)
    raced: bool = False        # toctou: what arrived differs from the chains as posted
    read_only_written: bool = False
    drain: str = ""            # tx cases: who dequeued (DRAINS)
    unjudged: int = 0          # PMD drains: packets of a flood the capture could not keep
    features: int = 0          # as negotiated
    known_issue: str = ""
    disclosures: int = 0       # packets (tx) or bytes (rx) the oracle could not explain
    problems: list[str] = field(default_factory=list)


class Runner:
    """Runs cases against the target's ports: ``plain`` (default features) and
    ``offloads`` (host offloads offered), both polled by the target's Python thread."""

    def __init__(self, agent, paths: dict[str, str], seed: int):
        self.agent, self.paths, self.seed = agent, paths, seed
        # the packets the target dequeued, whole (a case may carry megabytes)
        self.dump = os.path.join(os.path.dirname(paths["plain"]), "dequeued.bin")
        self.devices = {name: agent.call("port_status", name=name)["status"]["devices"]
                        for name in paths}
        try:
            for name in paths:
                agent.call("canary", name=name, byte=CANARY)
                # what PMD drains use, made once: each port's capture tap, the null port,
                # the interrupt-mode PMD (before the run's resource baseline)
                for mode, action in (("poll", "io"), ("interrupt", "rxonly")):
                    agent.call("pmd_drain", name=name, dump=self.dump + ".pcapng", mode=mode,
                               action=action, idle_s=0.0, max_s=0.0)
        except BaseException:
            self._remove_dumps()
            raise
        self.mem = H.GuestMemory()
        self.sent_total = 0

    def family_of(self, index: int) -> str:
        return list(FAMILIES)[index % len(FAMILIES)]

    def run(self, index: int) -> Result:
        rng = random.Random(case_seed(self.seed, index))
        family = self.family_of(index)
        res = Result(index, family, packed=rng.random() < 0.4)
        self.mem.reset(rng.getrandbits(64))
        return self._case(rng, family, res, FAMILIES[family])

    def control(self, kind: str, index: int = 0) -> Result:
        """A positive control: a well-formed packet in region b, with the back-end told
        a wrong mapping of b (``kind``: its file 4 KiB further on, a copy holding the
        previous case's memory, or zeros). The oracle must flag it (``disclosures``)."""
        rng = random.Random(case_seed(self.seed, f"control/{kind}/{index}"))
        res = Result(index, f"control_{kind}", packed=rng.random() < 0.5)
        previous = self.mem.key
        self.mem.reset(rng.getrandbits(64))
        b = self.mem.data[1]
        shadow = None
        if kind == "wrong_offset":
            override = (b.fd, b.offset + 4096)
        else:
            shadow = self.mem.shadow(b, H.keyed(b.gpa, b.size, previous) if kind == "stale" else None)
            override = (shadow, b.offset)

        def family(c: Ctx):
            c.post([[(c.header(), NET_HDR, 0), (b.gpa + rng.randrange(b.size - 1500), 1500, 0)]])
            return kind
        try:
            return self._case(rng, "control", res, family, memory_override={"b": override})
        finally:
            if shadow is not None:
                os.close(shadow)

    def _case(self, rng, family, res, write, memory_override=None) -> Result:
        port = "offloads" if family in OFFLOAD_FAMILIES else "plain"
        want = (1 << H.F_INDIRECT_DESC) | (1 << H.F_MRG_RXBUF) | (
            H.HOST_OFFLOADS if port == "offloads" else 0)
        # drawn from a generator of their own: the case's contents stay those of its seed
        extra = random.Random(f"{case_seed(self.seed, res.index)}/{family}/config")
        for bit, share in EXTRA_FEATURES.items():
            if extra.random() < share and not (bit == H.F_IN_ORDER and family in RX_FAMILIES):
                want |= 1 << bit
        res.drain = ("" if family in RX_FAMILIES or family == "control"
                     else extra.choices(list(DRAINS), list(DRAINS.values()))[0])
        drv = H.Driver(self.paths[port], self.mem, want, res.packed)
        ctx = None
        try:
            addresses, where = (placement(rng, self.mem) if family == "ring_placement" else (None, ""))
            drv.handshake(addresses, memory_override)
            drv.send(H.GET_FEATURES)                     # answered once all before it is handled
            try:
                drv._reply()
            except (ConnectionError, OSError):
                pass
            res.packed = drv.packed
            res.features = drv.features
            # a device starts within a millisecond here; a family that may be refused
            # waits 20 ms for it (2,000 of 10,000 cases would wait 50)
            up = self.agent.call("device_wait", name=port, devices=self.devices[port] + 1,
                                 wait_s=0.02 if family in MAY_REFUSE else 0.05)
            self.devices[port] = up["status"]["devices"]
            if not up["done"]:
                res.outcome = "refused"
                if family not in MAY_REFUSE:
                    res.problems.append(f"the device did not start: {up['status']}")
                return res
            ctx = Ctx(rng, self.mem, drv)
            ctx.placement_note = where
            # the target's control thread (Python drain, interrupt PMD) is on the first
            # CPU, its own PMD on the last
            ctx.reader_cpu = cpus()[-1] if res.drain in ("pmd_rxonly", "pmd_io") else cpus()[0]
            res.note = write(ctx)
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
        # a racing writer (toctou) gets a chance at every chain when each is dequeued by a
        # poll of its own; in one burst of 32 all are read within microseconds
        truncated: set[int] = set()
        if res.drain in ("python", ""):
            out = self.agent.call("drain", name=port, idle_s=0.002 if ctx.threads else 0.0,
                                  max_s=0.5, dump=self.dump, canary=CANARY,
                                  burst_size=1 if res.family == "toctou" else 32)
            packets = read_dump(self.dump)          # each distinct packet once
        else:
            packets, truncated, out = self._pmd_drain(ctx, port, res)
        ctx.finish()
        res.packets = out["packets"]
        wild: set[int] = set()
        if port == "offloads":
            for h in ctx.headers:
                flags, _g, _hl, _gs, start, offset, _nb = struct.unpack("<BBHHHHH", h)
                if flags & NEEDS_CSUM:                   # DPDK's offset is a uint16_t
                    wild |= {(start + offset) & 0xFFFF, (start + offset + 1) & 0xFFFF}
        cands = oracle.Candidates(self.mem) if packets else None
        for k, pkt in enumerate(packets):
            ok, prefix = oracle.explain_packet(pkt, cands, wild, truncated=k in truncated)
            res.bytes_checked += len(pkt)
            if not ok:
                res.disclosures += 1
                res.problems.append(
                    f"disclosure: packet {k} ({len(pkt)} bytes) is not whole buffers this case "
                    f"described; explained up to byte {prefix}, then {pkt[prefix:prefix + 16].hex()} "
                    f"({oracle.describe_bytes(pkt[prefix:prefix + 16], self.mem.key, CANARY)})")
        if res.family == "toctou":
            posted = [b"".join(self.mem.expected_span(g, n) for g, n, _f in ch[1:])
                      for ch in ctx.posted]
            res.raced = sorted(packets) != sorted(posted)
        wrote = self.mem.device_writes(oracle.device_areas(ctx.drv))
        if wrote:
            res.problems.append(f"the back-end wrote into guest memory outside its device areas "
                                f"while dequeuing: {len(wrote)} bytes, (gpa, byte) {wrote[:8]}")

    def _pmd_drain(self, ctx: Ctx, port: str, res: Result):
        """A PMD engine dequeues (``res.drain``); the packets are its capture's. Every
        packet received must have been captured (each one judged) and counted once by the
        FlowStats table as unmeasured; in interrupt mode the PMD must go back to waiting
        for a kick whatever the ring holds."""
        from dpdkvirtio import pcapfile
        mode, action = ("interrupt", "rxonly") if res.drain == "pmd_interrupt" else (
            "poll", res.drain.split("_")[1])
        out = self.agent.call("pmd_drain", name=port, dump=self.dump + ".pcapng", mode=mode,
                              action=action, idle_s=0.002, max_s=0.5)
        pk = pcapfile.read(self.dump + ".pcapng")
        cap = out["capture"]
        dropped = cap["interfaces"]["rx"]["dropped"]
        if cap["written"] + dropped != out["packets"] or cap["format_failed"]:
            res.problems.append(f"{out['packets']} packets received, but the capture "
                                f"accounts for {cap}")
        elif dropped and capture_must_keep(out["packets"], out["bytes"]):
            res.problems.append(f"the capture dropped {dropped} of {out['packets']} packets "
                                f"({out['bytes']} bytes; not every packet judged)")
        res.unjudged = dropped
        if out["unmeasured"] != out["packets"]:
            res.problems.append(f"the FlowStats table counted {out['unmeasured']} unmeasured "
                                f"packets of {out['packets']} received")
        if mode == "interrupt" and not out["asleep"]:
            res.problems.append("the interrupt-mode PMD did not go back to waiting for a kick")
        distinct: dict[bytes, bool] = {}
        for frame, orig in zip(pk.frames, pk.orig_lengths):
            distinct[frame] = distinct.get(frame, False) or len(frame) < int(orig)
        packets = list(distinct)
        return packets, {k for k, p in enumerate(packets) if distinct[p]}, out

    def _send(self, ctx: Ctx, port: str, res: Result):
        count = ctx.rng.randrange(1, 33)
        size = ctx.rng.choice([60, 64, 100, 1500])
        frames = [ctx.rng.randbytes(size) for _ in range(count)]
        drops0 = sum(self.agent.call("stats", name=port)["drops"].values())
        out = self.agent.call("send", name=port,
                              payloads=[base64.b64encode(f).decode() for f in frames])
        ctx.finish()
        res.packets = out["sent"]
        dropped = sum(out["drops"].values()) - drops0
        if out["sent"] + dropped != count:
            res.problems.append(f"{count} sent: {out['sent']} taken + {dropped} counted drops")
        used = ctx.rx.used_entries()
        writes, res.read_only_written, problems = oracle.expected_rx_writes(
            self.mem, ctx.drv, used, frames[:out["sent"]])
        res.bytes_checked = sum(len(data) for _gpa, data in writes)
        wrong = oracle.unexpected_writes(self.mem, writes, oracle.device_areas(ctx.drv))
        short = [(gpa, NET_HDR + size) for gpa, n in ctx.offered if n < NET_HDR]
        if (problems or wrong) and short and all(
                any(g <= gpa < g + n for g, n in ctx.offered + short) for gpa, _f, _e in wrong):
            # the known DPDK 22.11 write past a buffer that follows one shorter than the
            # header: from that buffer's start + up to 11 bytes, one packet long; the used
            # lengths it reports do not describe where the bytes went
            res.known_issue = "rx_short_header"
            return
        res.problems += problems
        if wrong:
            res.disclosures += len(wrong)
            res.problems.append(f"the back-end's writes into guest memory are not the headers and "
                                f"packets its used elements account for: {len(wrong)} bytes differ, "
                                f"(gpa, found, expected) {wrong[:8]}")

    def close(self):
        self.mem.close()
        self._remove_dumps()

    def _remove_dumps(self):
        for path in (self.dump, self.dump + ".pcapng"):
            if os.path.exists(path):
                os.unlink(path)


def read_dump(path: str) -> list[bytes]:
    """The packets of a drain's dump file (4-byte little-endian length, then the bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "little")
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


def summarize(results: list[Result]) -> dict:
    by_family: dict[str, Counter] = {}
    for r in results:
        key = r.family + ("/packed" if r.packed else "/split")
        by_family.setdefault(key, Counter())[r.outcome] += 1
    return {k: dict(v) for k, v in sorted(by_family.items())}


def main(argv=None):
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m tests.reliability.ringfuzz SOCKET_DIR SEED INDEX", file=sys.stderr)
        return 2
    sockdir, seed, index = args[0], int(args[1]), int(args[2])
    with target_agent() as ag:
        paths = start_target(ag, sockdir)
        runner = Runner(ag, paths, seed)
        try:
            print(runner.run(index))
        finally:
            runner.close()
    return 0


def target_agent():
    """The target process: its PMD on the last CPU, its control thread (Python drains)
    on the first, a spare lcore there for the interrupt-mode PMD of pmd_interrupt."""
    from dpdkvirtio.peers import Agent
    front, back = front_back()
    return Agent("no-huge", cpu=back, control_cpus=[front], spare_cpus=[front])


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
