"""Reliability fixtures. `baseline`: open fds, resident memory and mbufs in use of this
process are back where they were. `untouched`: a second port pair, carrying paced traffic
all along on a PMD nothing else uses, lost nothing. docs/reliability.md lists which
tests use them (tests whose target lives in another process check that process)."""

import os
import time

import pytest

import dpdkvirtio as dv
from dpdkvirtio.peers import front_back
from tests.helpers import settle

FRONT, BACK = front_back()
UNTOUCHED_PPS = 100_000


def pytest_addoption(parser):
    parser.addoption("--soak-seconds", type=float, default=8.0,
                     help="duration of the soak test (hours are fine: --soak-seconds 36000)")
    parser.addoption("--hostile-cases", type=int,
                     default=int(os.environ.get("DV_HOSTILE_CASES", "10000")),
                     help="adversarial virtqueue cases of test_hostile_guests_10000_cases "
                          "(or DV_HOSTILE_CASES; 100000 for a long run)")
    parser.addoption("--hostile-seconds", type=float,
                     default=float(os.environ.get("DV_HOSTILE_SECONDS", "0")),
                     help="run hostile-guest cases for this long instead (make fuzz HOURS=N)")


def pytest_collection_modifyitems(config, items):
    """The hostile-guest run's time limit follows its case count (about 7 ms a case
    here; ten times that, and never below the suite's 600 s) or its duration."""
    cases = config.getoption("--hostile-cases")
    seconds = config.getoption("--hostile-seconds")
    limit = int(seconds * 1.2 + 300) if seconds else max(600, int(cases * 0.07) + 300)
    for item in items:
        if item.name == "test_hostile_guests_10000_cases":
            item.add_marker(pytest.mark.timeout(limit))


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def fd_targets() -> dict[int, str]:
    """fd -> what it is (readlink of /proc/self/fd/N), to name a leak."""
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20




class Untouched:
    """A vhost-user/virtio-user pair carrying paced traffic on a PMD of its own (FRONT
    CPU). Nothing else may run on that PMD: check_and_close() asserts it."""

    def __init__(self, sockdir):
        self.v = dv.VhostUserPort(os.path.join(sockdir, "untouched.sock"))
        self.u = dv.VirtioUserPort(self.v.path, queue_size=1024)
        assert self.v.wait_running(10)
        self._pmd = dv.Pmd(cpu=FRONT)
        self._pmd.add_rxq(self.v, 0, "rxonly")
        self.gen = self._pmd.add_generator(self.u, 0, dv.Stream(dv.udp_frame(64), pps=UNTOUCHED_PPS))
        self._pmd.start()

    def check_and_close(self):
        try:
            mine = sorted((a.port.name, a.queue, a.action) for a in self._pmd.assignments())
            self.gen.pause()                     # returns once the generator has stopped
            got = settle(self.v)
            built = self.gen.built
            drops = self.u.drops()
        finally:
            self._pmd.close()
            self.u.close()
            self.v.close()
        assert mine == sorted([(self.v.name, 0, "rxonly"), (self.u.name, 0, "generator")]), \
            f"the untouched pair's PMD polled something else too: {mine}"
        assert built > 0
        assert sum(drops.values()) == 0, f"the untouched pair dropped packets: {drops}"
        assert got == built, f"the untouched pair lost {built - got} packets"


@pytest.fixture
def untouched(eal, sockdir):
    pair = Untouched(sockdir)
    yield pair
    pair.check_and_close()


def mbufs_in_use() -> dict:
    """Open mempools of this process and their mbufs in use."""
    return {m.name: m.in_use for m in dv.current().objects(dv.Mempool) if not m.closed}


@pytest.fixture(scope="session")
def warm(eal):
    """DPDK creates some process-wide things once, on first use, and keeps them (the
    vhost-events thread and its fdset pipe, the interrupt thread's epoll fd): create and
    close a port pair once so that baselines do not count them as leaks."""
    import tempfile
    d = tempfile.mkdtemp(prefix="dvwarm-", dir="/tmp")
    v = dv.VhostUserPort(os.path.join(d, "w.sock"))
    u = dv.VirtioUserPort(v.path)
    v.wait_running(10)
    u.close()
    v.close()
    os.rmdir(d)


@pytest.fixture
def baseline(eal, warm):
    """Open fds, RSS and mbufs in use before; checked after (RSS with a small slack for
    allocator caches; fds and mbufs exactly)."""
    import gc
    gc.collect()
    fds0, rss0, mbufs0 = fd_count(), rss_mb(), mbufs_in_use()
    targets0 = fd_targets()
    yield
    gc.collect()
    deadline = time.monotonic() + 5
    while fd_count() > fds0 and time.monotonic() < deadline:
        time.sleep(0.1)
    new = {fd: t for fd, t in fd_targets().items() if targets0.get(fd) != t}
    assert fd_count() <= fds0, f"fds leaked: {fds0} -> {fd_count()}: {new}"
    assert rss_mb() - rss0 < 64, f"RSS grew by {rss_mb() - rss0:.0f} MB"
    assert mbufs_in_use() == mbufs0, f"mempools or mbufs leaked: {mbufs0} -> {mbufs_in_use()}"


@pytest.fixture
def pmd(eal):
    p = dv.Pmd(cpu=BACK)
    yield p
    p.close()


@pytest.fixture
def pmd2(eal):
    """A second PMD of the test's own, on the same CPU as ``pmd`` (the untouched pair
    keeps the other CPU to itself)."""
    p = dv.Pmd(cpu=BACK)
    yield p
    p.close()
