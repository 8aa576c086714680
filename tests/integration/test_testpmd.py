"""Interop with dpdk-testpmd in both roles, exact counts: every packet one side counts as
sent is received by the other or counted as dropped."""
import os
import time

import pytest

import dpdkvirtio as dv
from tests.helpers import Testpmd, settle

pytestmark = pytest.mark.testpmd

N = 300_000


def _virtio_vdev(path, **extra):
    args = ",".join([f"path={path}", "queues=1"] + [f"{k}={v}" for k, v in extra.items()])
    return f"net_virtio_user0,{args}"


def _testpmd_received(tp, expected, timeout_s=10.0):
    """Wait until testpmd's port 0 has received ``expected`` packets (or stopped moving
    short of it: the assertions that follow then say how many are missing)."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        rx = tp.port_stats(0)["rx"]
        if rx >= expected:
            return
        if rx != last:
            last, since = rx, time.monotonic()
        elif time.monotonic() - since > 1.0:
            return
        time.sleep(0.05)


def test_testpmd_txonly_to_our_vhost_rxonly(eal, sockdir, pmd):
    v = dv.VhostUserPort(os.path.join(sockdir, "t1.sock"))
    try:
        with Testpmd(_virtio_vdev(v.path), "txonly") as tp:
            assert v.wait_running(10)
            pmd.add_rxq(v, 0, "rxonly")
            pmd.start()
            tp.start()
            time.sleep(1.5)
            st = tp.stop()
            got = settle(v, timeout=30.0)
            pmd.stop()
            assert st["tx"] > 0 and got == st["tx"]          # exact
            assert v.stats()["rx_bytes"] == got * 64
    finally:
        pmd.remove(v)
        v.close()


def test_our_generator_to_testpmd_rxonly(eal, sockdir, pmd):
    v = dv.VhostUserPort(os.path.join(sockdir, "t2.sock"))
    try:
        with Testpmd(_virtio_vdev(v.path), "rxonly") as tp:
            assert v.wait_running(10)
            tp.start()
            g = pmd.add_generator(v, 0, dv.Stream(dv.udp_frame(64), count=N, mode="single_burst"))
            pmd.start()
            assert g.wait_done(30)
            s = v.stats()
            _testpmd_received(tp, s["tx_packets"])
            st = tp.stop()
            pmd.stop()
            assert g.built == N == s["tx_packets"] + s["tx_dropped"]
            assert st["rx"] == s["tx_packets"]
    finally:
        pmd.remove(v)
        v.close()


def test_testpmd_io_loops_our_traffic_back(eal, sockdir, pmd):
    v = dv.VhostUserPort(os.path.join(sockdir, "t3.sock"))
    try:
        with Testpmd(_virtio_vdev(v.path), "io") as tp:
            assert v.wait_running(10)
            tp.start()
            pmd.add_rxq(v, 0, "rxonly")
            g = pmd.add_generator(v, 0, dv.Stream(dv.udp_frame(64), count=N, mode="single_burst",
                                                  pps=2_000_000))
            pmd.start()
            assert g.wait_done(30)
            got = settle(v, timeout=30.0)
            st = tp.stop()
            pmd.stop()
            s = v.stats()
            assert g.built == s["tx_packets"] + s["tx_dropped"]
            assert st["rx"] == s["tx_packets"]
            assert got == st["tx"] and st["rx"] == st["tx"] + st["tx_dropped"]
    finally:
        pmd.remove(v)
        v.close()


def test_our_virtio_user_to_testpmd_vhost(eal, sockdir, pmd):
    path = os.path.join(sockdir, "t4.sock")
    with Testpmd(f"net_vhost0,iface={path},queues=1", "rxonly") as tp:
        u = dv.VirtioUserPort(path)
        try:
            assert u.wait_link_up(10)
            tp.start()
            g = pmd.add_generator(u, 0, dv.Stream(dv.udp_frame(64), count=N, mode="single_burst"))
            pmd.start()
            assert g.wait_done(30)
            s = u.stats()
            _testpmd_received(tp, s["tx_packets"])
            st = tp.stop()
            pmd.stop()
            assert g.built == N == s["tx_packets"] + s["tx_dropped"]
            assert st["rx"] == s["tx_packets"]
        finally:
            pmd.remove(u)
            u.close()


def test_testpmd_vhost_txonly_to_our_virtio_user(eal, sockdir, pmd):
    path = os.path.join(sockdir, "t5.sock")
    with Testpmd(f"net_vhost0,iface={path},queues=1", "txonly") as tp:
        u = dv.VirtioUserPort(path)
        try:
            assert u.wait_link_up(10)
            pmd.add_rxq(u, 0, "rxonly")
            pmd.start()
            tp.start()
            time.sleep(1.5)
            st = tp.stop()
            got = settle(u, timeout=30.0)
            pmd.stop()
            assert st["tx"] > 0 and got == st["tx"]
        finally:
            pmd.remove(u)
            u.close()


def test_client_port_reconnects_after_server_restart(eal, sockdir, pmd):
    path = os.path.join(sockdir, "t6.sock")
    c = dv.VhostUserClientPort(path)
    pmd.add_rxq(c, 0, "rxonly")
    pmd.start()
    try:
        total = 0
        for round_ in range(2):
            tp = Testpmd(_virtio_vdev(path, server=1), "txonly")
            try:
                assert c.wait_running(15), f"round {round_}: no reconnect"
                # one connection per server start while it runs: no churn, no retries
                st = c.status()
                assert (st["connections"], st["devices"]) == (round_ + 1, round_ + 1), st
                tp.start()
                time.sleep(1)
                st = tp.stop()
                total += st["tx"]
                assert settle(c, timeout=30.0) == total                # traffic resumed, exact
            finally:
                if round_ == 0:
                    tp.kill()                             # the server dies without warning
                else:
                    tp.close()
                # virtio-user in server mode leaves its socket file behind; a restarted
                # server (like QEMU does) removes the stale one before listening again
                if os.path.exists(path):
                    os.unlink(path)
            assert c.wait_stopped(15)
        # (a retry may still reach the second server while it exits, and be reset by it:
        # a connection that never becomes a device)
        assert c.status()["devices"] == 2
        assert c.stats()["rx_packets"] == total
    finally:
        pmd.stop()
        pmd.remove(c)
        c.close()


def test_testpmd_ends_with_the_thread_that_started_it(sockdir):
    """A testpmd whose starter is gone does not outlive it (its parent-death signal): made
    on a thread that then ends without closing it, the process ends by itself."""
    import threading
    made = []

    def start():
        made.append(Testpmd(f"net_vhost0,iface={os.path.join(sockdir, 'pd.sock')},queues=1",
                            "rxonly"))
    t = threading.Thread(target=start)
    t.start()
    t.join(60)
    assert made, "testpmd did not start"
    tp = made[0]
    try:
        tp.proc.wait(10)
    finally:
        tp.close()
    assert tp.proc.returncode is not None
