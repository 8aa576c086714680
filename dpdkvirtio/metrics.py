"""Prometheus / OpenMetrics exposition of the live counters (L2, pure Python over the
numpy views; ``prometheus_client`` is an optional extra: ``pip install dpdkvirtio[metrics]``).

    server = dv.serve_metrics("127.0.0.1:9464", switch=sw)     # or ports=/pmds=/flows=
    print(server.url)                                          # http://127.0.0.1:9464/metrics
    ...
    server.close()

``dpdkvirtio run TOPO --metrics 127.0.0.1:9464`` does the same for a running switch.

Every scrape reads the counters as the data path writes them (no copy is kept between
scrapes). Names follow Prometheus conventions: a ``dpdkvirtio_`` prefix, base units in the
name (``_bytes``, ``_seconds``, ``_cycles``), counters end in ``_total``; labels are
``port``, ``queue``, ``reason``, ``lcore``, ``cpu`` and ``flow``:

    dpdkvirtio_port_rx_packets_total{port="vhu0"}            rx/tx packets and bytes
    dpdkvirtio_port_dropped_packets_total{port,reason}        tx_failure, tx_not_ready,
                                                              tx_nombuf, rx_malformed
    dpdkvirtio_port_tx_retries_total{port}
    dpdkvirtio_queue_{rx,tx}_{packets,bytes}_total{port,queue}
    dpdkvirtio_pmd_{busy,idle,stall}_cycles_total{lcore,cpu}  with dpdkvirtio_pmd_tsc_hz
    dpdkvirtio_pmd_{iterations,rx_packets,tx_packets,sleeps,intr_wakeups,stalls,...}_total
    dpdkvirtio_pmd_slept_seconds_total{lcore,cpu}
    dpdkvirtio_flow_{received,lost,out_of_order,duplicates}_packets_total{port,queue,flow}
    dpdkvirtio_flow_latency_seconds{port,queue,flow}          a histogram (le at powers of
                                                              two ns, where the data path's
                                                              buckets have exact edges)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import stats as _stats
from .errors import ConfigError

# Histogram edges: 2**k ns for k in 7..38 (128 ns .. 275 s), edges of the data path's
# log-linear buckets, so that cumulative counts at them are exact.
LATENCY_EDGE_EXPONENTS = range(7, 39)

_PORT_COUNTERS = (("rx_packets", "Packets received"),
                  ("rx_bytes", "Bytes received"),
                  ("tx_packets", "Packets sent (accepted by the peer's ring)"),
                  ("tx_bytes", "Bytes sent"),
                  ("tx_retries", "Enqueue retries on a full peer ring"))
_PMD_COUNTERS = (("iterations", "iterations", "Rounds over the PMD's assignments"),
                 ("empty_iterations", "empty_iterations", "Rounds that moved no packet"),
                 ("rx_packets", "rx_packets", "Packets received by the PMD"),
                 ("tx_packets", "tx_packets", "Packets sent by the PMD"),
                 ("sleeps", "sleeps", "Idle rounds followed by a sleep (pmd-sleep-max)"),
                 ("intr_arms", "intr_arms", "Interrupt mode: waits for a kick entered"),
                 ("intr_wakeups", "intr_wakeups", "Interrupt mode: waits ended by a kick"),
                 ("intr_spurious", "intr_spurious", "Interrupt mode: wake-ups that moved nothing"),
                 ("intr_timeouts", "intr_timeouts", "Interrupt mode: waits ended by the timeout"),
                 ("stalls", "stalls", "Polls of 100 us or more: the CPU was taken away"))
_FLOW_COUNTERS = (("received", "received", "Unique measured packets received"),
                  ("lost", "lost", "Sequence numbers skipped and not seen later"),
                  ("out_of_order", "out_of_order", "Packets that filled a sequence gap"),
                  ("duplicates", "duplicates", "Sequence numbers seen twice"))


def _prometheus() -> Any:
    try:
        import prometheus_client
        import prometheus_client.core
    except ImportError:
        raise ConfigError("Prometheus metrics need prometheus_client: pip install "
                          "'dpdkvirtio[metrics]' (or pip install prometheus_client)") from None
    return prometheus_client


@dataclass
class Sources:
    """What a scrape reads: ports by name, PMDs, and flow tables by (port, rx queue)."""
    ports: dict[str, Any] = field(default_factory=dict)
    pmds: list[Any] = field(default_factory=list)
    flows: dict[tuple[str, int], Any] = field(default_factory=dict)


class Collector:
    """A prometheus_client collector over ``sources()`` (called once per scrape, on the
    HTTP server's thread; it must return objects that stay readable for the scrape)."""

    def __init__(self, sources: Callable[[], Sources]):
        self._sources = sources
        self._core = _prometheus().core

    def describe(self) -> list:
        return []          # unchecked collector: families vary with the ports

    def collect(self) -> Iterator[Any]:
        src = self._sources()
        yield from self._ports(src.ports)
        yield from self._pmds(src.pmds)
        yield from self._flows(src.flows)

    def _counter(self, name: str, doc: str, labels: Iterable[str]) -> Any:
        return self._core.CounterMetricFamily(f"dpdkvirtio_{name}", doc, labels=list(labels))

    def _ports(self, ports: dict[str, Any]) -> Iterator[Any]:
        rows = {}
        for name, port in ports.items():
            if not port.closed:
                rows[name] = _stats.queue_counters(port).copy()     # one read per port
        for key, doc in _PORT_COUNTERS:
            fam = self._counter(f"port_{key}", doc, ["port"])
            for name, arr in rows.items():
                fam.add_metric([name], int(arr[key].sum()))
            yield fam
        fam = self._counter("port_dropped_packets", "Packets dropped, by reason", ["port", "reason"])
        for name, arr in rows.items():
            for reason, value in _stats.drops_by_reason(arr).items():
                fam.add_metric([name, reason], value)
        yield fam
        for key in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes"):
            fam = self._counter(f"queue_{key}", f"{key.replace('_', ' ')} per queue",
                                ["port", "queue"])
            for name, arr in rows.items():
                for q, value in enumerate(arr[key]):
                    fam.add_metric([name, str(q)], int(value))
            yield fam
        up = self._core.GaugeMetricFamily("dpdkvirtio_port_connected",
                                          "1 while a vhost-user front-end runs the port",
                                          labels=["port"])
        for name, port in ports.items():
            status = getattr(port, "status", None)
            if status is not None and not port.closed:
                up.add_metric([name], 1.0 if status()["running"] else 0.0)
        yield up

    def _pmds(self, pmds: list[Any]) -> Iterator[Any]:
        rows = [(str(p.lcore), str(p.cpu), p.counters[0].copy()) for p in pmds]
        labels = ["lcore", "cpu"]
        for key, doc in (("busy_cycles", "TSC cycles of rounds that moved packets"),
                         ("idle_cycles", "TSC cycles of rounds that moved none"),
                         ("stall_cycles", "TSC cycles of polls of 100 us or more (the CPU "
                                          "was taken away)")):
            fam = self._counter(f"pmd_{key}", doc, labels)
            for lcore, cpu, c in rows:
                fam.add_metric([lcore, cpu], int(c[key]))
            yield fam
        for key, field_name, doc in _PMD_COUNTERS:
            fam = self._counter(f"pmd_{key}", doc, labels)
            for lcore, cpu, c in rows:
                fam.add_metric([lcore, cpu], int(c[field_name]))
            yield fam
        fam = self._counter("pmd_slept_seconds", "Time slept while idle", labels)
        for lcore, cpu, c in rows:
            fam.add_metric([lcore, cpu], int(c["slept_ns"]) / 1e9)
        yield fam
        hz = self._core.GaugeMetricFamily("dpdkvirtio_pmd_tsc_hz",
                                          "TSC frequency: cycles per second", labels=labels)
        from .flows import tsc_hz
        for lcore, cpu, _ in rows:
            hz.add_metric([lcore, cpu], float(tsc_hz()))
        yield hz

    def _flows(self, tables: dict[tuple[str, int], Any]) -> Iterator[Any]:
        edges = latency_edges()
        labels = ["port", "queue", "flow"]
        snaps = []
        for (port, q), table in sorted(tables.items()):
            for fid in table.active():
                snaps.append(([port, str(q), str(fid)], table.counters[fid].copy(),
                              table.histograms[fid].copy()))
        for key, field_name, doc in _FLOW_COUNTERS:
            fam = self._counter(f"flow_{key}_packets", doc, labels)
            for lab, row, _ in snaps:
                fam.add_metric(lab, int(row[field_name]))
            yield fam
        hist = self._core.HistogramMetricFamily(
            "dpdkvirtio_flow_latency_seconds", "One-way latency of measured packets",
            labels=labels)
        for lab, row, h in snaps:
            cum = np.cumsum(h)
            buckets = [(f"{edge_ns / 1e9:.12g}", int(cum[n - 1]) if n else 0)
                       for edge_ns, n in edges]
            buckets.append(("+Inf", int(cum[-1])))
            hist.add_metric(lab, buckets, sum_value=int(row["lat_sum_ns"]) / 1e9)
        yield hist



def latency_edges() -> list[tuple[int, int]]:
    """[(edge ns, buckets wholly below it)] for the exported histogram: every edge is a
    bucket boundary of the data path's histogram, so a cumulative count there is exact."""
    from .flows import bucket_bounds
    low, width = bucket_bounds()
    top = low + width                      # exclusive upper end of each bucket
    return [(1 << k, int(np.searchsorted(top, 1 << k, side="right")))
            for k in LATENCY_EDGE_EXPONENTS]


def parse_address(address: str | tuple[str, int]) -> tuple[str, int]:
    """'127.0.0.1:9464', '[::1]:9464' or (host, port) → (host, port). Port 0 picks a free
    one. Raises ConfigError naming the expected form."""
    if isinstance(address, tuple):
        host, port = address
    else:
        text = str(address).strip()
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"metrics address {address!r}: use HOST:PORT, e.g. 127.0.0.1:9464")
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(f"metrics address {address!r}: the port {port_text!r} is not a "
                              "number") from None
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"metrics port must be 0..65535, got {port!r}")
    return str(host), port


class MetricsServer:
    """An HTTP endpoint serving ``/metrics`` from a Collector, on its own daemon thread.
    ``close()`` stops it and frees the port (also at ``with`` exit)."""

    def __init__(self, address: str | tuple[str, int], sources: Callable[[], Sources]):
        import socket
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
        prom = _prometheus()
        host, port = parse_address(address)
        self.registry = prom.CollectorRegistry(auto_describe=False)
        self.registry.register(Collector(sources))
        app = prom.make_wsgi_app(self.registry)

        class _Quiet(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        server_class: type[WSGIServer] = WSGIServer
        if ":" in host:
            class _V6(WSGIServer):
                address_family = socket.AF_INET6
            server_class = _V6
        try:
            self._httpd = make_server(host, port, app, server_class=server_class,
                                      handler_class=_Quiet)
        except OSError as e:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {e.strerror or e} "
                              "(is the port in use? port 0 picks a free one)") from None
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="dpdkvirtio-metrics", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(10)
        self._httpd.server_close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_metrics(address: str | tuple[str, int], *, switch: Any = None,
                  ports: dict[str, Any] | None = None, pmds: Iterable[Any] | None = None,
                  flows: dict[tuple[str, int], Any] | None = None) -> MetricsServer:
    """Serve Prometheus metrics on ``address`` ('HOST:PORT'; port 0 picks one, see
    ``.url``) for a Switch (its ports, PMDs and flow tables as they change) or for the
    given ports ({name: port}), PMDs and flow tables ({(port name, queue): FlowStats}).

    Raises ConfigError without prometheus_client, for a bad address or a port in use."""
    if switch is not None:
        if ports or pmds or flows:
            raise ConfigError("serve_metrics: pass a switch or ports/pmds/flows, not both")
        return MetricsServer(address, switch.metrics_sources)
    fixed = Sources(dict(ports or {}), list(pmds or ()), dict(flows or {}))
    return MetricsServer(address, lambda: fixed)
