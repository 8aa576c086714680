"""Plots of a benchmark run (``python -m perf run --json``), as PNG files for a CI
artifact or a report:

    python -m perf report RESULTS.json -o DIR

- ``ratios.png``: each scenario's ratio to each peer, with min-max whiskers over the
  trials (paired ratios) when the ratio is a throughput ratio, and its basis;
- ``cycles.png``: busy cycles per packet of each side's measured poller;
- ``latency.png``: latency per load as a cumulative distribution through the recorded
  percentiles (p50, p99, p99.9, max), one line per side and load, for records that
  carry ``latency_ns`` (RFC 2544 records, latency scenarios).
"""

from __future__ import annotations

import json
import os


def save(path: str | None, content) -> None:
    """Write ``content`` to ``path`` (nothing when path is None): text as it is, anything
    else as indented JSON."""
    if path is None:
        return
    with open(path, "w") as f:
        if isinstance(content, str):
            f.write(content)
        else:
            json.dump(content, f, indent=1)


def _plt():
    import matplotlib
    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")              # files only; a notebook sets its own backend
    import matplotlib.pyplot as plt
    return plt


def _label(r: dict) -> str:
    return r["scenario"] + (f" x{r['ports']}" if "ports" in r else "")


def ratio_plot(records: list[dict], path: str) -> None:
    plt = _plt()
    peers = sorted({p for r in records for p in (r.get("ratios") or {})})
    fig, ax = plt.subplots(figsize=(9, 0.5 + 0.45 * len(records) * max(1, len(peers))))
    y, labels = 0, []
    for r in records:
        for p in peers:
            value = (r.get("ratios") or {}).get(p)
            basis = (r.get("ratio_bases") or {}).get(p, "mpps")
            if value is None:
                continue
            raw = r.get("raw_mpps") or {}
            trial = [a / b for a, b in zip(raw.get("ours", []), raw.get(p, []), strict=False) if b]
            err = None
            if basis == "mpps" and trial:
                err = [[max(0.0, value - min(trial))], [max(0.0, max(trial) - value)]]
            ax.barh(y, value, xerr=err, capsize=3,
                    color="tab:blue" if basis == "mpps" else "tab:orange")
            labels.append(f"{_label(r)} vs {p} ({basis})")
            y += 1
    ax.axvline(1.0, color="grey", lw=1)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("ours / peer (throughput, or the peer's cycles per packet over ours)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cycles_plot(records: list[dict], path: str) -> None:
    plt = _plt()
    sides = ["ours"] + sorted({p for r in records for p in r.get("peers", {})})
    rows = [r for r in records if any((r.get("cycles_per_packet") or {}).values())]
    fig, ax = plt.subplots(figsize=(9, 0.8 + 0.5 * len(rows) * len(sides)))
    height = 0.8 / len(sides)
    for i, side in enumerate(sides):
        vals = [(r.get("cycles_per_packet") or {}).get(side) or 0 for r in rows]
        ax.barh([k + i * height for k in range(len(rows))], vals, height=height, label=side)
    ax.set_yticks([k + 0.4 - height / 2 for k in range(len(rows))], [_label(r) for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("busy cycles per packet of the measured poller")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def latency_plot(records: list[dict], path: str) -> bool:
    """False (and no file) when no record has latency."""
    series = []
    for r in records:
        lat = r.get("latency_ns")
        if not lat:
            continue
        if "p50" in lat:                                  # one distribution (rfc2544)
            per_load = {"": lat}
        else:                                             # latency_ns[side][load]
            per_load = {f"{side} {load}": q for side, loads in lat.items()
                        for load, q in loads.items()}
        for side_load, q in per_load.items():
            name = " ".join(str(x) for x in (r.get("scenario") or f"{r.get('pkt_size')} B",
                                              r.get("side", ""), side_load) if x)
            points = [(q.get(k), f) for k, f in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999),
                                                 ("max", 1.0)) if q.get(k)]
            if points:
                series.append((name, points))
    if not series:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, points in series:
        ax.step([p[0] / 1e3 for p in points], [p[1] for p in points], where="post",
                marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("one-way latency, us")
    ax.set_ylabel("fraction of packets")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def report(records: list[dict], out_dir: str) -> list[str]:
    """Write the plots; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    runs = [r for r in records if "scenario" in r and "peers" in r]
    if runs:
        ratio_plot(runs, os.path.join(out_dir, "ratios.png"))
        cycles_plot(runs, os.path.join(out_dir, "cycles.png"))
        written += [os.path.join(out_dir, "ratios.png"), os.path.join(out_dir, "cycles.png")]
    if latency_plot(records, os.path.join(out_dir, "latency.png")):
        written.append(os.path.join(out_dir, "latency.png"))
    return written


def cmd_report(args) -> int:
    with open(args.results) as f:
        records = json.load(f)
    if isinstance(records, dict):
        records = [records]
    for path in report(records, args.out):
        print(path)
    return 0


def add_arguments(p) -> None:
    p.add_argument("results", help="a JSON file of perf run (or rfc2544)")
    p.add_argument("-o", "--out", default="perf/results/report", help="directory for the PNGs")
    p.set_defaults(func=cmd_report)
