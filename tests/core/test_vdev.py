"""Any vdev by devargs through the same EthPort code: net_ring, net_null, net_tap."""
import os

import pytest

import dpdkvirtio as dv
from dpdkvirtio.errors import ConfigError, PortError, PortStateError


def test_net_ring_loops_back_exactly(eal):
    with dv.VdevPort("net_ring0") as p:
        assert p.state == "started" and p.driver_name() == "net_ring"
        b = dv.Burst(32)
        sent = 0
        for _ in range(10):
            b.alloc(p.mempool, 32, dv.udp_frame(64))
            sent += p.tx_burst(0, b)
        got = 0
        rx = dv.Burst(32)
        while True:
            n = p.rx_burst(0, rx)
            if not n:
                break
            assert rx.packet(0) == dv.udp_frame(64)
            got += n
            rx.free()
        assert sent == got == 320
        s = p.stats()
        assert s["tx_packets"] == s["rx_packets"] == 320 and s["tx_bytes"] == 320 * 64
        assert p.dpdk_stats()["opackets"] == 320


def test_net_null_generates_and_sinks(eal):
    with dv.VdevPort("net_null0", "size=64,copy=0", queues=2) as p:
        b = dv.Burst(32)
        assert p.rx_burst(1, b) == 32 and b.lengths().tolist() == [64] * 32
        assert p.tx_burst(0, b) == 32 and len(b) == 0
        assert p.counters["rx_packets"].tolist() == [0, 32]
        assert p.counters["tx_packets"].tolist() == [32, 0]
        assert any(name.startswith("rx_q1") for name, _ in p.xstats())


def test_net_tap_probe(eal):
    assert os.path.exists("/dev/net/tun"), "net_tap needs /dev/net/tun (modprobe tun)"
    iface = f"dvtap{os.getpid() % 10000}"
    with dv.VdevPort("net_tap0", f"iface={iface}") as p:
        assert p.driver_name() == "net_tap"
        assert os.path.exists(f"/sys/class/net/{iface}")
    assert not os.path.exists(f"/sys/class/net/{iface}")


def test_unknown_devarg_key_is_a_clear_error(eal):
    tracked_before = [o for o in eal.objects() if not getattr(o, "closed", False)]
    with pytest.raises(PortError) as ei:
        dv.VdevPort("net_null0", "colour=blue")
    text = str(ei.value)
    assert "rte_eal_hotplug_add" in text and "devargs" in text
    # nothing half-created (port or its mempool) is tracked
    assert [o for o in eal.objects() if not getattr(o, "closed", False)] == tracked_before
    assert not [o for o in eal.objects() if getattr(o, "name", "") == "net_null0" and not o.closed]


def test_unknown_driver(eal):
    with pytest.raises(PortError, match="net_nosuch0"):
        dv.VdevPort("net_nosuch0")


@pytest.mark.parametrize("name", ["", "net null", "a/b", "net_null0,x=1"])
def test_bad_vdev_names(eal, name):
    with pytest.raises(ConfigError):
        dv.VdevPort(name)


def test_state_machine_and_queue_range(eal):
    p = dv.VdevPort("net_null0", start=False)
    b = dv.Burst(8)
    with pytest.raises(PortStateError, match="it is created.*start"):
        p.rx_burst(0, b)
    p.start()
    with pytest.raises(IndexError, match="queue 1 out of range"):
        p.rx_burst(1, b)
    with pytest.raises(IndexError):
        p.tx_burst(-1, b)
    p.stop()
    assert p.state == "stopped"
    with pytest.raises(PortStateError, match="stopped"):
        p.rx_burst(0, b)
    p.start()
    p.close()
    p.close()                                           # idempotent
    with pytest.raises(PortStateError, match="closed.*Create a new port"):
        p.rx_burst(0, b)
    with pytest.raises(PortStateError):
        p.start()
    with pytest.raises(PortStateError):
        p.stats_driver = p.dpdk_stats()


def test_virtio_user_vdev_without_backend_fails_cleanly(eal):
    mp = dv.Mempool(127, cache_size=0)
    try:
        with pytest.raises(PortError):
            dv.VdevPort("net_virtio_user9", "path=/tmp/none.sock", mempool=mp)
    finally:
        mp.close()
