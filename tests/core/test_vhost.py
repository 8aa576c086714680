"""vhost-user ports (vhost library) with a virtio-user front-end in the same process."""
import errno
import os
import socket
import stat
import time

import pytest

import dpdkvirtio as dv
from dpdkvirtio.errors import ConfigError, PeerTimeoutError, PortStateError, SocketPathError, VhostError
from tests.helpers import drain


def test_server_socket_created_with_mode_and_removed(eal, sockdir):
    path = os.path.join(sockdir, "m.sock")
    p = dv.VhostUserPort(path)
    try:
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
        assert p.mode == "server" and not p.running and p.negotiated_features == 0
    finally:
        p.close()
    assert not os.path.exists(path)
    p.close()


@pytest.mark.parametrize("owner, group", [(65534, 65534), ("nobody", "nogroup"), ("65534", "65534")])
def test_socket_mode_and_owner_options(eal, sockdir, owner, group):
    # nobody/nogroup (65534): as root, asking for uid/gid 0 would pass without any chown
    path = os.path.join(sockdir, "o.sock")
    with dv.VhostUserPort(path, socket_mode=0o600, owner=owner, group=group):
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 65534 and st.st_gid == 65534
    with dv.VhostUserPort(path, group="nogroup"):              # the group alone
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (os.getuid(), 65534)


@pytest.mark.parametrize("kw, text", [
    (dict(owner="no-such-user-dv"), "no user named 'no-such-user-dv'"),
    (dict(group="no-such-group-dv"), "no group named 'no-such-group-dv'"),
    (dict(owner=-5), "not a valid user id"),
    (dict(group=1.5), "group name or a number"),
    (dict(socket_mode=0o1000), "permission bits"),
    (dict(socket_mode="rw"), "permission bits"),
])
def test_bad_socket_mode_owner_group(eal, sockdir, kw, text):
    path = os.path.join(sockdir, "bad.sock")
    in_use = {m.name: m.in_use for m in eal.objects(dv.Mempool) if not m.closed}
    with pytest.raises(ConfigError, match=text):
        dv.VhostUserPort(path, **kw)
    assert not os.path.exists(path)                           # refused before anything exists
    assert {m.name: m.in_use for m in eal.objects(dv.Mempool) if not m.closed} == in_use


def test_connect_events_features(pair):
    v, u = pair
    kinds = [e.kind for e in v.events()]
    assert kinds[0] == "new_connection" and "new_device" in kinds
    assert kinds.count("vring_state_changed") >= 2
    st = v.status()
    assert st["running"] and st["n_vrings"] == 2 and st["enabled_vrings"] == [0, 1]
    names = dv.feature_names(v.negotiated_features)
    assert "VIRTIO_F_VERSION_1" in names and "VIRTIO_NET_F_MRG_RXBUF" in names
    assert "VIRTIO_NET_F_HOST_TSO4" not in names           # disabled by default, as OVS does
    assert u.link() [0] is True


def _send(port, n_bursts, tmpl=None, queue=0):
    b = dv.Burst(32)
    tmpl = tmpl or dv.udp_frame(64)
    sent = 0
    for _ in range(n_bursts):
        b.alloc(port.mempool, 32, tmpl)
        sent += port.tx_burst(queue, b)
    return sent


def test_virtio_to_vhost_exact_counts_and_payload(pair):
    v, u = pair
    tmpl = dv.udp_frame(100, payload=b"dpdkvirtio")
    b = dv.Burst(32)
    got, sent = 0, 0
    for _ in range(200):                                    # interleave: nothing should drop
        b.alloc(u.mempool, 32, tmpl)
        sent += u.tx_burst(0, b)
        rx = dv.Burst(64)
        n = v.rx_burst(0, rx)
        if n:
            assert rx.packet(n - 1) == tmpl
            got += n
            rx.free()
    got += drain(v)
    assert sent == got == 200 * 32
    su, sv = u.stats(), v.stats()
    assert su["tx_packets"] == sv["rx_packets"] == got and su["tx_dropped"] == 0
    assert sv["rx_bytes"] == got * 100
    assert v.vring_stats(0).get("rx_q0_good_packets") == got


def test_vhost_to_virtio_with_drops_counted(pair):
    v, u = pair
    sent = _send(v, 50)                                     # 1600 into a 256-slot ring, no reader
    drops = v.drops()
    assert sent + drops["tx_failure"] == 1600 and drops["tx_failure"] > 0
    got = drain(u)
    assert got == sent
    assert v.stats()["tx_dropped"] == drops["tx_failure"]
    assert v.mempool.in_use == 0                            # enqueue copies; we freed all


def test_keep_unsent_for_retry(pair):
    v, u = pair
    b = dv.Burst(64)
    total = made = received = 0
    for _ in range(10):
        made += b.alloc(v.mempool, 64 - len(b), dv.udp_frame(64))
        total += v.tx_burst(0, b, drop_unsent=False)
    assert len(b) > 0 and v.drops()["tx_failure"] == 0      # leftovers stayed in the burst
    assert made == total + len(b)
    received += drain(u)
    while len(b):
        total += v.tx_burst(0, b, drop_unsent=False)
        received += drain(u)
    assert total == made == received
    assert v.stats()["tx_packets"] == total and v.drops()["tx_failure"] == 0


def test_not_ready_drops_and_polls(eal, sockdir):
    with dv.VhostUserPort(os.path.join(sockdir, "n.sock")) as v:
        assert _send(v, 3) == 0
        assert v.drops() == {"tx_failure": 0, "tx_not_ready": 96, "tx_nombuf": 0, "rx_malformed": 0}
        b = dv.Burst(8)
        assert v.rx_burst(0, b) == 0
        assert int(v.counters["rx_not_ready_polls"][0]) == 1
        assert v.mempool.in_use == 0


def test_multiqueue(eal, sockdir):
    v = dv.VhostUserPort(os.path.join(sockdir, "mq.sock"), queues=2)
    u = dv.VirtioUserPort(v.path, queues=2)
    try:
        assert v.wait_running(10)
        deadline = time.monotonic() + 5
        while v.status()["enabled_vrings"] != [0, 1, 2, 3] and time.monotonic() < deadline:
            v.events()
            time.sleep(0.01)
        assert v.status()["enabled_vrings"] == [0, 1, 2, 3]
        s0 = _send(u, 3, queue=0)
        s1 = _send(u, 5, queue=1)
        assert drain(v, 0) == s0 == 96 and drain(v, 1) == s1 == 160
        assert v.counters["rx_packets"].tolist() == [96, 160]
        assert _send(v, 2, queue=1) == 64 and drain(u, 1) == 64
    finally:
        u.close()
        v.close()


def test_disconnect_and_reconnect_same_server(eal, sockdir):
    v = dv.VhostUserPort(os.path.join(sockdir, "r.sock"))
    try:
        for _round in range(3):
            u = dv.VirtioUserPort(v.path)
            assert v.wait_running(10)
            assert _send(u, 2) == 64 and drain(v) == 64
            u.close()
            assert v.wait_stopped(10)
            assert _send(v, 1) == 0                          # counted as not ready
        assert v.status()["connections"] == 3 and v.status()["devices"] == 3
        assert v.stats()["rx_packets"] == 192 and v.drops()["tx_not_ready"] == 96
    finally:
        v.close()


def test_client_port_with_virtio_user_server(eal, sockdir):
    path = os.path.join(sockdir, "c.sock")
    c = dv.VhostUserClientPort(path)                          # server not there yet: retries
    try:
        assert c.mode == "client" and not c.running
        u = dv.VirtioUserPort(path, server=True, connect_timeout_s=15)
        try:
            assert c.wait_running(10)
            assert _send(u, 4) == 128 and drain(c) == 128
        finally:
            u.close()
        assert c.wait_stopped(10)
        # the server comes back: the client reconnects by itself and traffic resumes
        u = dv.VirtioUserPort(path, server=True, connect_timeout_s=15)
        try:
            assert c.wait_running(15)
            assert _send(c, 2) == 64 and drain(u) == 64
        finally:
            u.close()
    finally:
        c.close()
    assert not os.path.exists(path)


def test_a_front_end_connects_at_once_to_a_server_just_started(eal, sockdir):
    """DPDK 22.11's vhost event thread polls with a 1 s timeout and does not wake for a new
    listening socket: without the wake-up the port start gives it, a virtio-user port's
    first message waited 0-1 s (uniform over the poll's phase; 1.0 s every time right
    after a start). Five in a row, each at most 0.3 s (by chance without the wake-up:
    0.3^5)."""
    from dpdkvirtio._core import vhost as core_vhost
    took = []
    for i in range(5):
        v = dv.VhostUserPort(os.path.join(sockdir, f"w{i}.sock"))
        t0 = time.monotonic()
        u = dv.VirtioUserPort(v.path)
        took.append(time.monotonic() - t0)
        u.close()
        v.close()
    assert core_vhost._events_pipe[0] >= 0, "the vhost event thread's pipe was not found"
    assert max(took) < 0.3, took


def test_client_port_without_reconnect_and_no_server(eal, sockdir):
    path = os.path.join(sockdir, "absent.sock")
    with pytest.raises(dv.VhostError, match="could not connect to .*start the server first"):
        dv.VhostUserClientPort(path, reconnect=False)
    assert not os.path.exists(path)
    # nothing of it is left: the same path registers again
    c = dv.VhostUserClientPort(path)
    c.close()


def test_virtio_user_server_timeout_leaves_nothing(eal, sockdir):
    path = os.path.join(sockdir, "t.sock")
    t0 = time.monotonic()
    with pytest.raises(PeerTimeoutError, match="within 0.5 s"):
        dv.VirtioUserPort(path, server=True, connect_timeout_s=0.5)
    assert time.monotonic() - t0 < 10
    assert not os.path.exists(path)
    assert not [o for o in eal.objects() if getattr(o, "name", "").startswith("net_virtio")
                and not o.closed]


def test_virtio_user_without_backend(eal, sockdir):
    with pytest.raises(ConfigError, match="no vhost-user back-end is listening"):
        dv.VirtioUserPort(os.path.join(sockdir, "none.sock"))


def test_virtio_user_backend_refuses(eal, sockdir):
    path = os.path.join(sockdir, "dead.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()                                                 # stale file, nobody listens
    with pytest.raises(dv.PortError) as ei:
        dv.VirtioUserPort(path)
    assert "DPDK:" in str(ei.value)                           # carries what DPDK logged
    os.unlink(path)


@pytest.mark.parametrize("kw, exc, text", [
    (dict(queues=0), ConfigError, "queue pairs"),
    (dict(queues=9), ConfigError, "1..8"),
    (dict(queue_size=100), ConfigError, "power of 2"),
    (dict(mac="zz:00"), ConfigError, "mac"),
])
def test_virtio_user_bad_options(eal, sockdir, kw, exc, text):
    with dv.VhostUserPort(os.path.join(sockdir, "b.sock")) as v:
        with pytest.raises(exc, match=text):
            dv.VirtioUserPort(v.path, **kw)


def test_path_errors(eal, sockdir):
    with pytest.raises(SocketPathError, match="107-byte"):
        dv.VhostUserPort("/tmp/" + "a" * 120)
    with pytest.raises(SocketPathError, match="does not exist"):
        dv.VhostUserPort("/tmp/dv-missing-dir/x.sock")
    f = os.path.join(sockdir, "file")
    open(f, "w").close()
    try:
        with pytest.raises(SocketPathError, match="not a socket"):
            dv.VhostUserPort(f)
    finally:
        os.unlink(f)


def test_same_path_twice(eal, sockdir):
    path = os.path.join(sockdir, "d.sock")
    with dv.VhostUserPort(path):
        with pytest.raises(SocketPathError, match="in use"):
            dv.VhostUserPort(path)
        with pytest.raises(VhostError, match="already used by a port of this process") as ei:
            dv.VhostUserClientPort(path)
        # an errno of our own goes through the same choke point as DPDK's
        assert ei.value.errno == errno.EEXIST and isinstance(ei.value, FileExistsError)


def test_queue_and_state_errors(eal, sockdir):
    v = dv.VhostUserPort(os.path.join(sockdir, "q.sock"), start=False)
    b = dv.Burst(8)
    with pytest.raises(PortStateError, match="created"):
        v.tx_burst(0, b)
    v.start()
    with pytest.raises(IndexError):
        v.rx_burst(5, b)
    with pytest.raises(ConfigError):
        dv.VhostUserPort(os.path.join(sockdir, "q2.sock"), queues=0)
    v.close()
    with pytest.raises(PortStateError, match="closed"):
        v.rx_burst(0, b)
    with pytest.raises(PortStateError, match="cannot wait on port .* closed"):
        v.wait_running(1)                       # (was an AttributeError)


def test_counters_are_live_numpy_views(pair):
    v, u = pair
    arr = v.counters
    assert arr.dtype == dv.QUEUE_STATS_DTYPE and arr.shape == (1,)
    assert not arr.flags.writeable
    before = int(arr["rx_packets"][0])
    _send(u, 1)
    drain(v)
    assert int(arr["rx_packets"][0]) == before + 32          # same array, new value
    meter = dv.RateMeter(arr)
    assert set(meter.sample()) == set(dv.QUEUE_STATS_DTYPE.names)


def test_events_fd_is_pollable(eal, sockdir):
    import select
    v = dv.VhostUserPort(os.path.join(sockdir, "e.sock"))
    try:
        dv.poll_events()
        v.events()
        u = dv.VirtioUserPort(v.path)
        r, _, _ = select.select([dv.events_fd()], [], [], 5)
        assert r                                         # readable: events are waiting
        kinds = _events_until(v, "new_device", 10)       # (the device may come up later)
        assert kinds[0] == "new_connection" and "new_device" in kinds, kinds
        u.close()
        # the front-end going away is posted too
        kinds = _events_until(v, "destroy_connection", 10)
        assert "destroy_device" in kinds and "destroy_connection" in kinds, kinds
    finally:
        v.close()


def _events_until(port, kind, timeout_s=5.0):
    import select
    kinds, deadline = [], time.monotonic() + timeout_s
    while kind not in kinds and time.monotonic() < deadline:
        select.select([dv.events_fd()], [], [], 0.05)
        kinds += [e.kind for e in port.events()]
    return kinds


def test_refused_and_rejected_events_are_posted(eal, sockdir):
    from tests.reliability.vhostfuzz import _msg
    v = dv.VhostUserPort(os.path.join(sockdir, "ev.sock"))
    u = dv.VirtioUserPort(v.path)
    try:
        assert v.wait_running(10)
        v.events()
        # a second front-end while the first one's device runs: refused, and said so
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(v.path)
        assert s.recv(64) == b""                               # the back-end closed it
        s.close()
        assert "connection_refused" in _events_until(v, "connection_refused")
        assert v.status()["refused"] == 1
        u.close()
        assert "destroy_connection" in _events_until(v, "destroy_connection")   # disconnected
        # a request the message screen neutralises: rejected, and said so
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(v.path)
        s.sendall(_msg(31, bytes(24)))                         # GET_INFLIGHT_FD
        assert s.recv(64) == b""
        s.close()
        kinds = _events_until(v, "message_rejected")
        assert "new_connection" in kinds and "message_rejected" in kinds, kinds
        assert v.status()["rejected"] == 1
    finally:
        u.close()
        v.close()


def test_natural_teardown_order_logs_no_errors(eal, sockdir, caplog):
    """Closing the back-end, then its virtio-user front-end: DPDK's complaints that the
    back-end is gone are expected, logged at INFO, not ERROR."""
    import logging
    complaints = []
    for attempt in range(5):                      # DPDK does not complain every time
        v = dv.VhostUserPort(os.path.join(sockdir, f"nat{attempt}.sock"))
        u = dv.VirtioUserPort(v.path)
        assert v.wait_running(10)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="dpdkvirtio.dpdk"):
            v.close()
            time.sleep(0.2)                       # the back-end's connection is surely gone
            u.close()
        dpdk = [r for r in caplog.records if r.name.startswith("dpdkvirtio.dpdk.")]
        assert not [r.getMessage() for r in dpdk if r.levelno >= logging.WARNING]
        complaints += [r.getMessage() for r in dpdk if "vring base" in r.getMessage()]
        if complaints:
            break
    assert complaints, "DPDK never complained: the check was not armed"


def test_undrained_events_are_bounded(eal, sockdir, monkeypatch):
    """A port nobody drains keeps its last EVENTS_KEPT events and counts the rest: a
    front-end reconnecting in a loop cannot grow the process (the hostile-guest run saw
    ~1 KB per connection before)."""
    from dpdkvirtio.ports import vhost
    monkeypatch.setattr(vhost, "EVENTS_KEPT", 8)
    v = dv.VhostUserPort(os.path.join(sockdir, "b.sock"))
    try:
        for _ in range(4):
            u = dv.VirtioUserPort(v.path)
            assert v.wait_running(10)
            u.close()
            assert v.wait_stopped(10)
        dv.poll_events()
        assert v.events_dropped > 0
        kept = v.events()
        assert len(kept) == 8 and kept[-1].kind in ("destroy_device", "destroy_connection"), kept
        assert v.events() == []
    finally:
        v.close()


def test_vectorized_virtio_user_receives_every_frame_intact(eal, sockdir):
    # the SSE receive path: mergeable buffers and in-order negotiated off, frames of
    # several sizes arrive whole and in order
    v = dv.VhostUserPort(os.path.join(sockdir, "vec.sock"))
    u = dv.VirtioUserPort(v.path, queue_size=256, vectorized=True)
    try:
        assert v.wait_running(10) and u.wait_link_up(5)
        names = dv.feature_names(v.negotiated_features)
        assert "VIRTIO_NET_F_MRG_RXBUF" not in names and "VIRTIO_F_IN_ORDER" not in names
        frames = [dv.udp_frame(size, payload=bytes([size % 251]) * 8) for size in (60, 64, 200, 1514)]
        b, rx = dv.Burst(32), dv.Burst(64)
        got = []
        for i in range(300):
            b.alloc(v.mempool, 32, frames[i % len(frames)])
            assert v.tx_burst(0, b) == 32
            while (n := u.rx_burst(0, rx)):
                got += [rx.packet(k) for k in range(n)]
                rx.free()
        got += [None] * drain(u)
        assert len(got) == 300 * 32
        assert all(got[i] == frames[(i // 32) % len(frames)] for i in range(len(got)))
    finally:
        u.close()
        v.close()


def test_vectorized_refuses_what_it_cannot_do(eal, sockdir):
    v = dv.VhostUserPort(os.path.join(sockdir, "vec2.sock"))
    try:
        for bad in ({"mrg_rxbuf": True}, {"in_order": True}, {"packed_vq": True}):
            with pytest.raises(dv.ConfigError, match="vectorized receive needs"):
                dv.VirtioUserPort(v.path, vectorized=True, **bad)
        with pytest.raises(dv.ConfigError, match="vectorized must be True or False"):
            dv.VirtioUserPort(v.path, vectorized=1)
    finally:
        v.close()
