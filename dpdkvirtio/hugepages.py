"""Hugepages on this host: what is reserved, free and mounted, and how to get more.

Pure Python (reads /proc and /sys); used to pick the EAL memory mode and by the
``dpdkvirtio hugepages`` / ``doctor`` commands.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SYS_NODES = Path("/sys/devices/system/node")
SYS_HUGEPAGES = Path("/sys/kernel/mm/hugepages")
DEFAULT_MOUNT = "/dev/hugepages"


@dataclass
class PagePool:
    """Hugepages of one size (``size_kb``) on one NUMA node (None = whole system)."""

    size_kb: int
    node: int | None
    total: int
    free: int
    surplus: int = 0

    @property
    def free_mb(self) -> int:
        return self.free * self.size_kb // 1024


@dataclass
class Mount:
    path: str
    pagesize_kb: int | None
    options: str


@dataclass
class HugepageInfo:
    pools: list[PagePool] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)

    def system_pool(self, size_kb: int = 2048) -> PagePool | None:
        for p in self.pools:
            if p.node is None and p.size_kb == size_kb:
                return p
        return None

    def free_mb(self, size_kb: int = 2048) -> int:
        p = self.system_pool(size_kb)
        return p.free_mb if p else 0

    def mount_for(self, size_kb: int = 2048) -> Mount | None:
        default_kb = default_hugepage_kb()
        for m in self.mounts:
            if (m.pagesize_kb or default_kb) == size_kb:
                return m
        return None


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def default_hugepage_kb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("Hugepagesize:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 2048


def _parse_pagesize(options: str) -> int | None:
    for opt in options.split(","):
        if opt.startswith("pagesize="):
            v = opt.split("=", 1)[1].upper()
            mult = {"K": 1, "M": 1024, "G": 1024 * 1024}
            if v[-1] in mult:
                return int(v[:-1]) * mult[v[-1]]
            return int(v) // 1024
    return None


def read_info() -> HugepageInfo:
    """Reserved/free pages per size (system-wide and per NUMA node) and hugetlbfs mounts."""
    info = HugepageInfo()
    if SYS_HUGEPAGES.is_dir():
        for d in sorted(SYS_HUGEPAGES.iterdir()):
            size_kb = int(d.name.split("-")[1].rstrip("kB"))
            info.pools.append(PagePool(size_kb, None, _read_int(d / "nr_hugepages"),
                                       _read_int(d / "free_hugepages"),
                                       _read_int(d / "surplus_hugepages")))
    if SYS_NODES.is_dir():
        for nd in sorted(SYS_NODES.glob("node[0-9]*")):
            hp = nd / "hugepages"
            if not hp.is_dir():
                continue
            for d in sorted(hp.iterdir()):
                size_kb = int(d.name.split("-")[1].rstrip("kB"))
                info.pools.append(PagePool(size_kb, int(nd.name[4:]),
                                           _read_int(d / "nr_hugepages"),
                                           _read_int(d / "free_hugepages"),
                                           _read_int(d / "surplus_hugepages")))
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[2] == "hugetlbfs":
                info.mounts.append(Mount(parts[1], _parse_pagesize(parts[3]), parts[3]))
    except OSError:
        pass
    return info


def reserve(pages: int, size_kb: int = 2048, step_pages: int = 0,
            on_step: Callable[[int], None] | None = None) -> int:
    """Set the system-wide number of ``size_kb`` pages (root only). Returns the number
    the kernel actually reserved (it may give fewer when memory is fragmented).
    ``step_pages`` > 0 grows the pool that many pages at a time (the kernel may compact
    memory for each), calling ``on_step(pages now)`` after each; it stops early when the
    kernel gives no more."""
    if pages < 0:
        raise ValueError("pages must be >= 0")
    path = SYS_HUGEPAGES / f"hugepages-{size_kb}kB" / "nr_hugepages"
    if not path.exists():
        raise FileNotFoundError(f"this kernel has no {size_kb} kB hugepages ({path})")
    now = _read_int(path)
    targets = reserve_steps(now, pages, step_pages)
    for target in targets:
        try:
            path.write_text(str(target))
        except PermissionError as e:
            raise PermissionError(f"reserving hugepages needs root: {e}") from None
        got = _read_int(path)
        if on_step is not None:
            on_step(got)
        if got < target:
            break
    return _read_int(path)


def reserve_steps(now: int, pages: int, step_pages: int = 0) -> list[int]:
    """The pool sizes ``reserve`` writes in turn to go from ``now`` to ``pages`` pages."""
    if step_pages <= 0 or pages <= now:
        return [pages]
    return list(range(now + step_pages, pages, step_pages)) + [pages]


def mount(path: str = DEFAULT_MOUNT, size_kb: int = 2048) -> None:
    """Mount hugetlbfs for ``size_kb`` pages at ``path`` (root only); no-op when mounted."""
    info = read_info()
    if any(m.path == path for m in info.mounts):
        return
    os.makedirs(path, exist_ok=True)
    pagesize = f"{size_kb // 1024}M" if size_kb < 1024 * 1024 else f"{size_kb // (1024 * 1024)}G"
    res = subprocess.run(["mount", "-t", "hugetlbfs", "-o", f"pagesize={pagesize}", "nodev", path],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise OSError(f"mount -t hugetlbfs at {path} failed: {res.stderr.strip()} (needs root)")
