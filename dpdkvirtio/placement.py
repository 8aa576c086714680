"""Where rx queues go (pure Python, no DPDK): OVS ``pmd-rxq-affinity`` parsing and the
placement of a port's queues on PMD CPUs (pinned queues isolate their CPU, the others go
to the least loaded CPU). Used by Pmd/assign_rxqs, the Switch and topology dry runs."""

from __future__ import annotations

import re

from .errors import ConfigError

_AFFINITY_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_rxq_affinity(text: str) -> dict[int, int]:
    """OVS ``pmd-rxq-affinity``: "0:3,1:7" → {queue 0: CPU 3, queue 1: CPU 7}."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("pmd-rxq-affinity must be a string like '0:3,1:7'")
    out: dict[int, int] = {}
    for part in text.split(","):
        m = _AFFINITY_RE.match(part)
        if not m:
            raise ConfigError(f"malformed pmd-rxq-affinity entry {part.strip()!r} in {text!r}: "
                              "expected <queue>:<cpu>, e.g. '0:3,1:7'")
        q, cpu = int(m.group(1)), int(m.group(2))
        if q in out:
            raise ConfigError(f"queue {q} appears twice in pmd-rxq-affinity {text!r}")
        out[q] = cpu
    return out


def place_rxqs(n_rxq: int, affinity: dict[int, int], load: dict[int, int],
               isolated: set[int]) -> dict[int, int]:
    """Where the rx queues of one port go: {queue: cpu}. Pinned queues (``affinity``) go
    where they are pinned, and their CPUs become isolated (OVS pmd-rxq-isolate=true); the
    other queues go, one by one, to the least loaded non-isolated CPU of ``load`` (ties:
    the lowest CPU), or to the least loaded CPU when every one is isolated. ``load`` (rx
    queues per CPU) and ``isolated`` are updated. Pure: no DPDK."""
    if not load:
        raise ConfigError("no PMD CPUs to place queues on")
    out: dict[int, int] = {}
    for q, cpu in affinity.items():
        if cpu not in load:
            raise ConfigError(f"pmd-rxq-affinity puts queue {q} on CPU {cpu}, where no PMD runs "
                              f"(PMD CPUs: {sorted(load)})")
        if not 0 <= q < n_rxq:
            raise ConfigError(f"pmd-rxq-affinity names queue {q}; the port has {n_rxq} queue(s)")
        out[q] = cpu
        load[cpu] += 1
        isolated.add(cpu)
    for q in range(n_rxq):
        if q in out:
            continue
        candidates = [c for c in load if c not in isolated] or list(load)
        cpu = min(candidates, key=lambda c: (load[c], c))
        out[q] = cpu
        load[cpu] += 1
    return out
