"""The ``dpdkvirtio`` command line (also ``python -m dpdkvirtio``), in the spirit of
ovs-vsctl / ovs-appctl:

    dpdkvirtio run TOPOLOGY.toml [--dry-run] [--metrics HOST:PORT]
                                                run a switch in the foreground
    dpdkvirtio ctl show | add-port | del-port | set | add-flow | del-flow |
                   pmd-rxq-show | pmd-perf-show | pmd-sleep-show | port-stats | stop
                   [--json]
    dpdkvirtio top                                live per-port Mpps and per-PMD load
    dpdkvirtio drivers [NAME ...]                 PMDs on this host and their devargs
    dpdkvirtio doctor                             is this host ready?
    dpdkvirtio hugepages [show | reserve N | mount [PATH]]
    dpdkvirtio demo                               vhost-user <-> virtio-user, live Mpps

User mistakes end in one readable line on stderr and a non-zero exit status, never a
traceback (set DPDKVIRTIO_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time

from .errors import ConfigError, DpdkError


class UsageError(Exception):
    """A command-line mistake (exit status 2)."""


def _print_json(obj):
    print(json.dumps(obj, indent=2, default=str))


def _table(headers, rows) -> str:
    rows = [[("-" if v is None else str(v)) for v in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
            for r in rows]
    return "\n".join(out)


# ------------------------------------------------------------------------------ demo

def _demo(args) -> int:
    from . import demo
    demo.check_args(args)
    return demo.run(args)


def _demo_peer(args) -> int:
    from . import demo
    return demo.run_peer(args)


# ------------------------------------------------------------------------------ run

def _run(args) -> int:
    from . import topology
    from .control import ControlServer
    from .events import poll_events
    plan = topology.plan(topology.load(args.topology))
    if args.metrics:
        from .metrics import parse_address
        parse_address(args.metrics)          # a bad address fails before DPDK starts
    if args.dry_run:
        _print_json(plan.as_dict()) if args.json else print(plan.text())
        return 0
    run_dir = topology.DEFAULT_RUN_DIR
    if run_dir in (os.path.dirname(plan.control_socket), plan.config.vhost_sock_dir):
        os.makedirs(run_dir, mode=0o750, exist_ok=True)
    print(plan.text(), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sw = topology.build(plan)
    # From here this thread and every thread it starts (the control socket's) stay on the
    # main lcore's CPUs, off the PMD threads' CPUs, as OVS keeps its non-PMD threads.
    try:
        os.sched_setaffinity(0, plan.main_cpus)
    except OSError:
        pass
    if not args.verbose:
        logging.getLogger("dpdkvirtio.dpdk").setLevel(logging.WARNING)
    server = metrics = None
    try:
        server = ControlServer(sw, plan.control_socket, on_stop=stop.set)
        if args.metrics:
            from .metrics import serve_metrics
            metrics = serve_metrics(args.metrics, switch=sw)
            print(f"metrics: {metrics.url}", flush=True)
        if sw.eal.config.telemetry:
            print(f"telemetry: dpdk-telemetry.py -f {sw.eal.file_prefix} "
                  "(commands /dpdkvirtio/ports, /dpdkvirtio/port,NAME, /dpdkvirtio/pmds, ...)",
                  flush=True)
        print(f"switch {sw.name} running ({sw.eal.version}, memory {sw.eal.memory_mode}); "
              f"control socket {plan.control_socket}; Ctrl-C or SIGTERM stops it", flush=True)
        while not stop.wait(0.5):
            for ev in poll_events():
                name = sw.port_name(ev.port)
                if name is None:
                    continue
                if ev.kind == "new_device":
                    print(f"{time.strftime('%H:%M:%S')} port {name}: front-end up "
                          f"({ev.queue} vrings)", flush=True)
                elif ev.kind == "destroy_device":
                    print(f"{time.strftime('%H:%M:%S')} port {name}: front-end gone", flush=True)
                elif ev.kind == "connection_refused":
                    print(f"{time.strftime('%H:%M:%S')} port {name}: refused a second front-end "
                          "(the port is in use)", flush=True)
    finally:
        if metrics is not None:
            metrics.close()
        if server is not None:
            server.close()
        final = sw.all_port_stats()
        sw.close()
        print("\nstopped; final counters:")
        print(_table(["port", "rx_packets", "tx_packets", "tx_dropped", "tx_failure_drops",
                      "tx_not_ready_drops"],
                     [[n, s["rx_packets"], s["tx_packets"], s["tx_dropped"], s["tx_failure_drops"],
                       s["tx_not_ready_drops"]] for n, s in final.items()]))
    return 0


# ------------------------------------------------------------------------------ ctl

def _ctl(args) -> int:
    from .control import bind_ctl_words, find_socket, request
    path = find_socket(args.socket)
    a = args.ctl_args
    cmd = args.ctl_cmd
    if cmd != "capture" and (args.cap_write or args.cap_direction or args.cap_count
                             or args.cap_duration or args.cap_snaplen != 65535
                             or args.cap_filter):
        raise UsageError(f"ctl {cmd}: -w, --rx/--tx/--both, -c, -s, --duration and -f are "
                         "options of ctl capture")
    if cmd == "capture":
        if len(a) != 1:
            raise UsageError("ctl capture needs one PORT")
        return _ctl_capture(path, a[0], args)
    try:
        kwargs = bind_ctl_words(cmd, a)
    except ConfigError as e:
        raise UsageError(f"{e}; see dpdkvirtio ctl --help") from None
    res = request(path, cmd, **kwargs)
    if args.json:
        _print_json(res)
        return 0
    _print_ctl(cmd, res)
    return 0


def _ctl_capture(path: str, port: str, args) -> int:
    """Capture until a limit or Ctrl-C; the switch writes the pcapng itself: to the
    absolute FILE, or for '-' to this process's stdout, which it opens through /proc
    (same host; the switch runs as root or as this user)."""
    from .control import request
    if not args.cap_write:
        raise UsageError("ctl capture: give -w FILE, or -w - for stdout")
    if args.cap_write == "-":
        sys.stdout.flush()
        target = f"/proc/{os.getpid()}/fd/1"
    else:
        target = os.path.abspath(args.cap_write)
    try:
        res = request(path, "capture", timeout_s=10.0 ** 9, port=port, file=target,
                      direction=args.cap_direction or "rx", snaplen=args.cap_snaplen,
                      count=args.cap_count, duration_s=args.cap_duration,
                      filter=args.cap_filter)
    except KeyboardInterrupt:
        res = request(path, "capture-stop", port=port)
        print(f"capture of {port} stopped", file=sys.stderr)
        return 0
    dirs = ", ".join(f"{d}: {v['seen']} seen, {v['dropped']} not captured"
                     for d, v in res["interfaces"].items())
    print(f"{res['written']} packets ({res['bytes']} bytes) captured from {port} ({dirs})",
          file=sys.stderr)
    if args.json:
        if args.cap_write == "-":
            print(json.dumps(res), file=sys.stderr)
        else:
            _print_json(res)
    return 0


def _print_ctl(cmd, res):
    if cmd == "show":
        print(f"bridge {res['bridge']} ({res['dpdk']['version']}, memory "
              f"{res['dpdk']['memory_mode']})")
        for p in res["pmds"]:
            print(f"  pmd lcore {p['lcore']} cpu {p['cpu']} {'running' if p['running'] else 'stopped'}")
        for p in res["ports"]:
            extra = f" socket={p['socket']} running={p['running']}" if "socket" in p else \
                f" devargs={p.get('devargs')} link_up={p.get('link_up')}"
            print(f"  port {p['name']} (ofport {p['ofport']}) type={p['type']} queues={p['queues']}"
                  f"{extra}")
        for r in res["rules"]:
            print(f"  rule {r['in_port']} -> {r['out_port']}")
        for m in res["mempools"]:
            print(f"  mempool {m['name']} size={m['size']} in_use={m['in_use']} ports={','.join(m['ports'])}")
    elif cmd == "pmd-rxq-show":
        print(_table(["pmd cpu", "port", "queue", "action", "to", "packets", "usage %"],
                     [[r["pmd_cpu"], r["port"], r["queue"], r["action"], r.get("out_port", ""),
                       r["packets"], f"{r['usage_pct']:.1f}"] for r in res]))
    elif cmd == "pmd-sleep-show":
        for p in res:
            if p["mode"] == "interrupt":
                print(f"pmd lcore {p['lcore']} cpu {p['cpu']}: interrupt mode, waited for a kick "
                      f"{p['intr_arms']} times: woken {p['intr_wakeups']} "
                      f"({p['intr_spurious']} for nothing), timed out {p['intr_timeouts']}")
            else:
                print(f"pmd lcore {p['lcore']} cpu {p['cpu']}: max sleep {p['sleep_max_us']} us, "
                      f"slept {p['slept_ns'] / 1e9:.3f} s in {p['iterations_slept']} of "
                      f"{p['iterations']} iterations (longest {p['sleep_max_ns'] / 1e3:.0f} us)")
    elif cmd == "pmd-perf-show":
        for p in res:
            print(f"pmd lcore {p['lcore']} cpu {p['cpu']}:")
            print(f"  iterations {p['iterations']}  busy {p['busy_pct']:.1f}%  rx packets "
                  f"{p['rx_packets']}  tx packets {p['tx_packets']}")
            print(f"  cycles/packet {p['cycles_per_packet']:.1f}  packets/poll "
                  f"{p['packets_per_poll']:.2f}  empty iterations {p['empty_iterations']}")
            print(f"  stalls (CPU taken away for 100 us or more) {p['stalls']}: "
                  f"{p['stalled_ns'] / 1e6:.1f} ms in all, longest {p['stall_max_ns'] / 1e3:.0f} us")
            hist = p["burst_histogram"]
            nz = [(i, n) for i, n in enumerate(hist) if n]
            print("  burst sizes: " + ", ".join(f"{i}:{n}" for i, n in nz[:12]) +
                  (" ..." if len(nz) > 12 else ""))
    elif cmd == "flow-stats":
        print(_flow_table(res))
    elif cmd == "generators":
        print(_table(["generator", "port", "flow", "pps", "sent", "done"],
                     [[n, g["port"], "-" if g["flow_id"] is None else g["flow_id"],
                       f"{g['pps']:.0f}" if g["pps"] else "max", g["sent"], g["done"]]
                      for n, g in res.items()]))
    elif cmd == "port-stats":
        keys = ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "tx_dropped", "tx_failure_drops",
                "tx_not_ready_drops", "tx_retries"]
        print(_table(["port"] + keys, [[n] + [s[k] for k in keys] for n, s in res.items()]))
    else:
        print(json.dumps(res) if not isinstance(res, str) else res)


def _us(ns) -> str:
    return "-" if ns is None else f"{ns / 1e3:.1f}"


def _flow_table(rows, rates: dict | None = None) -> str:
    """flow-stats rows as a table (latencies in us); ``rates``: {(port, queue, flow): Mpps}."""
    head = ["port", "queue", "flow", "received", "lost", "reordered", "dups"]
    head += ["Mpps"] if rates is not None else ["sent"]
    head += ["min us", "p50 us", "p99 us", "max us", "jitter us"]
    out = []
    for r in rows:
        row = [r["port"], r["queue"], r["flow_id"], r["received"], r.get("lost_total", r["lost"]),
               r["out_of_order"], r["duplicates"]]
        if rates is not None:
            rate = rates.get((r["port"], r["queue"], r["flow_id"]))
            row.append("-" if rate is None else f"{rate:.3f}")
        else:
            row.append(r.get("sent", "-"))
        row += [_us(r["lat_min_ns"]), _us(r["p50_ns"]), _us(r["p99_ns"]), _us(r["lat_max_ns"]),
                f"{r['jitter_ns'] / 1e3:.2f}"]
        out.append(row)
    return _table(head, out)


# ------------------------------------------------------------------------------ top

def _top(args) -> int:
    from .control import find_socket, request
    from .stats import pmd_interval, rates
    path = find_socket(args.socket)
    tty = sys.stdout.isatty()
    prev = None
    n = 0
    while args.count is None or n < args.count + 1:
        stats = request(path, "port-stats")
        perf = request(path, "pmd-perf-show")
        try:
            flows = request(path, "flow-stats")
        except ConfigError:                 # (the switch's: flow-stats is off; no port named)
            flows = None
        now = time.monotonic()
        if prev is not None:
            pt, pstats, pperf, pflows = prev
            dt = now - pt
            rows = []
            for name, s in stats.items():
                if name in pstats:
                    r = rates(s, pstats[name], dt, ("rx_packets", "tx_packets", "tx_dropped"))
                    rows.append([name, f"{r['rx_packets'] / 1e6:.3f}",
                                 f"{r['tx_packets'] / 1e6:.3f}", f"{r['tx_dropped']:.0f}"])
            pmds = []
            for cur, old in zip(perf, pperf):
                m = pmd_interval(cur, old, dt)
                cpp = m["cycles_per_packet"]
                pmds.append([cur["cpu"], cur["mode"], f"{m['busy_pct']:.1f}",
                             "-" if cpp is None else f"{cpp:.1f}", f"{m['mpps']:.3f}",
                             f"{m['slept_pct']:.1f}", f"{m['wakeups_per_s']:.0f}"])
            if tty:
                print("\033[2J\033[H", end="")
            print(time.strftime("%H:%M:%S"), f"(every {args.interval:g} s)")
            print(_table(["port", "rx Mpps", "tx Mpps", "drops/s"], rows))
            print()
            print(_table(["pmd cpu", "mode", "busy %", "cycles/pkt", "Mpps", "slept %",
                          "wake-ups/s"], pmds), flush=True)
            if flows:
                before = {(r["port"], r["queue"], r["flow_id"]): r["received"] for r in pflows or []}
                flow_mpps = {(r["port"], r["queue"], r["flow_id"]):
                             (r["received"] - before.get((r["port"], r["queue"], r["flow_id"]), 0))
                             / dt / 1e6 for r in flows}
                print()
                print(_flow_table(flows, flow_mpps), flush=True)
            if not tty:
                print()
        prev = (now, stats, perf, flows)
        n += 1
        if args.count is not None and n > args.count:
            break
        time.sleep(args.interval)
    return 0


# ------------------------------------------------------------------------------ drivers

def _drivers(args) -> int:
    from . import pmdinfo
    drvs = list(pmdinfo.drivers())
    if args.names:
        wanted = []
        for n in args.names:
            d = pmdinfo.find_driver(n)
            if d is None:
                raise UsageError(f"no driver matches {n!r} on this host")
            wanted.append(d)
        drvs = wanted
    if not drvs:
        raise DpdkError(None, "no PMD plugin files found (is the dpdk package installed?)")
    if args.json:
        _print_json(drvs)
        return 0
    print(f"{len(drvs)} drivers in {pmdinfo.plugin_dir()}")
    for d in drvs:
        keys = " ".join(f"{k}={v}" for k, v in d["params"].items())
        kind = f"{d['pci_ids']} PCI ids" if d["pci_ids"] else ("vdev" if d["params"] else "")
        print(f"  {d['name']:<24} {kind:<12} {keys}")
    return 0


# ------------------------------------------------------------------------------ doctor

def _doctor(args) -> int:
    from . import doctor
    checks = doctor.run(args.sock_dir)
    if args.json:
        _print_json(checks)
    else:
        mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
        for c in checks:
            print(f"[{mark[c['verdict']]}] {c['check']}: {c['detail']}")
            if c["todo"]:
                print(f"       -> {c['todo']}")
    return 1 if any(c["verdict"] == "fail" for c in checks) else 0


# ------------------------------------------------------------------------------ hugepages

RESERVE_STEP_PAGES = 512          # 1 GB of 2 MB pages per write: progress on a large reserve


def _hugepages(args) -> int:
    from . import hugepages
    if args.action == "reserve":
        if args.pages is None or args.pages < 0:
            raise UsageError("hugepages reserve needs a number of pages, e.g. 1024")
        from .progress import Progress
        pool = hugepages.read_info().system_pool(args.size)
        now = pool.total if pool is not None else 0
        step = RESERVE_STEP_PAGES if args.size == 2048 else 1
        with Progress(len(hugepages.reserve_steps(now, args.pages, step)),
                      f"hugepages reserve {args.pages}") as progress:
            got = hugepages.reserve(args.pages, args.size, step,
                                    lambda n: progress.step(f"{n} pages"))
        print(f"{got} pages of {args.size} kB reserved" + ("" if got == args.pages else
              f" (asked for {args.pages}: memory is fragmented or short)"))
        return 0 if got == args.pages else 1
    if args.action == "mount":
        path = args.path or hugepages.DEFAULT_MOUNT
        hugepages.mount(path, args.size)
        print(f"hugetlbfs ({args.size} kB pages) mounted at {path}")
        return 0
    info = hugepages.read_info()
    if args.json:
        _print_json({"pools": [vars(p) for p in info.pools], "mounts": [vars(m) for m in info.mounts]})
        return 0
    print(_table(["size", "node", "total", "free", "free MB"],
                 [[f"{p.size_kb // 1024} MB", "all" if p.node is None else p.node, p.total, p.free,
                   p.free_mb] for p in info.pools]))
    print("mounts: " + (", ".join(f"{m.path} ({m.options})" for m in info.mounts) or "none"))
    return 0


# ------------------------------------------------------------------------------ parser



def build_parser() -> argparse.ArgumentParser:
    from . import demo
    from .control import CTL_COMMANDS
    p = argparse.ArgumentParser(prog="dpdkvirtio", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="run a switch from a TOML topology in the foreground")
    r.add_argument("topology")
    r.add_argument("--dry-run", action="store_true", help="check it and print the plan; create nothing")
    r.add_argument("--json", action="store_true")
    r.add_argument("--metrics", metavar="HOST:PORT",
                   help="serve Prometheus metrics on http://HOST:PORT/metrics (port 0: any free "
                        "port; needs prometheus_client)")
    r.set_defaults(func=_run)

    c = sub.add_parser("ctl", help="query or change a running switch",
                       description="add-port NAME TYPE [key=value ...]; del-port NAME; "
                       "set NAME key=value ...; add-flow IN OUT|drop; del-flow IN; "
                       "port-stats [NAME]; show; pmd-rxq-show; pmd-perf-show; pmd-sleep-show; "
                       "flow-stats [PORT]; add-generator NAME PORT [flow_id=N pps=X|rate=10kpps size=N "
                       "count=N]; del-generator NAME; generators; capture PORT -w FILE|- "
                       "[--rx|--tx|--both] [-c N] [-s SNAPLEN] [--duration S] [-f FILTER]; "
                       "capture-stop PORT; stop")
    c.add_argument("ctl_cmd", choices=CTL_COMMANDS, metavar="COMMAND")       # the server's
    c.add_argument("ctl_args", nargs="*", metavar="ARG")
    c.add_argument("--socket", help="control socket (default: the one in /run/dpdkvirtio)")
    c.add_argument("--json", action="store_true")
    cc = c.add_argument_group("capture (pcapng)")
    cc.add_argument("-w", dest="cap_write", metavar="FILE",
                    help="write to FILE, or '-' for stdout (e.g. | tshark -r -)")
    dirs = cc.add_mutually_exclusive_group()
    for flag in ("rx", "tx", "both"):
        dirs.add_argument(f"--{flag}", dest="cap_direction", action="store_const", const=flag,
                       help=f"capture {flag}" + (" (default)" if flag == "rx" else ""))
    cc.add_argument("-c", dest="cap_count", type=int, default=0, metavar="N",
                    help="stop after N packets")
    cc.add_argument("-s", dest="cap_snaplen", type=int, default=65535, metavar="SNAPLEN",
                    help="bytes kept of each packet (default 65535)")
    cc.add_argument("--duration", dest="cap_duration", type=float, default=0.0, metavar="S",
                    help="stop after S seconds")
    cc.add_argument("-f", dest="cap_filter", metavar="FILTER",
                    help="capture only what this pcap filter matches (tcpdump syntax)")
    c.set_defaults(func=_ctl)

    t = sub.add_parser("top", help="live per-port Mpps and per-PMD load of a running switch")
    t.add_argument("--socket")
    t.add_argument("--interval", type=float, default=1.0)
    t.add_argument("--count", type=int, help="stop after this many refreshes")
    t.set_defaults(func=_top)

    d = sub.add_parser("drivers", help="poll-mode drivers on this host and their devargs")
    d.add_argument("names", nargs="*", metavar="NAME")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_drivers)

    o = sub.add_parser("doctor", help="check this host: hugepages, CPUs, sockets, DPDK")
    o.add_argument("--sock-dir", default="/run/dpdkvirtio")
    o.add_argument("--json", action="store_true")
    o.set_defaults(func=_doctor)

    h = sub.add_parser("hugepages", help="show, reserve or mount hugepages")
    h.add_argument("action", nargs="?", choices=("show", "reserve", "mount"), default="show")
    h.add_argument("pages", nargs="?", type=int, help="reserve: number of pages")
    h.add_argument("--path", help="mount: where (default /dev/hugepages)")
    h.add_argument("--size", type=int, default=2048, help="page size in kB (default 2048)")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=_hugepages)

    m = sub.add_parser("demo", help="pump packets between a vhost-user and a virtio-user port")
    demo.add_arguments(m)
    m.set_defaults(func=_demo)
    mp = sub.add_parser("demo-peer", help=argparse.SUPPRESS)
    demo.add_peer_arguments(mp)
    mp.set_defaults(func=_demo_peer)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * args.verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # What DPDK logs while a command sets things up travels inside the exception if the
        # command fails; the plan already lists devargs warnings. `run` turns DPDK's
        # warnings back on once the switch runs.
        logging.getLogger("dpdkvirtio.dpdk").setLevel(logging.CRITICAL)
        logging.getLogger("dpdkvirtio.switch").setLevel(logging.ERROR)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .control import ControlError
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (UsageError, ConfigError) as e:
        if os.environ.get("DPDKVIRTIO_DEBUG"):
            raise
        print(f"dpdkvirtio: error: {e}", file=sys.stderr)
        return 2
    except (ControlError, DpdkError, OSError, RuntimeError) as e:
        if os.environ.get("DPDKVIRTIO_DEBUG"):
            raise
        print(f"dpdkvirtio: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
