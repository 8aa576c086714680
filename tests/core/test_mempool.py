"""Mempools: sizing, introspection, refusal to close while in use, DPDK errors mapped."""
import pytest

import dpdkvirtio as dv
from dpdkvirtio.errors import ConfigError, MempoolBusyError, MempoolError


def test_create_and_introspect(eal):
    mp = dv.Mempool(1023, cache_size=32)
    try:
        assert mp.size == 1023 and mp.available == 1023 and mp.in_use == 0
        assert mp.data_size == 2048
        b = dv.Burst(64)
        assert b.alloc(mp, 40, b"\x01" * 60) == 40
        assert mp.in_use == 40 and mp.available == 1023 - 40
        with pytest.raises(MempoolBusyError, match="40 mbufs in use.*Free the bursts"):
            mp.close()
        b.free()
        assert mp.in_use == 0
    finally:
        mp.close()
    assert mp.closed
    mp.close()                                      # idempotent
    with pytest.raises(MempoolError, match="closed"):
        _ = mp.available


def test_sizing_helper():
    n = dv.mempool_size(ports=2, queues=2, rx_ring_size=256, tx_ring_size=256, burst_size=32,
                        lcores=2, cache_size=256)
    assert (n + 1) & n == 0                          # 2**k - 1
    assert n >= 2 * 2 * (256 + 256 + 64) + 2 * 384
    assert dv.mempool_size() < dv.mempool_size(ports=8)
    with pytest.raises(ConfigError):
        dv.mempool_size(ports=0)


@pytest.mark.parametrize("kw, text", [
    (dict(size=1), "at least 2"),
    (dict(size=100, cache_size=512), "cache_size"),
    (dict(size=1023, cache_size=600), "cache_size"),
    (dict(size=1023, data_room_size=100), "data_room_size"),
])
def test_bad_arguments(eal, kw, text):
    with pytest.raises(ConfigError, match=text):
        dv.Mempool(name="dvbad", **kw)


def test_name_rules(eal):
    with pytest.raises(ConfigError, match="name"):
        dv.Mempool(255, name="x" * 30, cache_size=0)
    mp = dv.Mempool(255, name="dvdup", cache_size=0)
    try:
        with pytest.raises(MempoolError) as ei:
            dv.Mempool(255, name="dvdup", cache_size=0)
        assert ei.value.errno == 17 and isinstance(ei.value, FileExistsError)
    finally:
        mp.close()


def test_too_big_is_enomem_with_hint(eal):
    with pytest.raises(MempoolError) as ei:
        dv.Mempool(64 * 1024 * 1024, name="dvhuge", cache_size=0)
    assert ei.value.errno == 12 and isinstance(ei.value, MemoryError)
    assert "hugepages" in str(ei.value)


def test_port_holds_its_pool(eal, sockdir):
    import os
    mp = dv.Mempool(4095)
    port = dv.VhostUserPort(os.path.join(sockdir, "p.sock"), mempool=mp)
    try:
        assert mp.users == 1
        with pytest.raises(MempoolBusyError, match="open port"):
            mp.close()
    finally:
        port.close()
    assert mp.users == 0
    mp.close()


def test_unclosed_objects_warn_and_close(eal, sockdir):
    """A port, PMD or mempool collected while open emits ResourceWarning naming it (the
    uvloop/pyzmq convention) and is closed then; the EAL tracks them weakly."""
    import gc
    import os
    import warnings
    path = os.path.join(sockdir, "leak.sock")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        port = dv.VhostUserPort(path)
        pool = dv.Mempool(255, name="dvleak", cache_size=0)
        pmd = dv.Pmd()
        lcore = pmd.lcore
        del port, pool, pmd
        gc.collect()
    texts = sorted(str(w.message) for w in caught if w.category is ResourceWarning)
    assert len(texts) == 3, texts
    assert any("unclosed <Mempool 'dvleak'" in t for t in texts), texts
    assert any(f"unclosed <Pmd lcore={lcore}" in t for t in texts), texts
    assert any(f"unclosed <VhostUserPort {path!r}" in t for t in texts), texts
    assert not os.path.exists(path)                  # the port was closed: socket removed
    assert not [o for o in eal.objects() if getattr(o, "name", None) == "dvleak" and not o.closed]
    dv.Pmd(lcore=lcore).close()                      # the lcore is free again


def test_switch_and_capture_are_tracked(eal, sockdir):
    """A switch collected while open warns like a port and closes itself (its PMDs and
    ports with it); a running capture is tracked by the EAL until it stops."""
    import gc
    import os
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        sw = dv.Switch("dvleakbr", {"vhost-sock-dir": sockdir})
        sw.add_port("p0", "dpdkvhostuser")
        port = sw.ports["p0"].port
        lcores = [p.lcore for p in sw.pmds]
        assert sw in eal.objects(dv.Switch)
        cap = port.capture()
        assert cap in eal.objects(type(cap))
        cap.close()
        assert cap not in eal.objects(type(cap)) and not cap.running
        del sw
        gc.collect()
    texts = [str(w.message) for w in caught if w.category is ResourceWarning]
    assert texts == [next(t for t in texts if "unclosed <Switch 'dvleakbr'" in t)], texts
    assert port.closed and not os.path.exists(os.path.join(sockdir, "p0"))
    for lcore in lcores:
        dv.Pmd(lcore=lcore).close()                  # the switch's lcores are free again
