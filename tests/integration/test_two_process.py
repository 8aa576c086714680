"""Our vhost-user port and our virtio-user port in two processes, in both memory modes."""
import os
import time

import pytest

from tests.helpers import Agent, cpus, free_hugepages_mb, wait_still

MODES = ["no-huge", pytest.param("hugepages", marks=pytest.mark.skipif(
    free_hugepages_mb() < 1200, reason="needs 1.2 GB of free 2 MB hugepages"))]


def _settle(agent, name, key):
    return wait_still(lambda: agent.call("stats", name=name)["stats"][key], 0.4, 30, 0.05)


@pytest.mark.parametrize("mode", MODES)
def test_virtio_to_vhost_and_back(mode, sockdir):
    path = os.path.join(sockdir, "x.sock")
    c = cpus()
    with Agent(mode, cpu=c[1]) as back, Agent(mode, cpu=c[0]) as front:
        back.call("port", name="v", kind="vhost-server", path=path)
        front.call("port", name="u", kind="virtio-user", path=path, queue_size=1024)
        assert back.call("wait", name="v", what="running")["done"]
        # guest side -> back-end
        back.call("rx", name="v")
        front.call("gen", name="u", count=1_000_000, tag="g1")
        assert front.call("gen_wait", tag="g1")["done"]
        got = _settle(back, "v", "rx_packets")
        fu = front.call("stats", name="u")
        assert fu["stats"]["tx_packets"] + sum(fu["drops"].values()) == 1_000_000
        assert got == fu["stats"]["tx_packets"]
        # back-end -> guest side (each process's PMD now does both)
        front.call("rx", name="u")
        back.call("gen", name="v", count=500_000, tag="g2")
        assert back.call("gen_wait", tag="g2")["done"]
        got_u = _settle(front, "u", "rx_packets")
        bv = back.call("stats", name="v")
        assert bv["stats"]["tx_packets"] + sum(bv["drops"].values()) == 500_000
        assert got_u == bv["stats"]["tx_packets"]
        front.call("close", name="u")
        back.call("close", name="v")
    assert os.listdir(sockdir) == []


@pytest.mark.parametrize("mode", MODES)
def test_client_reconnects_to_restarted_virtio_server(mode, sockdir):
    path = os.path.join(sockdir, "c.sock")
    c = cpus()
    with Agent(mode, cpu=c[1]) as back:
        back.call("port", name="c", kind="vhost-client", path=path)
        back.call("rx", name="c")
        sent = 0
        for round_ in range(2):
            front = Agent(mode, cpu=c[0])
            try:
                front.call("port", name="u", kind="virtio-user", path=path, server=True,
                           connect_timeout_s=20, timeout=40)
                assert back.call("wait", name="c", what="running", timeout=15)["done"]
                front.call("gen", name="u", count=200_000, tag="g", pps=2_000_000)
                assert front.call("gen_wait", tag="g")["done"]
                s = front.call("stats", name="u")
                sent += s["stats"]["tx_packets"]
                assert _settle(back, "c", "rx_packets") == sent
            finally:
                if round_ == 0:
                    front.kill()                     # the server side crashes
                else:
                    front.close()
                if os.path.exists(path):
                    os.unlink(path)                  # its stale socket, as a restarted QEMU would
        back.call("close", name="c")


def test_peer_killed_mid_traffic_back_end_survives(sockdir):
    path = os.path.join(sockdir, "k.sock")
    c = cpus()
    with Agent("no-huge", cpu=c[1]) as back:
        back.call("port", name="v", kind="vhost-server", path=path)
        back.call("rx", name="v")
        base = back.call("stats", name="v")["in_use"]
        for _round in range(3):
            front = Agent("no-huge", cpu=c[0])
            try:
                front.call("port", name="u", kind="virtio-user", path=path)
                assert back.call("wait", name="v", what="running")["done"]
                front.call("gen", name="u")              # unlimited
                time.sleep(0.5)
            finally:
                front.kill()                             # mid-traffic
            got = _settle(back, "v", "rx_packets")
            assert got > 0
            st = back.call("stats", name="v")
            assert st["in_use"] == base                   # every received mbuf came back
        back.call("close", name="v")


@pytest.mark.parametrize("mode", MODES)
def test_measured_flows_across_processes(mode, sockdir):
    """Generator in one process, receiver with a flow table in another: the TSC stamped
    by one is compared with the other's; per flow sent == received + lost, and what is lost
    is exactly what the sender counted as dropped."""
    path = os.path.join(sockdir, "m.sock")
    c = cpus()
    with Agent(mode, cpu=c[1]) as back, Agent(mode, cpu=c[0]) as front:
        back.call("port", name="v", kind="vhost-server", path=path)
        front.call("port", name="u", kind="virtio-user", path=path, queue_size=1024)
        assert back.call("wait", name="v", what="running")["done"]
        back.call("rx", name="v", flows=True)
        front.call("gen", name="u", count=300_000, pps=1_000_000, tag="f3", flow_id=3)
        front.call("gen", name="u", count=100_000, pps=200_000, tag="f9", flow_id=9)
        sent = {fid: front.call("gen_wait", tag=f"f{fid}")["built"] for fid in (3, 9)}
        assert sent == {3: 300_000, 9: 100_000}
        _settle(back, "v", "rx_packets")
        summary = back.call("flows", name="v", sent=sent)
        drops = sum(front.call("stats", name="u")["drops"].values())
        assert sorted(summary) == ["3", "9"]
        for f in summary.values():
            assert f["sent"] == f["received"] + f["lost_total"], f
            assert f["out_of_order"] == f["duplicates"] == f["clock_errors"] == 0, f
            assert 0 < f["lat_min_ns"] <= f["p50_ns"] <= f["p99_ns"] <= f["lat_max_ns"], f
            # two processes on one host: a hop is 0.1-0.6 us here (p50); 50 us leaves
            # room for a noisy host and none for a unit or clock error
            assert f["p50_ns"] < 50_000, f
        assert sum(f["lost_total"] for f in summary.values()) == drops
        front.call("close", name="u")
        back.call("close", name="v")


def _agents_of_this_process() -> set[int]:
    mine = set()
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"dpdkvirtio.peers.agent_main" in cmd:
            mine.add(int(d))
    return mine


def test_an_agent_that_does_not_start_in_time_is_stopped():
    # the caller never gets the Agent object: __init__ itself must end the process
    before = _agents_of_this_process()
    with pytest.raises(TimeoutError, match=r"agent did not start within 0.01 s \(stopped it\)"):
        Agent("no-huge", cpu=cpus()[0], timeout=0.01)
    assert _agents_of_this_process() == before
