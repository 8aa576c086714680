"""What every peer shares: CPU placement and unique DPDK file prefixes (its processes are
dpdkvirtio._process.Child)."""

from __future__ import annotations

import os
import uuid

from ..config import available_cpus


def unique_prefix(stem="dvt") -> str:
    """A DPDK --file-prefix no other process uses."""
    return f"{stem}{os.getpid()}{uuid.uuid4().hex[:6]}"


def cpus() -> list[int]:
    """This process's CPUs (config.available_cpus; at least two entries: the only CPU
    twice on a 1-CPU host)."""
    c = available_cpus()
    return c if len(c) >= 2 else c * 2


def front_back() -> tuple[int, int]:
    """(front, back): the first and the last of this process's CPUs, where a test or a
    benchmark puts the sending side and the side under measurement (one CPU twice on a
    1-CPU host)."""
    c = cpus()
    return c[0], c[-1]
