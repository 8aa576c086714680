"""Replay of a capture file with its own timing: a pcapng that editcap wrote (not us), with
the gaps GAPS_MS this test chose (tshark reads them back exactly), sent by a PMD's
generator, its arrival times taken by our capture on the receiving port and judged
against GAPS_MS; the replay's span bounded by the kernel's clock."""
import shutil
import subprocess
import time
from decimal import Decimal

import numpy as np
import pytest

import dpdkvirtio as dv
from dpdkvirtio import hostinfo, pcapfile
from dpdkvirtio.errors import ConfigError
from tests import helpers

GAPS_MS = (1, 2, 3, 5, 1, 8, 2, 1)          # the file's inter-packet gaps, cycled
N = 160


@pytest.fixture
def timed_pcapng(tmp_path):
    """N UDP frames whose timestamps are GAPS_MS apart: written as classic pcap by scapy,
    converted to pcapng by editcap."""
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap
    editcap = shutil.which("editcap")
    assert editcap, "editcap (wireshark-common, with tshark) is not installed: scripts/setup-host.sh"
    t = 1_700_000_000.0
    pkts = []
    for i in range(N):
        p = Ether(dv.udp_frame(80, sport=1000 + i))
        p.time = t
        pkts.append(p)
        t += GAPS_MS[i % len(GAPS_MS)] / 1000
    classic = tmp_path / "timed.pcap"
    wrpcap(str(classic), pkts)
    out = tmp_path / "timed.pcapng"
    r = subprocess.run([editcap, "-F", "pcapng", str(classic), str(out)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as f:
        assert f.read(4) == b"\x0a\x0d\x0d\x0a"           # pcapng indeed
    # an independent reader sees the gaps the test wrote, exactly
    r = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.time_delta"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    deltas = [Decimal(x) for x in r.stdout.split()]
    assert deltas[1:] == [Decimal(g) / 1000 for g in _gaps_ms(N - 1)], deltas[:10]
    return out


def _gaps_ms(n: int) -> list[int]:
    return [GAPS_MS[i % len(GAPS_MS)] for i in range(n)]


def _replay_gaps(pair, pmds, path, speed, loops=1, during=None):
    """Replay ``path`` from the virtio-user side (calling ``during()`` once it started);
    the inter-arrival gaps (ns) the capture on the vhost-user port's rx saw, and the
    file's own."""
    v, u = pair
    a, b = pmds
    b.add_rxq(v, 0, "rxonly")
    stream = dv.Stream.from_pcap(path, timing="original", speed=speed, loops=loops)
    g = a.add_generator(u, 0, stream)
    b.start()
    with v.capture(None, direction="rx", snaplen=64) as cap:
        steal0, stalled0 = _steal_ms(), _stalled_ms(pmds)
        t0 = time.monotonic()
        a.start()
        if during is not None:
            during()
        assert g.wait_done(60)
        wall_s = time.monotonic() - t0
        stolen, stalled = _steal_ms() - steal0, _stalled_ms(pmds) - stalled0
        deadline = time.monotonic() + 10
        while v.stats()["rx_packets"] < N * loops:
            assert time.monotonic() < deadline, v.stats()
            time.sleep(0.01)
    a.stop(); b.stop()
    a.remove(u); b.remove(v)                # free for another run
    pk = cap.packets()
    cap.close()
    assert len(pk) == N * loops
    sent = pcapfile.read(path)
    assert [f[:64] for f in sent.frames] * loops == pk.frames
    # the file's gaps are the ones the test wrote (GAPS_MS), not what a reader says; the
    # replay cannot have been faster than them (the kernel's clock around it)
    want = np.array(_gaps_ms(N - 1), dtype=np.float64) * 1e6
    schedule_s = (want.sum() * loops + np.mean(want) * (loops - 1)) / speed / 1e9
    assert schedule_s * 0.999 <= wall_s <= schedule_s + 1.0, (wall_s, schedule_s)
    return np.diff(pk.timestamps_ns), want, stolen, stalled


def _steal_ms() -> float:
    """Time the hypervisor ran something else on the PMDs' CPUs (/proc/stat steal)."""
    return hostinfo.steal_ms(helpers.cpus())


def _stalled_ms(pmds) -> float:
    """How long the two PMDs lost their CPUs so far (their polls of 100 us or more)."""
    return sum(p.perf()["stalled_ns"] for p in pmds) / 1e6


# A replay is judged on a run the host let run: this 2-vCPU VM's hypervisor sometimes
# steals the PMDs' CPUs for 100+ ms in a half-second replay (then 10-20 % of the gaps are
# 1-5 ms late: not the schedule's doing), and takes them for 1-5 ms at a time more often
# than /proc/stat shows as steal. The PMDs' own stall counters see every such gap (and the
# time this process's other threads took). A run in which the PMDs lost more than 2 % of
# the replay's time (or the host stole 30 ms) is
# measured again, up to three times; three stolen runs fail the test, saying so; of
# three merely disturbed runs the calmest is judged, by the same assertions.
STEAL_LIMIT_MS = 30.0
STALLED_SHARE_MAX = 0.02


def _replay_unstolen(pair, pmds, path, speed, loops=1):
    runs, stolen_ms = [], []
    for _ in range(3):
        got, want, stolen, stalled = _replay_gaps(pair, pmds, path, speed, loops)
        if stolen > STEAL_LIMIT_MS:
            stolen_ms.append(round(stolen))
            print(f"\nthe host stole {stolen:.0f} ms of the PMDs' CPUs during the replay: again")
            continue
        if stalled <= STALLED_SHARE_MAX * want.sum() * loops / speed / 1e6:   # ns -> ms
            return got, want
        print(f"\nthe PMDs lost their CPUs for {stalled:.1f} ms during the replay: again")
        runs.append((stalled, got, want))
    if not runs:
        pytest.fail(f"the host stole {stolen_ms} ms of the PMDs' CPUs in three replays: "
                    "no run to judge")
    stalled, got, want = min(runs, key=lambda r: r[0])
    print(f"judging the calmest of {len(runs)} disturbed runs ({stalled:.1f} ms stalled)")
    return got, want


def _judge(got, want, what, *, p50_us, p90_us, span_us):
    """Each gap's error, and the whole span's: a packet the host delayed (the PMD not
    running for a while: steal, interrupts) makes a +x/-x pair of gap errors but does not
    move the packets after it, so the span stays exact."""
    err_us = np.abs(got - want) / 1e3
    span_err_us = abs(float(got.sum() - want.sum())) / 1e3
    print(f"\n{what}: |gap error| p50 {np.percentile(err_us, 50):.1f} us, p90 "
          f"{np.percentile(err_us, 90):.1f} us, max {err_us.max():.1f} us; span error "
          f"{span_err_us:.1f} us over {want.sum() / 1e6:.1f} ms")
    assert np.percentile(err_us, 50) <= p50_us and np.percentile(err_us, 90) <= p90_us, \
        np.round(err_us, 1).tolist()
    assert span_err_us <= span_us


def test_replay_keeps_the_files_timing(pair, pmds, timed_pcapng):
    got, want = _replay_unstolen(pair, pmds, timed_pcapng, speed=1.0)
    # stated tolerance: median gap error <= 50 us, 90 % within half the smallest gap
    _judge(got, want, "original timing (gaps 1-8 ms)", p50_us=50, p90_us=500, span_us=2000)


def test_replay_ten_times_faster_and_looped(pair, pmds, timed_pcapng):
    got, want = _replay_unstolen(pair, pmds, timed_pcapng, speed=10.0, loops=2)
    scaled = np.concatenate([want / 10, [np.mean(want / 10)], want / 10])
    # median <= 20 us, 90 % within twice the smallest gap (on this host p90 was 35-110 us
    # over runs: a few packets per run are held up by host stalls of 1-5 ms)
    _judge(got, scaled, "10x, two loops (gaps 0.1-0.8 ms)", p50_us=20, p90_us=200, span_us=1000)


HOG = """
import os, sys, time
cpu, ms = int(sys.argv[1]), float(sys.argv[2])
os.sched_setaffinity(0, {cpu})
sys.stdin.read(1)                                   # go
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
end = time.monotonic() + ms / 1000
while time.monotonic() < end:
    pass
"""


class _Hog:
    """A process that, when told, takes ``cpu`` from everything not real-time for ``ms``
    (SCHED_FIFO, busy) and exits by itself."""

    def __init__(self, cpu: int, ms: float):
        import sys

        from dpdkvirtio._process import Child
        self.child = Child([sys.executable, "-c", HOG, str(cpu), str(ms)], stdin=True)

    def go(self):
        self.child.proc.stdin.write(b"g")
        self.child.proc.stdin.close()

    def close(self):
        self.child.kill()


STALL_MS = 20
HOST_STALL_MS = 5.0


def test_a_replay_stalled_by_a_competing_process_catches_up_on_schedule(pair, pmds, timed_pcapng):
    """docs/capture.md: a packet due while the PMD could not run goes out at once, and the
    schedule is kept, not stretched. A real-time process takes the generator's CPU for
    STALL_MS mid-replay: the packets due meanwhile arrive late by at most the stall, in
    one clump, and the packets after them are back on the file's schedule."""
    a, _b = pmds
    # judged on a run the host let run besides the hog (as _replay_unstolen): the receiving
    # PMD, whose CPU the hog leaves alone, lost at most HOST_STALL_MS and the host stole at
    # most STEAL_LIMIT_MS; else measured again, up to three times, and the calmest judged.
    # (The generator's PMD loses more than STALL_MS to the hog: its process keeps the CPU
    # at real-time priority while it exits, 100+ ms here.)
    runs = []
    for _ in range(3):
        hog = _Hog(a.cpu, STALL_MS)
        b0 = pmds[1].perf()["stalled_ns"]
        try:
            got, want, stolen, _stalled = _replay_gaps(
                pair, pmds, timed_pcapng, speed=1.0,
                during=lambda hog=hog: (time.sleep(0.15), hog.go()))
            assert hog.child.wait(10) == 0
        finally:
            hog.close()
        receiver_ms = (pmds[1].perf()["stalled_ns"] - b0) / 1e6
        if stolen <= STEAL_LIMIT_MS and receiver_ms <= HOST_STALL_MS:
            break
        print(f"\nthe receiving PMD lost its CPU for {receiver_ms:.1f} ms (the host stole "
              f"{stolen:.0f} ms) during the replay: again")
        runs.append((receiver_ms, got, want))
    else:
        receiver_ms, got, want = min(runs, key=lambda r: r[0])
        print(f"judging the calmest of {len(runs)} disturbed runs (the receiver stalled "
              f"{receiver_ms:.1f} ms)")
    stall_ms = a.perf()["stall_max_ns"] / 1e6
    assert stall_ms >= STALL_MS * 0.9, f"the generator's PMD never stalled ({stall_ms} ms)"
    arrived_ms = np.r_[0, np.cumsum(got)] / 1e6              # since packet 0 arrived
    due_ms = np.r_[0, np.cumsum(want)] / 1e6
    k = int(np.argmax(got))                                  # the longest silence
    # lateness against the schedule as the packets before the stall kept it (packet 0
    # may itself have been late)
    late_ms = arrived_ms - due_ms
    late_ms -= np.median(late_ms[:k + 1])
    arrived_ms -= np.median((arrived_ms - due_ms)[:k + 1])
    print(f"\nlongest stall of the generator {stall_ms:.1f} ms, longest gap after packet {k}: "
          f"{got[k] / 1e6:.1f} ms; lateness (ms) from there: {np.round(late_ms[k:k + 20], 2).tolist()}")
    assert got[k] / 1e6 >= STALL_MS * 0.9
    # every packet due by the time the generator ran again went out then, together; none
    # that was not due yet
    resumed = arrived_ms[k + 1]
    clump = np.flatnonzero((np.arange(len(arrived_ms)) > k) & (arrived_ms <= resumed + 1.0))
    due = np.flatnonzero((np.arange(len(due_ms)) > k) & (due_ms <= resumed))
    assert len(due) >= 2 and set(due) <= set(clump) and len(clump) <= len(due) + 1, \
        (clump.tolist(), due.tolist())
    assert late_ms[clump].max() <= got[k] / 1e6 + 1.0
    # and the packets after them are on the file's schedule: not stretched by the stall
    after = late_ms[clump[-1] + 1:]
    assert len(after) >= 20 and np.median(np.abs(after)) <= 0.5, np.round(after, 2).tolist()


def test_replay_refuses_bad_timing_input(timed_pcapng):
    with pytest.raises(ConfigError, match="timing must be"):
        dv.Stream.from_pcap(timed_pcapng, timing="fast")
    with pytest.raises(ConfigError, match="speed must be > 0"):
        dv.Stream.from_pcap(timed_pcapng, timing="original", speed=0)
    with pytest.raises(ConfigError, match="not rate/pps/bps/percent"):
        dv.Stream.from_pcap(timed_pcapng, timing="original", pps=1000)

