"""OVS-DPDK (Debian's openvswitch-switch-dpdk, started privately) as a peer. OVS is always
the vhost-user back-end, so our side is virtio-user: connected as a client to an OVS
``dpdkvhostuser`` port, and in server mode accepting an OVS ``dpdkvhostuserclient`` port.
Traffic crosses OVS with one flow each way and is counted exactly on both sides (OVS 3.1
reports no counters for a dpdkvhostuser port here, so the receiver is drained after every
burst: nothing may be lost inside OVS)."""
import os
import shutil
import tempfile
import time

import pytest

import dpdkvirtio as dv
from dpdkvirtio.peers import OvsDpdk, front_back, ovs_dpdk_available
from tests.helpers import settle

pytestmark = pytest.mark.skipif(not ovs_dpdk_available(),
                                reason="openvswitch-switch-dpdk is not installed (make host)")
FRONT, BACK = front_back()


@pytest.fixture
def ovs(eal):
    d = tempfile.mkdtemp(prefix="dvovs-", dir="/tmp")
    mode = "hugepages" if eal.memory_mode == "hugepages" else "no-huge"
    try:
        with OvsDpdk(d, lcore_cpu=FRONT, pmd_cpu=BACK, memory_mode=mode, socket_mem=512) as o:
            yield o
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _pump(src, dst, n_packets, frame):
    """Send n_packets from src in bursts of 32, draining dst as we go."""
    tx, rx = dv.Burst(32), dv.Burst(64)
    sent = got = 0
    while sent < n_packets:
        k = min(32, n_packets - sent)
        tx.alloc(src.mempool, k, frame)
        src.tx_burst(0, tx)
        tx.free()                                   # what the ring did not take
        sent += k
        time.sleep(0.0002)                          # paced: OVS's PMD never queues much
        while True:                                 # keep OVS's path to dst empty
            k = dst.rx_burst(0, rx)
            if not k:
                break
            got += k
            rx.free()
    deadline = time.monotonic() + 5
    idle_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - idle_since < 0.5:
        n = dst.rx_burst(0, rx)
        if n:
            got += n
            rx.free()
            idle_since = time.monotonic()


def test_traffic_through_ovs_both_socket_roles(ovs, sockdir):
    # a: OVS dpdkvhostuserclient -> our virtio-user in server mode
    path_a = os.path.join(sockdir, "a.sock")
    ovs.add_vhost_client_port("a", path_a)
    a = dv.VirtioUserPort(path_a, server=True, connect_timeout_s=30, queue_size=1024)
    # b: OVS dpdkvhostuser (OVS listens) <- our virtio-user client
    path_b = ovs.add_vhost_server_port("b")
    deadline = time.monotonic() + 20
    while not os.path.exists(path_b) and time.monotonic() < deadline:
        time.sleep(0.1)
    b = dv.VirtioUserPort(path_b, queue_size=1024)
    try:
        ovs.add_flow("in_port=a,actions=output:b")
        ovs.add_flow("in_port=b,actions=output:a")
        assert a.wait_link_up(20) and b.wait_link_up(20)
        time.sleep(1.0)                              # OVS's PMD picks up both rx queues
        frame = dv.udp_frame(64, src_ip="127.0.0.1", dst_ip="127.0.0.2")
        n = 10_000
        for src, dst, src_name, dst_name in ((a, b, "a", "b"), (b, a, "b", "a")):
            tx0, rx0 = src.stats()["tx_packets"], dst.stats()["rx_packets"]
            drops0 = sum(src.drops().values())
            _pump(src, dst, n, frame)
            got = settle(dst, timeout=30.0) - rx0
            sent = src.stats()["tx_packets"] - tx0
            drops = sum(src.drops().values()) - drops0
            assert sent + drops == n                  # every packet accepted or counted
            assert got == sent, f"{src_name}->{dst_name}: sent {sent}, received {got}"
            print(f"{src_name}->{dst_name} through OVS: {sent} sent, {drops} counted drops "
                  f"(our tx ring full), {got} received")
    finally:
        b.close()
        a.close()
