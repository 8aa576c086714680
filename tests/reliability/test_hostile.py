"""Hostile guests: adversarial virtqueues written by a driver we control (hostile.py,
ringfuzz.py) against vhost-user ports of a separate target process. docs/reliability.md
has the families, the detector and the figures."""

import os
import struct
import time
import warnings
from collections import Counter

import numpy as np
import pytest

from dpdkvirtio.peers import Agent
from tests.helpers import front_back, wait_still
from tests.reliability import hostile as H
from tests.reliability import ringfuzz
from tests.reliability.repro_rx_short_header import short_header_chain

FRONT, BACK = front_back()


def _untouched_pair(ag, sockdir):
    """The target's own paced pair on its PMD (another CPU than the attacked ports'
    Python thread): it must lose nothing whatever the cases do."""
    ag.call("port", name="y", kind="vhost-server", path=os.path.join(sockdir, "y.sock"))
    ag.call("port", name="z", kind="virtio-user", path=os.path.join(sockdir, "y.sock"), queue_size=1024)
    ag.call("wait", name="y", what="running")
    ag.call("rx", name="y", start=False)
    ag.call("gen", name="z", pps=50_000, tag="z")


# what a run must have done, per family (docs/reliability.md): the share of cases that
# carried packets, at least (about half of what a run of 10,000 shows here; 0 for the
# families whose every chain is bad by construction), and 16 bytes compared, on average,
# for each carried case
MIN_CARRIED_SHARE = {
    "desc_loop": 0.0, "chain_too_long": 0.1, "next_out_of_range": 0.15,
    "indirect_outside": 0.0, "indirect_nested": 0.4, "indirect_length": 0.08,
    "addr_wrap": 0.0, "addr_gap": 0.0, "addr_straddle": 0.15, "lengths": 0.1,
    "avail_index": 0.1, "net_header": 0.5, "ring_placement": 0.1, "toctou": 0.5,
    "kick_storm": 0.5, "reconfigure": 0.05, "rx_buffers": 0.3,
}
MIN_CASES_FOR_SHARES = 1700       # 100 cases a family
# the 1 KB-a-connection leak the 10^5 run found reads 1 or more; the target without a leak
# reads 0.06-0.3 over 10^4 cases (malloc and DPDK caches still filling: a 16,000-case run
# read 0.1 kB a case with Python drains alone and with PMD drains alone, the 10^5 run
# 0.021 over all of it)
RSS_SLOPE_KB_PER_CASE = 0.5
RSS_WARM_CASES = 2000              # RSS grows while DPDK's caches fill: the slope after
RSS_SAMPLE_CASES = 500             # the slope is fitted to a reading every this many cases


def _run_cases(runner, n, seconds, seed, ag):
    """Cases 0.. until n (or ``seconds``); every one must pass. Returns the results and
    the target's RSS readings [(case, kB)] from RSS_WARM_CASES on."""
    results, rss = [], []
    deadline = time.monotonic() + seconds if seconds else None
    index = 0
    while (index < n) if deadline is None else (time.monotonic() < deadline):
        r = runner.run(index)
        replay = f"--hostile-seed {seed} (or python -m tests.reliability.ringfuzz DIR {seed} {index})"
        assert not r.problems, (f"case {index} ({r.family}, {'packed' if r.packed else 'split'}, "
                                f"{r.note}): {r.problems}; replay it with {replay}")
        results.append(r)
        index += 1
        if index >= RSS_WARM_CASES and index % RSS_SAMPLE_CASES == 0:
            rss.append((index, ag.call("resources")["rss_kb"]))
    return results, rss


def _controls(runner, tag):
    """The positive controls: each must be flagged as a disclosure, or the oracle is
    blind and the run proves nothing."""
    out = [runner.control(kind, index=k) for k, kind in enumerate(ringfuzz.CONTROLS)]
    missed = [(c.family, c.packed, c.outcome, c.packets) for c in out if not c.disclosures]
    assert not missed, f"{tag}: the oracle did not flag the positive controls {missed}"
    return out


def _assert_the_fuzz_did_something(results):
    """Per family, in proportion to the cases run: cases in every family and on packed
    rings, carried shares above MIN_CARRIED_SHARE, bytes compared, TOCTOU rewrites that
    changed what arrived."""
    by_family: dict[str, list] = {}
    for r in results:
        by_family.setdefault(r.family, []).append(r)
    n = len(results)
    assert set(by_family) == set(ringfuzz.FAMILIES), sorted(by_family)
    assert sum(r.packed for r in results) >= 0.2 * n, "too few cases on packed rings"
    for family, rs in by_family.items():
        carried = sum(r.outcome == "carried" for r in rs) / len(rs)
        assert carried >= MIN_CARRIED_SHARE[family], \
            f"{family}: {carried:.0%} of {len(rs)} cases carried, below {MIN_CARRIED_SHARE[family]:.0%}"
        carried_cases = sum(r.outcome == "carried" for r in rs)
        checked = sum(r.bytes_checked for r in rs)
        assert checked >= 16 * carried_cases, \
            f"{family}: {checked} bytes compared for {carried_cases} carried cases"
    # the rewrites land while a Python drain reads one chain per poll; a PMD reads a case's
    # chains within microseconds, and seldom meets a rewrite (reported, not required)
    toctou = by_family["toctou"]
    by_drain = {d: f"{sum(r.raced for r in toctou if r.drain == d)} of "
                   f"{sum(r.drain == d for r in toctou)}" for d in ringfuzz.DRAINS}
    python = [r for r in toctou if r.drain == "python"]
    raced = sum(r.raced for r in python)
    # (Python-drained rates measured 4.8-8.7 % over runs: 3 % proves the race happens
    # without sitting inside that spread; no race at all fails)
    assert raced >= 0.03 * len(python), \
        f"toctou: rewrites changed what arrived in {raced} of {len(python)} Python-drained cases ({by_drain})"
    # every drain ran its share of the tx cases and carried packets there, kick storms
    # included; the extra features were negotiated in their shares
    tx = [r for r in results if r.drain]
    for drain, share in ringfuzz.DRAINS.items():
        rs = [r for r in tx if r.drain == drain]
        carried = sum(r.outcome == "carried" for r in rs)
        storms = sum(r.outcome == "carried" and r.family == "kick_storm" for r in rs)
        assert len(rs) >= share / 2 * len(tx) and carried >= 0.2 * len(rs) and storms >= 5, \
            f"drain {drain}: {len(rs)} of {len(tx)} tx cases, {carried} carried, {storms} kick storms"
    for bit, share in ringfuzz.EXTRA_FEATURES.items():
        eligible = [r for r in results if r.features and (bit != H.F_IN_ORDER or r.drain)]
        negotiated = sum(bool(r.features >> bit & 1) for r in eligible)
        assert negotiated >= share / 2 * len(eligible), \
            f"feature bit {bit} negotiated in {negotiated} of {len(eligible)} cases"


@pytest.mark.slow
def test_hostile_guests_10000_cases(baseline, sockdir, request, record_property):
    """10,000 adversarial virtqueue cases from a fresh seed (printed in the header;
    ``--hostile-seed S`` replays, ``--hostile-cases N`` or ``--hostile-seconds T`` for
    more), every family of ringcases.FAMILIES, split and packed rings: the target
    survives each, every packet it dequeues is exactly whole buffers the guest described
    (oracle.py), it writes nothing into guest memory but its device areas and the
    packets its used elements account for (but for DPDK 22.11's known short-header
    write, bounded), the positive controls are flagged before and after, every family
    carried and was checked, the untouched pair loses nothing, both attacked ports then
    carry 10,000 packets exactly from a well-behaved front-end, fds return to their
    count, the captures hold no buffers, and RSS grows by less than RSS_SLOPE_KB_PER_CASE once warm."""
    n = request.config.getoption("--hostile-cases")
    seconds = request.config.getoption("--hostile-seconds")
    seed = request.config.fuzz_seeds["hostile"]
    record_property("hostile_seed", seed)
    ag = ringfuzz.target_agent()
    runner = None
    try:
        paths = ringfuzz.start_target(ag, sockdir)
        _untouched_pair(ag, sockdir)
        runner = ringfuzz.Runner(ag, paths, seed)          # (makes what PMD drains use)
        res0 = ag.call("resources")
        controls = _controls(runner, "before the run")
        t0 = time.monotonic()
        results, rss = _run_cases(runner, n, seconds, seed, ag)
        took = time.monotonic() - t0
        n = len(results)
        controls += _controls(runner, "after the run")
        known = Counter(r.known_issue for r in results if r.known_issue)
        mid = ag.call("resources")
        # least squares over the readings: one reading's malloc noise (a MB either way)
        # does not make a slope, a leak of 1 kB a case over 8,000 cases does
        slope = float(np.polyfit(*zip(*rss), 1)[0]) if len(rss) >= 4 else None
        rss_warm = rss[0][1] if rss else None
        print(f"hostile seed {seed}: {n} cases in {took:.1f} s, all survived, 0 "
              f"disclosures; {len(controls)} positive controls flagged; outcomes "
              f"{dict(Counter(r.outcome for r in results))}, known DPDK issue {dict(known)}, "
              f"device-readable rx buffers written in {sum(r.read_only_written for r in results)} "
              f"cases; toctou raced {sum(r.raced for r in results)} "
              f"({dict(Counter(r.drain for r in results if r.raced))}); packets of floods "
              f"not kept by a PMD drain's capture {sum(r.unjudged for r in results)} of "
              f"{sum(r.packets for r in results if r.drain.startswith('pmd'))}; bytes checked "
              f"{sum(r.bytes_checked for r in results)}; target fds {res0['fds']} -> "
              f"{mid['fds']}, RSS {res0['rss_kb']} -> {rss_warm} (case {RSS_WARM_CASES}) -> "
              f"{mid['rss_kb']} kB, {slope if slope is None else round(slope, 3)} kB a case "
              f"after; by family and layout:")
        for key, value in ringfuzz.summarize(results).items():
            print(f"  {key}: {value}")
        print("by drain:", {d: dict(Counter(r.outcome for r in results if r.drain == d))
                            for d in ringfuzz.DRAINS})
        if n >= MIN_CASES_FOR_SHARES:
            _assert_the_fuzz_did_something(results)
        else:
            warnings.warn(f"a run of {n} cases: the per-family checks need "
                          f"{MIN_CASES_FOR_SHARES} or more and were not made", stacklevel=1)
        # every capture of a PMD drain gave back its copy and format buffers
        assert all(v == [0, 0] for v in mid["capture_in_use"].values()), mid["capture_in_use"]
        if slope is not None:
            assert slope < RSS_SLOPE_KB_PER_CASE, \
                f"the target's RSS grew {slope:.3f} kB a case after {RSS_WARM_CASES} cases"
        # the untouched pair inside the target lost nothing
        built = ag.call("pause", tag="z")["built"]
        y = wait_still(lambda: ag.call("port_status", name="y")["stats"]["rx_packets"])
        assert sum(ag.call("stats", name="z")["drops"].values()) == 0 and built == y > 0
        # the attacked ports serve well-behaved front-ends: 10,000 packets exactly each
        for name, path in paths.items():
            ag.call("rx", name=name)
            with Agent("no-huge", cpu=FRONT, control_cpus=[FRONT]) as front:
                front.call("port", name="u", kind="virtio-user", path=path, queue_size=1024)
                assert ag.call("wait", name=name, what="running")["done"]
                rx0 = ag.call("stats", name=name)["stats"]["rx_packets"]
                # 50 kpps: the front-end's PMD shares its CPU with the untouched pair's, and
                # a paced generator catching up after being descheduled must not overrun
                # the 1024-entry ring (a fresh run saw 9,979 + 21 sender drops at 200 kpps)
                front.call("gen", name="u", count=10_000, pps=50_000, tag="g")
                assert front.call("gen_wait", tag="g")["done"]
                rx = wait_still(lambda n=name: ag.call("stats", name=n)["stats"]["rx_packets"]) - rx0
                assert (rx, sum(front.call("stats", name="u")["drops"].values())) == (10_000, 0)
                front.call("close", name="u")
            assert ag.call("device_wait", name=name, devices=None, wait_s=10)["done"]
        res1 = wait_still(lambda: ag.call("resources")["fds"], quiet_s=0.5)
        rss1 = ag.call("resources")["rss_kb"]
        assert res1 == res0["fds"], f"the target's fds went from {res0['fds']} to {res1}"
        assert rss1 - res0["rss_kb"] < 64 * 1024
    finally:
        if runner is not None:
            runner.close()
        ag.close()


@pytest.mark.parametrize("way", ["base_past_size", "num_below_index", "features_to_packed"])
def test_packed_ring_index_past_the_ring_is_refused(baseline, sockdir, way):
    """Found by the exact oracle: DPDK 22.11 takes a packed ring's index from
    SET_VRING_BASE as it comes, and then reads and writes descriptors past the ring (with
    the ring at a region's end: past guest memory). The message screen refuses every way
    to get there (screen.pyx): a base at or past the size, a SET_VRING_NUM below the
    indexes, a SET_FEATURES making split-set indexes packed. The connection ends, the
    refusal is counted, and nothing is written into guest memory outside the device
    areas (a descriptor waits at the index past the ring: DPDK would use it)."""
    from tests.reliability import oracle
    ag = Agent("no-huge", cpu=BACK, control_cpus=[FRONT])
    mem = drv = None
    try:
        path = ringfuzz.start_target(ag, sockdir)["plain"]
        before = ag.call("port_status", name="plain")["status"]
        mem = H.GuestMemory()
        mem.reset(0x0DDC0FFEE)
        drv = H.Driver(path, mem, (1 << H.F_INDIRECT_DESC) | (1 << H.F_MRG_RXBUF), packed=True)
        index = 0x1000                                   # past the 256-entry ring
        if way == "features_to_packed":
            # before the device runs (DPDK itself refuses a feature change after): the
            # index set while the rings are split, then packed asked for
            drv.send(H.GET_FEATURES)
            offered = struct.unpack("<Q", drv._reply())[0]
            split = drv.want | (1 << H.F_VERSION_1)
            drv.send(H.SET_OWNER)
            drv.send(H.SET_FEATURES, struct.pack("<Q", split))
            body, fds = mem.table()
            drv.send(H.SET_MEM_TABLE, body, fds)
            drv.send(H.SET_VRING_NUM, struct.pack("<II", 1, H.RING_SIZE))
            drv.send(H.SET_VRING_BASE, struct.pack("<II", 1, index))
            drv.send(H.SET_FEATURES, struct.pack("<Q", split | (offered & (1 << H.F_RING_PACKED))))
            drv.send(H.GET_FEATURES)                     # answered only if it went through
            with pytest.raises((ConnectionError, OSError)):
                drv._reply()
            assert ag.call("device_wait", name="plain", devices=None, wait_s=5)["done"]
            after = ag.call("port_status", name="plain")["status"]
            assert after["rejected"] == before["rejected"] + 1, (before, after)
            return
        drv.handshake()
        assert drv.packed
        if way == "num_below_index":
            drv.send(H.SET_VRING_BASE, struct.pack("<II", 1, 0x8000 | 200))
            drv.send(H.SET_VRING_NUM, struct.pack("<II", 1, 100))
        else:
            drv.send(H.SET_VRING_BASE, struct.pack("<II", 1, 0x8000 | index))
        ring = drv.rings[1]
        a = mem.data[0]
        for slot in (index, 200):                        # an available descriptor there
            mem.write(ring.desc + 16 * slot, struct.pack("<QIHH", a.gpa, 64, 7, H.PACKED_AVAIL))
        drv.kick_vring(1)
        ag.call("drain", name="plain", idle_s=0.05, max_s=0.5)
        assert mem.device_writes(oracle.device_areas(drv)) == []
        assert drv.closed_by_peer(), "the connection stayed open"
        assert ag.call("device_wait", name="plain", devices=None, wait_s=5)["done"]
        after = ag.call("port_status", name="plain")["status"]
        assert after["rejected"] == before["rejected"] + 1, (before, after)
    finally:
        if drv is not None:
            drv.close()
        if mem is not None:
            mem.close()
        ag.close()


def test_rx_short_header_chain_known_dpdk_issue():
    """DPDK 22.11's vhost enqueue writes a packet outside the guest's buffers when the
    first rx buffer is shorter than the virtio-net header and the second shorter than the
    rest of it (docs/reliability.md, problem 8), shown against Debian's dpdk-testpmd as
    the back-end. This test stands for the known issue and its bound: it fails once a
    DPDK that fills the buffers correctly (or refuses the chain) is installed, so the
    documentation can be updated."""
    for mergeable in (False, True):
        out = short_header_chain(mergeable=mergeable)
        assert out["used"], f"testpmd returned no used element: {out}"
        # used length: the packet + the header, claimed delivered...
        assert sum(length for _id, length in out["used"]) == 1500 + 12, out
        # ...but its bytes are not where the guest's buffers are (or the process died)
        assert out["status"] == -11 or not out["packet_in_guest_buffers"], out


# found by the fuzz at seed 611636707 (2026-12-07): 17 packed rx chains, each a single
# INDIRECT descriptor, 0 or 15 bytes long at table or wild addresses
EMPTY_INDIRECT_CASE = (611636707, 3654)


def test_packed_rx_empty_indirect_known_dpdk_issue(sockdir, monkeypatch):
    """DPDK 22.11's packed-ring enqueue takes an INDIRECT rx descriptor shorter than one
    table entry (0 entries) as a buffer: it writes the virtio-net header at the table's
    address and claims more bytes than the buffers hold, or, with an address outside guest
    memory, dies of SIGSEGV (docs/reliability.md, problem 11). The fuzz no longer draws
    such lengths on packed rings; this replays the case that found it in a target of its
    own and fails once a DPDK that refuses the descriptor is installed."""
    from tests.reliability import ringcases
    seed, index = EMPTY_INDIRECT_CASE
    # the draw the case was found with (the same list: the same case)
    monkeypatch.setattr(ringcases, "PACKED_INDIRECT_LENGTHS", [0, 15, 16, 0xFFFFFFFF])
    ag = ringfuzz.target_agent()
    try:
        paths = ringfuzz.start_target(ag, sockdir)
        runner = ringfuzz.Runner(ag, paths, seed)
        try:
            res = runner.run(index)
        except RuntimeError as e:
            assert "agent exited (-11)" in str(e), e          # the target died of SIGSEGV
            ag.kill()                       # its runtime directory, which it could not remove
            for path in paths.values():     # and its listening sockets
                os.unlink(path)
            return
        finally:
            runner.close()
        assert res.family == "rx_buffers" and res.packed and res.note == "indirect", res
        assert any("not the headers and packets its used elements account for" in p
                   or "more than its buffers hold" in p for p in res.problems), res
    finally:
        ag.close()


def test_hostile_backend_against_virtio_user(baseline, untouched, sockdir):
    """The other trust direction: a hostile vhost-user back-end (hostile_backend.py)
    writes used-ring elements into a virtio-user port's rx ring. DPDK 22.11's virtio
    driver takes the element's length as the packet's (it only checks the lower bound),
    so an mbuf can claim more bytes than its buffer holds; our receive path drops such
    mbufs and counts them (``drops()["rx_malformed"]``): no reader ever sees the bytes
    after the buffer. A correct element still arrives with the bytes the back-end wrote.
    Element ids out of range make the driver read past its descriptor array (reported,
    not asserted beyond survival: docs/reliability.md)."""
    from tests.reliability.hostile_backend import HostileBackend
    path = os.path.join(sockdir, "hb.sock")
    be = HostileBackend(path)
    ag = Agent("no-huge", cpu=BACK, control_cpus=[FRONT])
    try:
        ag.call("port", name="u", kind="virtio-user", path=path, queue_size=256)
        assert be.ready.wait(10)
        heads = wait_still(lambda: len(be.avail_heads(0)), quiet_s=0.2)
        assert heads == 256
        heads = be.avail_heads(0)

        def fill(head):
            addr, length, _flags, _next = be.desc(0, head)
            be.write(addr, bytes(0x80 + k % 61 for k in range(length)))
            return length
        # a well-formed element: 60 bytes, exactly what the back-end wrote
        buf_len = fill(heads[0])
        be.push_used(0, [(heads[0], 12 + 60)])
        out = ag.call("drain", name="u", lo=0x80, hi=0xBC)
        assert (out["packets"], out["lengths"], out["foreign"]) == (1, [60], [])
        # lengths beyond the buffer: dropped and counted, nothing past a buffer read
        bad = [12 + buf_len + 1, 12 + 5000, 12 + 65535, 0xFFFFFFF0]
        for k, length in enumerate(bad, start=1):
            fill(heads[k])
            be.push_used(0, [(heads[k], length)])
        out = ag.call("drain", name="u", lo=0x80, hi=0xBC)
        assert out["packets"] == 0 and out["foreign"] == [], out
        assert out["drops"]["rx_malformed"] == len(bad), out["drops"]
        # an id past the ring: the driver looks it up past its array (a NULL there stops
        # the queue); the process survives
        be.push_used(0, [(60000, 12 + 60)])
        out = ag.call("drain", name="u", lo=0x80, hi=0xBC)
        assert out["foreign"] == [], out
        ag.call("ping")
        print(f"hostile back-end: 1 good element delivered exactly, {len(bad)} over-long ones "
              f"dropped as rx_malformed, an out-of-range id gave {out['packets']} packets")
    finally:
        ag.close()
        be.close()
