"""Topology files: the dry-run plan (placement, pools, sockets) and its checks, no DPDK."""
import os
import re
import textwrap

import pytest

from dpdkvirtio import topology
from dpdkvirtio.errors import ConfigError
from dpdkvirtio.placement import place_rxqs

CPUS = sorted(os.sched_getaffinity(0))
FRONT, BACK = CPUS[0], CPUS[-1]
NOT_OURS = CPUS[-1] + 1                       # a CPU this process may not use


def write(tmp_path, text):
    p = tmp_path / "t.toml"
    p.write_text(textwrap.dedent(text))
    return str(p)


@pytest.fixture
def sockdir(tmp_path):
    d = tmp_path / "socks"
    d.mkdir(mode=0o750)
    return str(d)


def test_plan_places_queues_pools_and_sockets(tmp_path, sockdir):
    path = write(tmp_path, f"""
        [switch]
        name = "br0"
        [switch.other_config]
        pmd-cpu-mask = "{hex(1 << BACK)}"
        dpdk-lcore-mask = "{hex(1 << FRONT)}"
        vhost-sock-dir = "{sockdir}"
        [[port]]
        name = "a"
        type = "dpdkvhostuser"
        options = {{ n_rxq = 2 }}
        [[port]]
        name = "b"
        type = "dpdkvhostuserclient"
        options = {{ vhost-server-path = "{sockdir}/vm.sock" }}
        [[flow]]
        in_port = "a"
        out_port = "b"
    """)
    p = topology.plan(topology.load(path))
    d = p.as_dict()
    assert d["pmd_cpus"] == [BACK] and d["main_cpus"] == [FRONT]
    assert d["pmds"] == [{"cpu": BACK, "queues": ["a:0", "a:1", "b:0"]}]
    assert d["ports"][0]["socket"] == os.path.join(sockdir, "a")
    assert d["ports"][0]["socket_state"] == "free"
    assert d["ports"][1]["socket_state"].startswith("not there yet")
    assert d["mempools"][0]["name"] == "shared0" and d["mempools"][0]["ports"] == ["a", "b"]
    assert d["mempools"][0]["mbufs"] > 0 and d["flows"] == [{"in_port": "a", "out_port": "b"}]
    assert d["control_socket"] == os.path.join(sockdir, "br0.ctl")
    text = p.text()
    assert f"PMD on CPU {BACK}: rx queues a:0, a:1, b:0" in text and "a -> b" in text


def test_placement_is_least_loaded_and_isolates_pinned_cpus():
    load, iso = {1: 0, 2: 0, 3: 0}, set()
    assert place_rxqs(2, {0: 3}, load, iso) == {0: 3, 1: 1}
    assert place_rxqs(3, {}, load, iso) == {0: 2, 1: 1, 2: 2}     # 3 is isolated
    assert load == {1: 2, 2: 2, 3: 1} and iso == {3}
    with pytest.raises(ConfigError, match="no PMD runs"):
        place_rxqs(1, {0: 9}, load, iso)


def test_per_port_memory_and_dry_run_does_not_touch_a_stale_socket(tmp_path, sockdir):
    import socket
    stale = os.path.join(sockdir, "a")
    s = socket.socket(socket.AF_UNIX)
    s.bind(stale)
    s.close()
    path = write(tmp_path, f"""
        [switch.other_config]
        vhost-sock-dir = "{sockdir}"
        per-port-memory = true
        [[port]]
        name = "a"
        type = "dpdkvhostuser"
    """)
    p = topology.plan(topology.load(path))
    assert p.ports[0].socket_state == "stale (will be removed)"
    assert os.path.exists(stale)                       # a plan changes nothing
    assert p.mempools[0]["name"] == "port:a"


@pytest.mark.parametrize("body, text", [
    ('[switch]\nnmae = "x"\n', "unknown key"),
    ('[bridge]\n', "unknown section"),
    ('[[port]]\nname = "a/b"\ntype = "dpdk"\n', "must not contain"),
    ('[[port]]\nname = ".."\ntype = "dpdk"\n', "must not contain"),
    ('[[port]]\nname = "a"\ntype = "tap"\n', "type must be one of"),
    ('[[port]]\nname = "a"\ntype = "dpdk"\n', "dpdk-devargs"),
    ('[[port]]\nname = "a"\ntype = "dpdkvhostuser"\n', "vhost-sock-dir"),
    ('[[port]]\nname = "a"\ntype = "dpdkvhostuserclient"\n', "vhost-server-path"),
    ('[[port]]\nname = "a"\ntype = "dpdk"\noptions = { dpdk-devargs = "net_null0", colour = 1 }\n',
     "unknown option"),
    ('[[port]]\nname = "a"\ntype = "dpdk"\noptions = { dpdk-devargs = "net_null0", n_rxq_desc = 100 }\n',
     "power of 2"),
    ('[[port]]\nname = "a"\ntype = "dpdk"\n'
     'options = { dpdk-devargs = "net_null0", pmd-rxq-affinity = "0:" }\n',
     "malformed"),
    ('[[port]]\nname = "a"\ntype = "dpdk"\noptions = { dpdk-devargs = "net_null0" }\n'
     '[[port]]\nname = "a"\ntype = "dpdk"\noptions = { dpdk-devargs = "net_null1" }\n', "twice"),
    ('[[port]]\nname = "a"\ntype = "dpdk"\noptions = { dpdk-devargs = "net_null0" }\n'
     '[[flow]]\nin_port = "a"\nout_port = "zz"\n', "no port 'zz'"),
    ('[[port]]\nname = "a"\ntype = "dpdk"\noptions = { dpdk-devargs = "net_null0" }\n'
     '[[flow]]\nin_port = "a"\nout_port = "a"\n', "itself"),
    (f'[switch.other_config]\npmd-cpu-mask = "{hex(1 << NOT_OURS)}"\n', f"CPU {NOT_OURS}"),
    (f'[switch.other_config]\npmd-cpu-mask = "{hex(1 << BACK)}"\n'
     f'dpdk-lcore-mask = "{hex(1 << BACK)}"\n', "overlap"),
    ('[switch.other_config]\npmd-cpu-mask = "zz"\n', "hexadecimal"),
    ('[switch.other_config]\nfoo = "1"\n', "unknown other_config"),
    ('[switch.other_config]\ndpdk-socket-mem = "8"\n', "at least 64"),
    ('[switch.other_config]\ntx-retries-max = "99"\n', "0..32"),
    ('[switch\n', "not valid TOML"),
])
def test_bad_topologies(tmp_path, body, text):
    with pytest.raises(ConfigError, match=text):
        topology.plan(topology.load(write(tmp_path, body)))


def test_world_writable_socket_dir_refused(tmp_path):
    d = tmp_path / "ww"
    d.mkdir()
    os.chmod(d, 0o777)
    path = write(tmp_path, f'[switch.other_config]\nvhost-sock-dir = "{d}"\n')
    with pytest.raises(ConfigError, match="world-writable"):
        topology.plan(topology.load(path))
    os.chmod(d, 0o1777)                                  # sticky is not enough for a switch
    with pytest.raises(ConfigError, match="world-writable"):
        topology.plan(topology.load(path))


def test_memory_budget_checked(tmp_path, sockdir):
    ports = "".join(f'[[port]]\nname = "p{i}"\ntype = "dpdkvhostuser"\n' for i in range(40))
    path = write(tmp_path, f'[switch.other_config]\nvhost-sock-dir = "{sockdir}"\n'
                           f'dpdk-socket-mem = "128"\n' + ports)
    with pytest.raises(ConfigError, match="raise dpdk-socket-mem"):
        topology.plan(topology.load(path))


def test_missing_file():
    with pytest.raises(ConfigError, match="no such file"):
        topology.load("/nonexistent/t.toml")


def test_per_pmd_sleep_and_mode_settings():
    """OVS's per-PMD form of pmd-sleep-max, and pmd-mode in the same form."""
    from dpdkvirtio.config import available_cpus
    from dpdkvirtio.switchconfig import SwitchConfig
    cpus = available_cpus()
    c = SwitchConfig.from_other_config({"pmd-sleep-max": f"50,{cpus[0]}:0",
                                        "pmd-mode": f"interrupt,{cpus[0]}:poll"})
    assert (c.sleep_max_for(cpus[0]), c.sleep_max_for(99)) == (0, 50)
    assert (c.mode_for(cpus[0]), c.mode_for(99)) == ("poll", "interrupt")
    c = SwitchConfig.from_other_config({"pmd-sleep-max": f"{cpus[0]}:300"})
    assert (c.sleep_max_for(cpus[0]), c.sleep_max_for(99)) == (300, 0)     # default stays 0
    for oc, text in [({"pmd-sleep-max": "50,60"}, "more than one default"),
                     ({"pmd-sleep-max": "50,x:1"}, "'x' is not a CPU number"),
                     ({"pmd-sleep-max": "1:5,1:6"}, "CPU 1 given twice"),
                     ({"pmd-sleep-max": "50,,1:0"}, "empty item"),
                     ({"pmd-sleep-max": "1:20000"}, "0..10000 us, got 20000"),
                     ({"pmd-mode": "irq"}, "pmd-mode must be poll or interrupt"),
                     ({"pmd-cpu-mask": hex(1 << cpus[-1]), "pmd-mode": f"{cpus[-1] + 1}:poll"},
                      "where no PMD runs")]:
        with pytest.raises(ConfigError, match=re.escape(text)):
            SwitchConfig.from_other_config(oc)
