"""The dpdkvirtio command line against a running `dpdkvirtio run`: topologies, ctl commands
(human and --json), runtime changes under traffic, socket rules, bad input."""
import json
import os
import re
import stat
import subprocess
import sys
import time

import pytest

from dpdkvirtio.peers import Agent, Testpmd
from tests.helpers import REPO, wait_still
from tests.integration.running import BACK, FRONT, Running, cli


def _vu(path, **kw):
    return "net_virtio_user0," + ",".join([f"path={path}", "queues=1"] + [f"{k}={v}" for k, v in kw.items()])


@pytest.mark.testpmd
def test_patched_pair_exact_counts_via_ctl(d):
    sw = Running(d, [("a", "dpdkvhostuser", {}), ("b", "dpdkvhostuser", {})], [("a", "b"), ("b", "a")])
    try:
        with Testpmd(_vu(os.path.join(d, "b")), "rxonly", fwd_cpu=FRONT, main_cpu=BACK) as drain, \
                Testpmd(_vu(os.path.join(d, "a")), "txonly", fwd_cpu=FRONT, main_cpu=BACK) as feed:
            drain.start()
            feed.start()
            time.sleep(2)
            fst = feed.stop()
            sw.settle("b", "tx_packets")
            dst = drain.stop()
            s = sw.stats()
        assert fst["tx"] > 0 and s["a"]["rx_packets"] == fst["tx"]
        assert s["a"]["rx_packets"] == s["b"]["tx_packets"] + s["b"]["tx_dropped"]
        assert s["b"]["tx_packets"] == dst["rx"]
    finally:
        assert sw.stop() == 0
    assert "final counters" in "".join(sw.out)


# Runtime changes under traffic are judged on a run the host let run: the path can keep
# every packet only while no poller of it loses its CPU for longer than a ring holds
# (RUNTIME_RING / RUNTIME_PPS: 328 ms). This VM's hypervisor has taken a poller's CPU for
# 100-170 ms at a time (and 1-2 s in all over 10 s), which a 4,096-slot ring at 200 kpps
# (20 ms) cannot hold whatever the switch does: a run in which the switch's PMD stalled
# longer than the ring holds is run again, up to three times, and three such runs fail.
RUNTIME_RING = 16384
RUNTIME_PPS = 50_000


def _add_del_under_traffic(d, n):
    """One run: ports come and go while a -> b carries n packets. Returns the sender's,
    the drain's and the switch's counters, and the switch PMD's longest stall (ms)."""
    sw = Running(d, [("a", "dpdkvhostuser", {}), ("b", "dpdkvhostuser", {})], [("a", "b")])
    try:
        with Agent(cpu=FRONT, control_cpus=[FRONT]) as peer:
            for name, port in (("ua", "a"), ("ub", "b")):
                peer.call("port", name=name, kind="virtio-user", path=os.path.join(d, port),
                          queue_size=RUNTIME_RING)
            peer.call("rx", name="ub", start=False)
            peer.call("gen", name="ua", count=n, pps=RUNTIME_PPS, tag="g")
            # through the control socket itself: a `dpdkvirtio ctl` process per command
            # would start Python 30 times on the pollers' CPUs (tested elsewhere)
            from dpdkvirtio.control import request
            for i in range(10):
                request(sw.sock, "add-port", name=f"c{i}", type="dpdkvhostuser", options=["n_rxq=2"])
                request(sw.sock, "add-flow", in_port=f"c{i}", out_port="a")
                request(sw.sock, "del-port", name=f"c{i}")
            assert peer.call("gen_wait", tag="g", timeout=60)["done"]
            sw.settle("b", "tx_packets")
            wait_still(lambda: peer.call("stats", name="ub")["stats"]["rx_packets"], 0.5, 30, 0.05)
            f = peer.call("stats", name="ua")
            r = peer.call("stats", name="ub")
            s = sw.stats()
            stall_ms = max(p["stall_max_ns"] for p in sw.ctl("pmd-perf-show")) / 1e6
    finally:
        assert sw.stop() == 0
    return f, r, s, stall_ms


def test_runtime_add_del_loses_nothing_elsewhere(d):
    """Ports come and go (and get rules) while a -> b carries traffic: a -> b keeps
    every packet. One agent process sends into a and drains b with one poller on the
    other CPU (two pollers on one CPU would deschedule each other for milliseconds)."""
    n = 500_000
    ring_ms = RUNTIME_RING / RUNTIME_PPS * 1e3
    stalls = []
    for _ in range(3):
        f, r, s, stall_ms = _add_del_under_traffic(d, n)
        if stall_ms < ring_ms:
            break
        stalls.append(round(stall_ms, 1))
        print(f"\nthe switch's PMD lost its CPU for {stall_ms:.1f} ms at once, longer than "
              f"the ring holds ({ring_ms:.0f} ms): again")
    else:
        pytest.fail(f"the host took the switch's PMD for longer than a ring holds in three "
                    f"runs ({stalls} ms): no run to judge")
    assert f["stats"]["tx_packets"] == n and sum(f["drops"].values()) == 0, (f, stall_ms)
    assert s["a"]["rx_packets"] == n
    assert s["b"]["tx_packets"] == n and s["b"]["tx_dropped"] == 0
    assert r["stats"]["rx_packets"] == n
    assert not any(name.startswith("c") for name in s)


def test_every_ctl_command_human_and_json(d):
    sw = Running(d, [("a", "dpdkvhostuser", {})])
    try:
        show = sw.ctl("show")
        assert show["bridge"] == "br0" and [p["name"] for p in show["ports"]] == ["a"]
        assert show["pmds"][0]["cpu"] == BACK and show["pmds"][0]["running"]
        assert re.search(r"^bridge br0 \(DPDK 22\.11\.\d+, memory ", sw.ctl("show", json_out=False))
        assert re.search(r"switch br0 running \(DPDK 22\.11\.\d+, memory ", "".join(sw.out))
        c = sw.ctl("add-port", "c", "dpdkvhostuser", "n_rxq=2", "socket-mode=0600")
        assert c["queues"] == 2 and stat.S_IMODE(os.stat(os.path.join(d, "c")).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.join(d, "a")).st_mode) == 0o660
        def port_c():
            return next(p for p in sw.ctl("show")["ports"] if p["name"] == "c")
        assert port_c()["tx_retries_max"] == 8                # the default, read from the port
        sw.ctl("set", "c", "tx-retries-max=4")
        assert port_c()["tx_retries_max"] == 4                # what the data path now applies
        sw.ctl("set", "c", f"pmd-rxq-affinity=1:{BACK}")
        rows = sw.ctl("pmd-rxq-show")
        assert sorted((r["port"], r["queue"]) for r in rows) == [("a", 0), ("c", 0), ("c", 1)]
        assert {r["pmd_cpu"] for r in rows if (r["port"], r["queue"]) == ("c", 1)} == {BACK}
        assert "usage %" in sw.ctl("pmd-rxq-show", json_out=False)
        sw.ctl("add-flow", "c", "a")
        rows = [r for r in sw.ctl("pmd-rxq-show") if r["port"] == "c"]
        assert {(r["action"], r.get("out_port")) for r in rows} == {("io", "a")}
        sw.ctl("del-flow", "c")
        assert {r["action"] for r in sw.ctl("pmd-rxq-show") if r["port"] == "c"} == {"rxonly"}
        perf = sw.ctl("pmd-perf-show")
        assert perf[0]["iterations"] > 0 and "burst_histogram" in perf[0]
        assert "cycles/packet" in sw.ctl("pmd-perf-show", json_out=False)
        assert sw.ctl("port-stats", "c")["c"]["rx_packets"] == 0
        assert set(sw.ctl("port-stats")) == {"a", "c"}
        assert "tx_failure_drops" in sw.ctl("port-stats", json_out=False)
        top = cli("top", "--socket", sw.sock, "--count", "1", "--interval", "0.3")
        assert top.returncode == 0 and "rx Mpps" in top.stdout and "busy %" in top.stdout
        assert sw.ctl("del-port", "c") == {"deleted": "c"}
        assert not os.path.exists(os.path.join(d, "c"))
        assert sw.ctl("stop") == "stopping"
        assert sw.proc.wait(30) == 0
    finally:
        sw.stop()
    assert not os.path.exists(os.path.join(d, "a")) and not os.path.exists(sw.sock)


@pytest.mark.testpmd
def test_second_front_end_does_not_take_the_port_over(d):
    sw = Running(d, [("a", "dpdkvhostuser", {})])
    try:
        path = os.path.join(d, "a")
        with Testpmd(_vu(path), "txonly", fwd_cpu=FRONT, main_cpu=BACK) as first:
            first.start()
            with Testpmd(_vu(path), "txonly", fwd_cpu=FRONT, main_cpu=BACK, timeout=20) as second:
                # its virtio-user probe failed: the back-end closed the connection
                assert "No probed ethernet devices" in second.out.buf
            before = sw.stats()["a"]["rx_packets"]
            time.sleep(1)
            assert sw.stats()["a"]["rx_packets"] > before      # the first one still forwards
            port = sw.ctl("show")["ports"][0]
            assert port["running"] and port["connections"] == 1 and port["refused"] >= 1
            first.stop()
    finally:
        assert sw.stop() == 0
    assert "refused a second front-end" in "".join(sw.out)


def test_drivers():
    r = cli("drivers")
    assert r.returncode == 0
    for name, key in (("net_vhost", "iface="), ("net_virtio_user", "queue_size=")):
        line = next(l for l in r.stdout.splitlines() if l.strip().startswith(name + " "))
        assert key in line
    j = json.loads(cli("drivers", "--json", "eth_vhost0", "net_virtio_user0").stdout)
    assert [x["name"] for x in j] == ["net_vhost", "net_virtio_user"]
    assert {"iface", "queues", "client"} <= set(j[0]["params"])
    r = cli("drivers", "net_nosuch0")
    assert r.returncode == 2 and "no driver matches" in r.stderr


def test_doctor_and_hugepages():
    r = cli("doctor", "--json")
    checks = json.loads(r.stdout)
    names = {c["check"] for c in checks}
    assert {"dpdk version", "driver net_vhost", "driver net_virtio_user", "CPUs",
            "isolated CPUs"} <= names
    busy = next(c for c in checks if c["check"] == "busy pollers")
    offset = [c for c in checks if c["check"] == "TSC offset"]
    # measured when nothing spins (the probe spins both CPUs): here, in step
    assert busy["verdict"] == "warn" or (offset and offset[0]["verdict"] == "ok"), (busy, offset)
    assert all(c["verdict"] in ("ok", "warn", "fail") for c in checks)
    assert all(c["todo"] for c in checks if c["verdict"] != "ok")
    assert r.returncode == (1 if any(c["verdict"] == "fail" for c in checks) else 0)
    human = cli("doctor").stdout
    assert "[ok  ] dpdk version: DPDK 22.11" in human
    hp = json.loads(cli("hugepages", "--json").stdout)
    assert any(p["size_kb"] == 2048 for p in hp["pools"])
    assert "free MB" in cli("hugepages").stdout
    r = cli("hugepages", "reserve")
    assert r.returncode == 2 and "number of pages" in r.stderr


def _one_line_error(r, code=None):
    assert r.returncode != 0 and (code is None or r.returncode == code)
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("dpdkvirtio: error:"), r.stderr
    return lines[0]


def test_bad_topology_and_cli_input(d):
    bad = os.path.join(d, "bad.toml")
    with open(bad, "w") as f:
        f.write('[switch]\nname = "br0"\n[[port]]\nname = "x/y"\ntype = "dpdkvhostuser"\n')
    assert "must not contain" in _one_line_error(cli("run", bad), 2)
    with open(bad, "w") as f:
        f.write(f'[switch.other_config]\nvhost-sock-dir = "{d}"\npmd-cpu-mask = "{hex(1 << BACK)}"\n'
                f'dpdk-lcore-mask = "{hex(1 << FRONT)}"\ndpdk-socket-mem = "512"\n'
                '[[port]]\nname = "ok"\ntype = "dpdkvhostuser"\n'
                '[[port]]\nname = "broken"\ntype = "dpdk"\n'
                'options = { dpdk-devargs = "net_null0,colour=blue" }\n')
    line = _one_line_error(cli("run", bad), 1)
    assert "rte_eal_hotplug_add" in line
    assert not os.path.exists(os.path.join(d, "ok"))       # nothing half-created stays
    dry = cli("run", "--dry-run", bad)
    assert dry.returncode == 0 and "does not list devargs key 'colour'" in dry.stdout
    assert not os.path.exists(os.path.join(d, "ok"))
    os.unlink(bad)
    assert "no control socket" in _one_line_error(cli("ctl", "--socket", os.path.join(d, "x.ctl"), "show"), 1)
    assert "no such file" in _one_line_error(cli("run", "/nonexistent.toml"), 2)


def test_ctl_errors_from_a_running_switch(d):
    sw = Running(d, [("a", "dpdkvhostuser", {})])
    try:
        for args, text in [(("add-port", "b", "tap"), "unknown port type"),
                           (("add-port", "a", "dpdkvhostuser"), "already exists"),
                           (("add-port", "b/c", "dpdkvhostuser"), "must not contain"),
                           (("del-port", "nosuch"), "no port"),
                           (("add-flow", "a", "zz"), "no port 'zz'"),
                           (("set", "a", "n_rxq=4"), "cannot change"),
                           (("set", "a", "pmd-rxq-affinity=0:99"), "no PMD"),
                           (("add-port", "b", "dpdk", "dpdk-devargs=net_nosuch0"), "rte_eal_hotplug_add"),
                           (("flow-stats",), "flow statistics are off"),
                           (("add-generator", "g", "zz"), "no port 'zz'"),
                           (("del-generator", "g"), "no generator 'g'")]:
            r = sw.ctl(*args, check=False)
            assert text in _one_line_error(r), args
        assert [p["name"] for p in sw.ctl("show")["ports"]] == ["a"]   # unchanged
        top = cli("top", "--socket", sw.sock, "--count", "1", "--interval", "0.2")
        assert top.returncode == 0 and "p50 us" not in top.stdout     # no flows section
    finally:
        assert sw.stop() == 0


def _raw(sock_path, payload: bytes, timeout=10.0) -> list:
    """Send raw bytes to the control socket; the JSON replies until it closes or idles."""
    import socket as _socket
    s = _socket.socket(_socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(sock_path)
    try:
        s.sendall(payload)
        s.shutdown(_socket.SHUT_WR)
        buf = b""
        while True:
            try:
                chunk = s.recv(1 << 16)
            except ConnectionResetError:              # closed with our bytes unread
                break
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    return [json.loads(l) for l in buf.splitlines()]


def test_control_socket_rejects_bad_requests(d):
    from dpdkvirtio.control import MAX_REQUEST
    sw = Running(d, [("a", "dpdkvhostuser", {})])
    try:
        st = os.stat(sw.sock)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
        from dpdkvirtio import rpc

        def req(method, params=None, msg_id=None):
            msg = {"jsonrpc": "2.0", "method": method, "id": msg_id}
            if params is not None:
                msg["params"] = params
            return json.dumps(msg).encode() + b"\n"

        cases = [
            (b"{not json\n", rpc.PARSE_ERROR, "not JSON"),
            (b"[1, 2]\n", rpc.INVALID_REQUEST, "malformed request"),
            (b'{"cmd": "show", "args": {}}\n', rpc.INVALID_REQUEST, "JSON-RPC 2.0"),
            (b'{"jsonrpc": "2.0", "id": 3}\n', rpc.INVALID_REQUEST, "method must be a string"),
            (req("show", [1], 4), rpc.INVALID_REQUEST, "params must be an object"),
            (req("frobnicate", {}, 5), rpc.METHOD_NOT_FOUND, "unknown method 'frobnicate'"),
            (req(7, {}, 6), rpc.INVALID_REQUEST, "method must be a string, got 7"),
            (req("del-port", {"nme": "a"}, 7), rpc.INVALID_PARAMS, "del-port: bad arguments"),
            (req("del-port", {"name": ["a"]}, 8), rpc.APPLICATION_ERROR,
             "del-port: name must be a string"),
            (req("set", {"name": "a", "options": 5}, 9), rpc.APPLICATION_ERROR,
             "options must be a list of key=value strings"),
            (req("set", {"name": "a", "options": ["novalue"]}, 10), rpc.APPLICATION_ERROR,
             "key=value"),
            (req("add-port", {"name": 5, "type": "dpdkvhostuser"}, 11), rpc.APPLICATION_ERROR,
             "add-port: name must be a string, got int 5"),
            (req("port-stats", {"name": "nosuch"}, 12), rpc.APPLICATION_ERROR, "no port"),
        ]
        # one connection carries them all: an error reply never ends the conversation; a
        # notification (no id) gets no reply
        notification = b'{"jsonrpc": "2.0", "method": "ping"}\n'
        replies = _raw(sw.sock, b"".join(p for p, _, _ in cases) + notification
                       + req("ping", None, 99))
        assert len(replies) == len(cases) + 1
        for (payload, code, text), reply in zip(cases, replies):
            assert reply["jsonrpc"] == "2.0" and reply["error"]["code"] == code, (payload, reply)
            assert text in reply["error"]["message"], (payload, reply)
            sent = json.loads(payload) if code != rpc.PARSE_ERROR else None
            assert reply["id"] == (sent.get("id") if isinstance(sent, dict) else None)
        assert replies[-1] == {"jsonrpc": "2.0", "result": "pong", "id": 99}
        # a request over the size limit is refused without being read whole, then closed
        replies = _raw(sw.sock, req("ping", {"pad": "x" * (2 * MAX_REQUEST)}, 1) + req("ping", None, 2))
        assert len(replies) == 1 and replies[0]["error"]["code"] == rpc.MESSAGE_TOO_LONG
        assert f"longer than {MAX_REQUEST} bytes" in replies[0]["error"]["message"]
        # the ctl client: bad key=value, one line
        assert "key=value" in _one_line_error(sw.ctl("set", "a", "novalue", check=False))
        assert [p["name"] for p in sw.ctl("show")["ports"]] == ["a"]      # nothing changed
    finally:
        assert sw.stop() == 0


def test_pmd_sleep_max_from_other_config(d, tmp_path):
    """other_config:pmd-sleep-max (OVS's per-PMD form: a default, then CPU:value) reaches
    the switch's PMDs; `ctl pmd-sleep-show` reports the sleeps of an idle switch, and its
    text form names them."""
    sw = Running(d, [("a", "dpdkvhostuser", {})], extra_oc=f'pmd-sleep-max = "50,{BACK}:300"\n')
    try:
        time.sleep(0.5)
        pmds = sw.ctl("pmd-sleep-show")
        assert [(p["sleep_max_us"], p["mode"]) for p in pmds] == [(300, "poll")]
        assert pmds[0]["iterations_slept"] > 100 and pmds[0]["slept_ns"] > 0.2e9, pmds
        text = sw.ctl("pmd-sleep-show", json_out=False)
        assert "max sleep 300 us" in text and f"cpu {BACK}" in text
    finally:
        assert sw.stop() == 0
    topo = tmp_path / "bad.toml"
    topo.write_text('[switch.other_config]\npmd-sleep-max = "20000"\n')
    bad = cli("run", "--dry-run", str(topo))
    assert bad.returncode != 0 and "pmd-sleep-max must be 0..10000 us, got 20000" in bad.stderr


def test_measured_flows_through_the_switch(d):
    """other_config flow-stats: the switch counts measured flows on every rx queue. Flow 5
    comes from a peer's generator into port a; flow 2 from the switch's own [[generator]]
    out of port a, reflected by the peer into port b. `ctl flow-stats`, `ctl generators`,
    `ctl add-generator` and the flows section of `top`. The switch's PMD runs in
    interrupt mode (other_config pmd-mode): the peer's kicks wake it, nothing is lost to it."""
    n = 20_000
    sw = Running(d, [("a", "dpdkvhostuser", {}), ("b", "dpdkvhostuser", {})],
                 extra_oc='flow-stats = "true"\npmd-mode = "interrupt"\n', extra_toml=f"""
                 [[generator]]
                 name = "probe"
                 port = "a"
                 flow_id = 2
                 rate = "20kpps"
                 count = {n}
                 """)
    try:
        with Agent(cpu=FRONT, control_cpus=[FRONT]) as peer:
            for name, port in (("ua", "a"), ("ub", "b")):
                peer.call("port", name=name, kind="virtio-user", path=os.path.join(d, port),
                          queue_size=1024)
            peer.call("io", a="ua", b="ub", both=False, start=False)
            peer.call("gen", name="ua", count=n, pps=20_000, tag="g", flow_id=5)
            assert peer.call("gen_wait", tag="g", timeout=60)["done"]
            deadline = time.monotonic() + 30
            while not sw.ctl("generators")["probe"]["done"]:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            sw.settle("b")
            ua = peer.call("stats", name="ua")
            ub = peer.call("stats", name="ub")
        rows = {(r["port"], r["queue"], r["flow_id"]): r for r in sw.ctl("flow-stats")}
        assert sorted(rows) == [("a", 0, 5), ("b", 0, 2)]
        f5, f2 = rows[("a", 0, 5)], rows[("b", 0, 2)]
        # flow 5: sent by the peer; what did not arrive is what the peer's port dropped,
        # and every gap the switch saw is one of those (a drop at the very end is no gap)
        dropped_at_peer = sum(ua["drops"].values())
        assert f5["received"] == n - dropped_at_peer == ua["stats"]["tx_packets"]
        assert f5["lost"] <= dropped_at_peer, (f5, ua)
        # flow 2: the switch's generator knows what it sent
        assert f2["sent"] == n == f2["received"] + f2["lost_total"]
        a_stats = sw.stats()["a"]
        assert f2["lost_total"] == a_stats["tx_dropped"] + sum(ub["drops"].values()), \
            (f2, a_stats, ua, ub)
        for f in (f5, f2):
            assert f["out_of_order"] == f["duplicates"] == 0
            assert 0 < f["lat_min_ns"] <= f["p50_ns"] <= f["p99_ns"] <= f["lat_max_ns"]
        assert sw.ctl("flow-stats", "b")[0]["flow_id"] == 2
        text = sw.ctl("flow-stats", json_out=False)
        assert re.search(r"port\s+queue\s+flow\s+received.*p99 us", text), text
        gens = sw.ctl("generators")
        assert gens["probe"]["sent"] == n and gens["probe"]["flow_id"] == 2
        added = sw.ctl("add-generator", "g2", "b", "flow_id=7", "pps=1000", "count=10")
        assert added["flow_id"] == 7 and added["port"] == "b"
        bad = sw.ctl("add-generator", "g3", "b", "speed=5", check=False)
        assert bad.returncode != 0 and "unknown generator option(s) speed" in bad.stderr
        bad = sw.ctl("add-generator", "g3", "b", "rate=5 bananas", check=False)
        assert bad.returncode != 0 and "rate '5 bananas' is not a number and a unit" in bad.stderr
        added = sw.ctl("add-generator", "g4", "b", "rate=2.5kpps", "count=10")
        assert added["pps"] == 2500
        assert sw.ctl("del-generator", "g4") == {"deleted": "g4"}
        bad = sw.ctl("add-generator", "g3", "b", "flow_id=70000", check=False)
        assert bad.returncode != 0 and "flow_id must be an integer 0..65535" in bad.stderr
        assert sw.ctl("del-generator", "g2") == {"deleted": "g2"}
        top = cli("top", "--socket", sw.sock, "--count", "1", "--interval", "0.3")
        assert top.returncode == 0 and "p50 us" in top.stdout and "Mpps" in top.stdout, top.stderr
        assert "interrupt" in top.stdout and "wake-ups/s" in top.stdout
        pmds = sw.ctl("pmd-sleep-show")
        assert pmds[0]["mode"] == "interrupt" and pmds[0]["intr_wakeups"] > 0, pmds
        assert "interrupt mode, waited for a kick" in sw.ctl("pmd-sleep-show", json_out=False)
    finally:
        assert sw.stop() == 0


def test_bad_generator_topology(tmp_path):
    for body, message in (
            ('[[generator]]\nname = "g"\n', "needs port"),
            ('[[generator]]\nname = "g"\nport = "zz"\n', "no port 'zz'"),
            ('[[generator]]\nname = "g"\nport = "a"\nflow_id = 1\nsize = 60\n',
             "at least 64 bytes"),
            ('[[generator]]\nname = "g"\nport = "a"\nspeed = 1\n', "unknown key(s) speed"),
            ('[[generator]]\nname = "g"\nport = "a"\nrate = "1 parsec"\n',
             "rate '1 parsec' is not a number and a unit"),
            ('[[generator]]\nname = "g"\nport = "a"\nrate = "1mpps"\npps = 5\n',
             "give rate, or one of pps"),
            ('[switch.other_config]\nflow-stats = "lots"\n', "flow-stats must be true, false"),
    ):
        topo = tmp_path / "bad.toml"
        topo.write_text(body + '[[port]]\nname = "a"\ntype = "dpdk"\n'
                        'options = { dpdk-devargs = "net_null0" }\n')
        r = cli("run", "--dry-run", str(topo))
        assert r.returncode != 0 and message in r.stderr, (body, r.stderr)


@pytest.mark.testpmd
def test_ctl_capture_to_a_pipe_and_to_a_file(d, tmp_path):
    """`ctl capture a -w - --tx -c N | tshark -r -` against `dpdkvirtio run`: the switch
    writes pcapng into the pipe; and `ctl capture` to a file ended by `ctl capture-stop`."""
    import shutil
    tshark = shutil.which("tshark")
    assert tshark, "tshark is not installed: run scripts/setup-host.sh"
    n = 5000
    sw = Running(d, [("a", "dpdkvhostuser", {})])
    try:
        with Testpmd(_vu(os.path.join(d, "a")), "rxonly", fwd_cpu=FRONT, main_cpu=BACK) as guest:
            guest.start()
            sw.ctl("add-generator", "g", "a", "pps=50000", "size=100")
            pipeline = (f"{sys.executable} -m dpdkvirtio ctl --socket {sw.sock} capture a -w - "
                        f"--tx -c {n} -s 80 | {tshark} -r - -T fields -e frame.interface_name "
                        "-e frame.len -e frame.cap_len")
            r = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True,
                               text=True, timeout=120, cwd=str(REPO))
            assert r.returncode == 0, r.stderr
            rows = [line.split("\t") for line in r.stdout.splitlines()]
            assert len(rows) == n and set(map(tuple, rows)) == {("a:tx", "100", "80")}, rows[:3]
            # (tshark starts slowly: while the pipe is full, packets are counted, not kept)
            assert re.search(rf"^{n} packets \(\d+ bytes\) captured from a \(tx: \d+ seen, "
                             r"\d+ not captured\)$", r.stderr, re.M), r.stderr

            out = tmp_path / "a.pcapng"
            bg = subprocess.Popen([sys.executable, "-m", "dpdkvirtio", "ctl", "--socket", sw.sock,
                                   "capture", "a", "-w", str(out), "--tx", "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  cwd=str(REPO))
            try:
                deadline = time.monotonic() + 30
                while not (out.exists() and out.stat().st_size > 0):   # the header: started
                    assert bg.poll() is None and time.monotonic() < deadline, bg.stderr.read()
                    time.sleep(0.05)
                time.sleep(0.5)
                assert sw.ctl("capture-stop", "a") == {"stopped": "a"}
                stdout, stderr = bg.communicate(timeout=30)
            finally:
                if bg.poll() is None:
                    bg.kill()
                    bg.wait()
            assert bg.returncode == 0, stderr
            res = json.loads(stdout)
            r = subprocess.run([tshark, "-r", str(out), "-T", "fields", "-e", "frame.interface_name"],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert res["written"] > 1000 and r.stdout.split() == ["a:tx"] * res["written"]
            sw.ctl("del-generator", "g")
            guest.stop()
        bad = sw.ctl("capture", "nosuch", "-w", str(tmp_path / "x"), json_out=False, check=False)
        assert bad.returncode != 0 and "no port 'nosuch'" in bad.stderr
        bad = sw.ctl("capture-stop", "a", json_out=False, check=False)
        assert bad.returncode != 0 and "no capture runs on port 'a'" in bad.stderr
        bad = sw.ctl("show", "-c", "5", json_out=False, check=False)
        assert bad.returncode != 0 and "options of ctl capture" in bad.stderr
    finally:
        assert sw.stop() == 0


def test_ctl_offers_the_servers_commands():
    """`dpdkvirtio ctl`'s command choices are the control server's (control.CTL_COMMANDS,
    derived from its cmd_* methods)."""
    from dpdkvirtio import cli, control
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    ctl = sub.choices["ctl"]
    choices = next(a.choices for a in ctl._actions if a.dest == "ctl_cmd")
    assert list(choices) == control.CTL_COMMANDS and "add-port" in choices
