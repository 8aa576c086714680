"""Where operators look: DPDK's own telemetry client (Debian's dpdk-telemetry.py) and a
Prometheus scrape (prometheus_client's parser) against `dpdkvirtio run`, with exact
counter values after a known number of measured packets."""
import json
import os
import subprocess
import urllib.request

import pytest

from dpdkvirtio.peers import Agent
from tests.integration.running import FRONT, Running, cli

TELEMETRY_CLIENT = "/usr/bin/dpdk-telemetry.py"


def telemetry(prefix: str, *commands: str) -> list:
    """Run Debian's dpdk-telemetry.py (stdin not a TTY: one command per line, one JSON
    reply per line) and return the replies' values."""
    r = subprocess.run([TELEMETRY_CLIENT, "-f", prefix], input="".join(c + "\n" for c in commands),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    replies = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(replies) == len(commands), r.stdout
    return [next(iter(reply.values())) for reply in replies]


def scrape(url: str) -> dict:
    """{(name, frozenset(labels.items())): value} of every sample, parsed by
    prometheus_client's own text parser."""
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(samples: dict, name: str, **labels):
    key = (name, frozenset((k, str(v)) for k, v in labels.items()))
    assert key in samples, f"no sample {name}{labels}; have {sorted(k[0] for k in samples)[:20]}"
    return samples[key]


def test_telemetry_and_prometheus_read_exact_counters(d):
    """10,000 measured packets (flow 3) from a peer's virtio-user into port a (where the
    switch's flow table counts them), switched to port b, received by the peer. Then
    DPDK's telemetry client and a Prometheus scrape give exactly the switch's counters:
    per port, per queue, drops, the PMD and the flow."""
    n = 10_000
    prefix = f"dvobs{os.getpid()}"
    if not os.access(TELEMETRY_CLIENT, os.X_OK):
        pytest.fail(f"{TELEMETRY_CLIENT} is missing: run scripts/setup-host.sh (package dpdk)")
    sw = Running(d, [("a", "dpdkvhostuser", {}), ("b", "dpdkvhostuser", {})], [("a", "b")],
                 extra_oc=f'flow-stats = "true"\ndpdk-file-prefix = "{prefix}"\n',
                 run_args=("--metrics", "127.0.0.1:0"))
    try:
        out = "".join(sw.out)
        assert f"telemetry: dpdk-telemetry.py -f {prefix}" in out, out
        url = next(w for line in sw.out for w in line.split() if w.startswith("http://"))
        with Agent(cpu=FRONT, control_cpus=[FRONT]) as peer:
            for name, port in (("ua", "a"), ("ub", "b")):
                peer.call("port", name=name, kind="virtio-user", path=os.path.join(d, port),
                          queue_size=1024)
            peer.call("rx", name="ub", start=False)
            peer.call("gen", name="ua", count=n, pps=50_000, tag="g", flow_id=3)
            assert peer.call("gen_wait", tag="g", timeout=60)["done"]
            sw.settle("b", "tx_packets")
            ua = peer.call("stats", name="ua")
            ub = peer.call("stats", name="ub")
            stats = sw.stats()
            pmd = sw.ctl("pmd-perf-show")[0]
            flows = {(r["port"], r["flow_id"]): r for r in sw.ctl("flow-stats")}
            ports, port_a, port_b, pmds, pmd_t, tables, table_a, missing, bad_lcore = telemetry(
                prefix, "/dpdkvirtio/ports", "/dpdkvirtio/port,a", "/dpdkvirtio/port,b",
                "/dpdkvirtio/pmds", f"/dpdkvirtio/pmd,{pmd['lcore']}", "/dpdkvirtio/flows",
                "/dpdkvirtio/flows,a:0", "/dpdkvirtio/port,zz", "/dpdkvirtio/pmd,x1")
            prom = scrape(url)
            pmd_after = sw.ctl("pmd-perf-show")[0]
        # what went in: all n sent by the peer, all n through a, b's sends seen by ub
        assert ua["stats"]["tx_packets"] == n and not any(ua["drops"].values()), ua
        a, b = stats["a"], stats["b"]
        assert a["rx_packets"] == n == b["tx_packets"] + b["tx_dropped"]
        assert ub["stats"]["rx_packets"] == b["tx_packets"] > 0

        # DPDK's telemetry client
        assert ports == ["a", "b"] and tables == ["a:0", "b:0"]
        for reply, st in ((port_a, a), (port_b, b)):
            for key in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "tx_dropped",
                        "tx_failure_drops", "tx_not_ready_drops", "tx_retries"):
                assert reply[key] == st[key], (key, reply, st)
            assert reply["queues"]["q0"]["rx_packets"] == st["rx_q0_good_packets"]
            assert reply["queues"]["q0"]["tx_packets"] == st["tx_q0_good_packets"]
            assert reply["kind"] == "vhost-user" and reply["connected"] == 1
        assert port_a["rx_packets"] == n and port_a["rx_bytes"] == 64 * n
        assert port_b["drops"]["tx_failure"] == b["tx_failure_drops"]
        assert pmds == [pmd["lcore"]]
        assert pmd_t["rx_packets"] == pmd["rx_packets"] == n
        assert pmd_t["tx_packets"] == pmd["tx_packets"] == b["tx_packets"]
        assert pmd_t["cpu"] == pmd["cpu"] and pmd_t["mode"] == "poll"
        assert pmd_t["stalls"] >= pmd["stalls"] and pmd_t["stall_cycles"] >= pmd["stalls"] * 10**5
        # each poll counts the packets it received: they add up to what came in
        assert sum(i * c for i, c in enumerate(pmd_t["burst_hist"])) == n
        # the switch measures flows where they arrive: rx queue 0 of port a
        f3 = flows[("a", 3)]
        tf = table_a["flows"]["f3"]
        assert table_a["active_flows"] == 1 and table_a["received"] == f3["received"]
        assert tf["received"] == f3["received"] == n
        assert tf["lost"] == f3["lost"] and tf["out_of_order"] == f3["out_of_order"] == 0
        assert (tf["lat_min_ns"], tf["lat_max_ns"]) == (f3["lat_min_ns"], f3["lat_max_ns"])
        assert tf["p50_ns"] == int(f3["p50_ns"]) and tf["p99_ns"] == int(f3["p99_ns"])
        assert missing is None and bad_lcore is None

        # Prometheus
        for name, st in (("a", a), ("b", b)):
            for key in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "tx_retries"):
                assert sample(prom, f"dpdkvirtio_port_{key}_total", port=name) == st[key]
            for reason, key in (("tx_failure", "tx_failure_drops"),
                                ("tx_not_ready", "tx_not_ready_drops")):
                assert sample(prom, "dpdkvirtio_port_dropped_packets_total", port=name,
                              reason=reason) == st[key]
            assert sample(prom, "dpdkvirtio_queue_rx_packets_total", port=name, queue=0) \
                == st["rx_q0_good_packets"]
            assert sample(prom, "dpdkvirtio_port_connected", port=name) == 1
        lab = {"lcore": pmd["lcore"], "cpu": pmd["cpu"]}
        assert sample(prom, "dpdkvirtio_pmd_rx_packets_total", **lab) == n
        assert sample(prom, "dpdkvirtio_pmd_busy_cycles_total", **lab) >= pmd["busy_cycles"] > 0
        assert sample(prom, "dpdkvirtio_pmd_stalls_total", **lab) >= pmd["stalls"]
        # every PMD field the three readers share, read in turn (perf-show, telemetry,
        # Prometheus, perf-show) while the PMD went on polling an idle port. What only
        # traffic moves stood still and must agree exactly; what idle rounds add to
        # (iterations, idle cycles, empty polls) lies between the two perf-show readings
        prom_pmd = {key: sample(prom, f"dpdkvirtio_pmd_{key}_total", **lab)
                    for key in ("iterations", "empty_iterations", "rx_packets", "tx_packets",
                                "sleeps", "intr_arms", "intr_wakeups", "stalls",
                                "busy_cycles", "idle_cycles", "stall_cycles")}
        prom_pmd["slept_ns"] = round(sample(prom, "dpdkvirtio_pmd_slept_seconds_total",
                                            **lab) * 1e9)
        readers = {"perf-show": pmd, "telemetry": pmd_t, "prometheus": prom_pmd,
                   "perf-show again": pmd_after}

        def each(key):
            return {name: r[key] for name, r in readers.items()}
        for key in ("rx_packets", "tx_packets", "busy_cycles", "sleeps", "intr_arms",
                    "intr_wakeups"):
            assert len(set(each(key).values())) == 1, (key, each(key))
        # rounds that moved packets stood still too, but a reader takes iterations and
        # empty_iterations microseconds apart while idle rounds go on (telemetry builds its
        # reply field by field): they agree up to the rounds of that gap
        moved_rounds = {name: r["iterations"] - r["empty_iterations"]
                        for name, r in readers.items()}
        assert max(moved_rounds.values()) - min(moved_rounds.values()) <= 200, moved_rounds
        assert min(moved_rounds.values()) >= sum(pmd["burst_histogram"][1:]) / 2 > 0, \
            moved_rounds                            # (two rx queues polled in a round)
        for key in ("iterations", "empty_iterations", "idle_cycles", "stalls", "slept_ns"):
            assert list(each(key).values()) == sorted(each(key).values()), (key, each(key))
        hz = pmd["tsc_hz"]
        assert pmd_t["tsc_hz"] == hz == sample(prom, "dpdkvirtio_pmd_tsc_hz", **lab)
        stalled = [pmd["stalled_ns"], pmd_t["stall_cycles"] * 10**9 // hz,
                   prom_pmd["stall_cycles"] * 10**9 // hz, pmd_after["stalled_ns"]]
        assert stalled == sorted(stalled), stalled
        assert pmd["stall_max_ns"] <= pmd_t["stall_max_cycles"] * 10**9 // hz \
            <= pmd_after["stall_max_ns"]
        # (empty polls go on being counted in bin 0; the others stopped with the traffic)
        assert pmd["burst_histogram"][1:] == pmd_t["burst_hist"][1:] \
            == pmd_after["burst_histogram"][1:]
        assert pmd["burst_histogram"][0] <= pmd_t["burst_hist"][0] \
            <= pmd_after["burst_histogram"][0]
        # the derived figures, one formula (stats.py): cycles per packet exactly; the busy
        # share only falls as idle rounds add up
        assert pmd_t["busy_cycles_per_packet"] == int(pmd["cycles_per_packet"]) \
            == int(pmd_after["cycles_per_packet"])
        assert int(pmd["busy_pct"] * 10) >= pmd_t["busy_permille"] \
            >= int(pmd_after["busy_pct"] * 10)
        flow = {"port": "a", "queue": 0, "flow": 3}
        assert sample(prom, "dpdkvirtio_flow_received_packets_total", **flow) == f3["received"]
        assert sample(prom, "dpdkvirtio_flow_lost_packets_total", **flow) == f3["lost"]
        assert sample(prom, "dpdkvirtio_flow_latency_seconds_count", **flow) == f3["received"]
        assert sample(prom, "dpdkvirtio_flow_latency_seconds_bucket", le="+Inf", **flow) \
            == f3["received"]
        assert sample(prom, "dpdkvirtio_flow_latency_seconds_sum", **flow) \
            == pytest.approx(f3["lat_sum_ns"] / 1e9)
        # the histogram's buckets: cumulative, and the p50 lies where half the count is
        edges = sorted((float(dict(k[1])["le"]), v) for k, v in prom.items()
                       if k[0] == "dpdkvirtio_flow_latency_seconds_bucket"
                       and dict(k[1])["flow"] == "3" and dict(k[1])["le"] != "+Inf")
        counts = [v for _, v in edges]
        assert counts == sorted(counts)
        below = max((v for le, v in edges if le * 1e9 <= f3["lat_min_ns"]), default=0)
        assert below == 0
        # (no edge at or below the p50: nothing is counted below it)
        assert max((v for le, v in edges if le * 1e9 <= f3["p50_ns"]), default=0) \
            <= f3["received"] / 2 \
            <= min(v for le, v in edges if le * 1e9 > f3["p50_ns"])
    finally:
        assert sw.stop() == 0


def test_metrics_address_errors(d, tmp_path):
    """A bad --metrics address is one line on stderr before DPDK starts."""
    topo = tmp_path / "t.toml"
    topo.write_text(f'[switch]\nname = "br0"\n[switch.other_config]\nvhost-sock-dir = "{d}"\n')
    for address, message in (("nonsense", "use HOST:PORT"), ("127.0.0.1:http", "is not a number"),
                             ("127.0.0.1:70000", "must be 0..65535")):
        r = cli("run", str(topo), "--metrics", address)
        assert r.returncode != 0 and message in r.stderr, (address, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_latency_histogram_edges_are_bucket_boundaries():
    """Each exported `le` edge ends a data-path bucket and starts the next one, so the
    exported cumulative counts are exact (not interpolated)."""
    from dpdkvirtio.flows import bucket_bounds
    from dpdkvirtio.metrics import latency_edges
    low, width = bucket_bounds()
    edges = latency_edges()
    assert [e for e, _ in edges] == [1 << k for k in range(7, 39)]
    for edge, below in edges[:-1]:
        assert low[below - 1] + width[below - 1] == edge == low[below], edge
