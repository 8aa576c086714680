"""Typed EAL configuration and its translation to an EAL argv (pure Python, no DPDK).

The argv is built here and nowhere else. Arguments that would make EAL exit the
process (``--help``, ``--log-level=help``), conflict with what the config sets, or
are known-bad combinations in 22.11 (``--no-huge`` + ``--in-memory``) are refused
before DPDK sees them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import hugepages
from .errors import ConfigError

MEMORY_MODES = ("auto", "hugepages", "no-huge")
LOG_LEVELS = {"emerg": 1, "alert": 2, "crit": 3, "error": 4, "warning": 5, "notice": 6,
              "info": 7, "debug": 8}
IOVA_MODES = ("va", "pa")
MAX_LCORE = 128
# EAL memory (MB) used when the caller does not say: enough for a few ports' mempools.
DEFAULT_MEMORY_MB = 512
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# Options that make EAL call exit() (Python would die without finalisation).
_EXITING_OPTIONS = ("-h", "--help", "--log-level=help")
# Options this config owns; passing them through extra_args would contradict it.
_OWNED_OPTIONS = {
    "-l": "lcores", "-c": "lcores", "--lcores": "lcores", "--main-lcore": "main_lcore",
    "--master-lcore": "main_lcore", "--file-prefix": "file_prefix", "--no-huge": "memory_mode",
    "--in-memory": "memory_mode", "-m": "memory_mb", "--socket-mem": "memory_mb",
    "--iova-mode": "iova_mode", "--no-pci": "pci", "--log-level": "log_level",
    "--no-telemetry": "telemetry", "--telemetry": "telemetry", "--vdev": "ports (add them at runtime)",
    "--proc-type": None, "--single-file-segments": "memory_mode",
}


def _cpu_list(cpus: Iterable[int]) -> str:
    cpus = sorted(set(cpus))
    if len(cpus) == 1:
        return str(cpus[0])
    return "(" + ",".join(str(c) for c in cpus) + ")"


_process_cpus: set[int] = set()          # set by eal.init(): the CPUs the process had then


def remember_process_cpus(cpus: Iterable[int]) -> None:
    """Called by eal.init() with the CPUs the process had when it initialised DPDK."""
    _process_cpus.clear()
    _process_cpus.update(cpus)


def available_cpus() -> list[int]:
    """CPUs this process may run on: the calling thread's, plus (once DPDK runs) the CPUs
    the process had when it initialised DPDK (a thread may have narrowed its own)."""
    return sorted(set(os.sched_getaffinity(0)) | _process_cpus)


@dataclass(frozen=True)
class EalConfig:
    """How to initialise DPDK's EAL.

    Parameters
    ----------
    workers : dict[int, int] or None
        Worker lcore id → CPU. Default: one worker per available CPU, lcore ``i + 1`` on
        the i-th CPU, so a poller can be placed on any CPU.
    main_lcore : int
        Main lcore id (the Python thread that calls init); it floats over
        ``main_cpus``.
    main_cpus : list[int] or None
        CPUs the main lcore may use (default: all available). The calling thread's
        own affinity is restored after init anyway.
    memory_mode : "auto" | "hugepages" | "no-huge"
        ``auto`` uses 2 MB hugepages when enough are free, else ``--no-huge`` (memfd
        shared memory, still usable by vhost-user peers).
    memory_mb : int or None
        Memory reserved at init and never exceeded (``-m`` with ``--no-huge``,
        ``--socket-mem``/``--socket-limit`` with hugepages). Default 512.
    file_prefix : str or None
        Unique per process (default ``dv<pid>``); never reuse another process's.
    log_level : str
        DPDK log level (emerg … debug); messages go to Python ``logging``.
    iova_mode : "va" | "pa"
    pci : bool
        Scan the PCI bus (default False: ``--no-pci``).
    telemetry : bool
        DPDK's telemetry socket in the runtime directory.
    extra_args : tuple[str, ...]
        Further EAL arguments, checked against the ones this config owns.
    """

    workers: dict[int, int] | None = None
    main_lcore: int = 0
    main_cpus: tuple[int, ...] | None = None
    memory_mode: str = "auto"
    memory_mb: int | None = None
    file_prefix: str | None = None
    log_level: str = "notice"
    iova_mode: str = "va"
    pci: bool = False
    telemetry: bool = True
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def validate(self, cpus: list[int] | None = None) -> None:
        """Raise ConfigError naming the first bad setting."""
        cpus = available_cpus() if cpus is None else cpus
        if self.memory_mode not in MEMORY_MODES:
            raise ConfigError(f"memory_mode must be one of {MEMORY_MODES}, got {self.memory_mode!r}")
        if self.memory_mb is not None and (not isinstance(self.memory_mb, int) or self.memory_mb < 16):
            raise ConfigError(f"memory_mb must be an integer >= 16, got {self.memory_mb!r}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        if self.iova_mode not in IOVA_MODES:
            raise ConfigError(f"iova_mode must be 'va' or 'pa', got {self.iova_mode!r}")
        if self.file_prefix is not None and not _PREFIX_RE.match(self.file_prefix):
            raise ConfigError(f"file_prefix {self.file_prefix!r} must be 1-64 characters of "
                              "letters, digits, '_', '.', '-'")
        if not 0 <= self.main_lcore < MAX_LCORE:
            raise ConfigError(f"main_lcore must be 0..{MAX_LCORE - 1}")
        for cpu in self.main_cpus or ():
            if cpu not in cpus:
                raise ConfigError(f"main_cpus: CPU {cpu} is not available to this process "
                                  f"(available: {cpus})")
        for lcore, cpu in self.resolved_workers(cpus).items():
            if not isinstance(lcore, int) or not 0 <= lcore < MAX_LCORE:
                raise ConfigError(f"worker lcore ids must be 0..{MAX_LCORE - 1}, got {lcore!r}")
            if lcore == self.main_lcore:
                raise ConfigError(f"lcore {lcore} is the main lcore; it cannot also be a worker")
            if cpu not in cpus:
                raise ConfigError(f"worker lcore {lcore}: CPU {cpu} is not available to this "
                                  f"process (available: {cpus})")
        args = list(self.extra_args)
        for i, a in enumerate(args):
            if not isinstance(a, str):
                raise ConfigError(f"extra_args must be strings, got {a!r}")
            opt = a.split("=", 1)[0]
            nxt = args[i + 1] if i + 1 < len(args) else ""
            if a in _EXITING_OPTIONS or (a == "--log-level" and nxt == "help"):
                raise ConfigError(f"EAL option {a!r} makes DPDK exit the process; it is not allowed")
            if opt in ("-v", "--version"):
                continue
            if opt in _OWNED_OPTIONS:
                owner = _OWNED_OPTIONS[opt]
                where = f"set EalConfig.{owner}" if owner and " " not in owner else (owner or "not supported")
                raise ConfigError(f"EAL option {opt!r} in extra_args conflicts with the config: {where}")

    def resolved_workers(self, cpus: list[int] | None = None) -> dict[int, int]:
        if self.workers is not None:
            return dict(self.workers)
        cpus = available_cpus() if cpus is None else cpus
        return {i + 1: cpu for i, cpu in enumerate(cpus)}

    def resolved_prefix(self) -> str:
        return self.file_prefix or f"dv{os.getpid()}"

    def to_argv(self, memory_mode: str, cpus: list[int] | None = None,
                program: str = "dpdkvirtio") -> list[str]:
        """The EAL argv for a resolved ``memory_mode`` ('hugepages' or 'no-huge')."""
        cpus = available_cpus() if cpus is None else cpus
        self.validate(cpus)
        if memory_mode not in ("hugepages", "no-huge"):
            raise ConfigError(f"resolved memory mode must be 'hugepages' or 'no-huge', got {memory_mode!r}")
        main_cpus = list(self.main_cpus) if self.main_cpus else cpus
        groups = [f"{self.main_lcore}@{_cpu_list(main_cpus)}"]
        for lcore, cpu in sorted(self.resolved_workers(cpus).items()):
            groups.append(f"{lcore}@{cpu}")
        argv = [program, f"--lcores={','.join(groups)}", f"--main-lcore={self.main_lcore}",
                f"--file-prefix={self.resolved_prefix()}", f"--iova-mode={self.iova_mode}",
                f"--log-level={LOG_LEVELS[self.log_level]}"]
        mem = self.memory_mb or DEFAULT_MEMORY_MB
        if memory_mode == "no-huge":
            # memfd-backed shared memory: vhost-user peers can map it. --no-shconf because
            # --in-memory is refused together with --no-huge in 22.11.
            argv += ["--no-huge", "-m", str(mem), "--no-shconf"]
        else:
            # Anonymous hugepages shared through memfds, one fd per segment list, so that
            # a virtio-user peer stays within vhost-user's 8 memory regions. Memory is
            # reserved at init and capped there: it never grows at runtime, because growth
            # runs virtio-user's memory callback (a SET_MEM_TABLE to its back-end) under
            # DPDK's memory hotplug lock, which deadlocks when the back-end is a vhost-user
            # port of this same process. Beyond the budget allocations fail with ENOMEM.
            argv += ["--in-memory", "--single-file-segments", f"--socket-mem={mem}",
                     f"--socket-limit={mem}"]
        if not self.pci:
            argv.append("--no-pci")
        if not self.telemetry:
            argv.append("--no-telemetry")
        argv += list(self.extra_args)
        return argv


def mempool_size(ports: int = 1, queues: int = 1, rx_ring_size: int = 1024,
                 tx_ring_size: int = 1024, burst_size: int = 32, lcores: int = 2,
                 cache_size: int = 256) -> int:
    """mbufs a pool needs for ``ports`` × ``queues`` with rings of the given sizes, a burst
    in flight per queue and direction, and per-lcore caches; rounded up to 2**k - 1
    (the size DPDK's ring-backed pools use best)."""
    for name, v in (("ports", ports), ("queues", queues), ("burst_size", burst_size),
                    ("lcores", lcores)):
        if v < 1:
            raise ConfigError(f"{name} must be >= 1")
    per_queue = rx_ring_size + tx_ring_size + 2 * burst_size
    need = ports * queues * per_queue + lcores * int(cache_size * 1.5) + 512
    size = 1
    while size - 1 < need:
        size <<= 1
    return size - 1


def resolve_memory_mode(config: EalConfig,
                        info: hugepages.HugepageInfo | None = None) -> tuple[str, str]:
    """('hugepages' | 'no-huge', reason) for ``config.memory_mode``. Raises ConfigError
    when hugepages are demanded but not there."""
    info = hugepages.read_info() if info is None else info
    need_mb = config.memory_mb or DEFAULT_MEMORY_MB
    free_mb = info.free_mb(2048)
    if config.memory_mode == "no-huge":
        return "no-huge", "requested"
    if free_mb >= need_mb:
        return "hugepages", f"{free_mb} MB of free 2 MB hugepages"
    if config.memory_mode == "hugepages":
        raise ConfigError(
            f"memory_mode='hugepages' needs {need_mb} MB of free 2 MB hugepages; {free_mb} MB "
            f"are free. Reserve more (as root: `dpdkvirtio hugepages reserve {need_mb // 2 + 64}`"
            ") or use memory_mode='no-huge'")
    return "no-huge", f"only {free_mb} MB of free 2 MB hugepages (need {need_mb})"
