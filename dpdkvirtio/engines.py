"""PMD threads and engines: Python sets the data plane up and watches it, C poll loops on
pinned lcores move the packets.

    import dpdkvirtio as dv
    dv.init()
    port = dv.VhostUserPort("/tmp/vhu0.sock")
    pmd = dv.Pmd(cpu=1)                              # a poll-mode lcore on CPU 1
    pmd.add_rxq(port, 0, "rxonly")                   # count and free what the guest sends
    pmd.add_generator(port, 0, dv.Stream(dv.udp_frame(64),
                      vars=[dv.FieldVar("ip.src", "127.0.0.1", "127.0.0.254")], pps=1e6))
    pmd.start()
    print(pmd.perf())                                # like ovs-appctl dpif-netdev/pmd-perf-show

Engines (testpmd's forwarding modes): ``rxonly`` (count and free), ``io`` (forward to
another port/queue), ``macswap`` (swap Ethernet addresses, send back), ``generator``
(templates + field engine + TSC pacing; ``Stream.replay`` / ``Stream.from_pcap`` replay
packets in a loop). Assignments, burst size and CPU placement change while the PMD
runs; a (port, rx queue) and a (port, tx queue) belong to one PMD at a time.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np

from . import eal as _eal_mod
from . import packets as _packets
from ._core import eal as _core_eal
from ._core import datapath as _datapath
from ._core import pmd as _pmd
from .config import available_cpus
from .errors import ConfigError, PmdError
from .placement import parse_rxq_affinity, place_rxqs  # noqa: F401  (re-exported)
from .stats import counters_array

log = logging.getLogger("dpdkvirtio.engines")

ACTIONS = ("rxonly", "io", "macswap")
PMD_MAX_BURST = _pmd.PMD_MAX_BURST      # the largest Pmd.burst_size (dv.MAX_BURST is a Burst's capacity)
WIRE_OVERHEAD = 24                       # FCS 4 + preamble 8 + inter-frame gap 12 bytes


def _pmd_dtype() -> np.dtype:
    size, fields, hist_off, bins = _datapath.pmd_stats_layout()
    names = [n for n, _ in fields] + ["hist"]
    formats = ["<u8"] * len(fields) + [("<u8", (bins,))]
    offsets = [o for _, o in fields] + [hist_off]
    dt = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})
    if dt.itemsize != size:
        raise ImportError("PMD counter dtype does not match the C struct")
    return dt


def _poll_dtype() -> np.dtype:
    size, fields = _datapath.poll_stats_layout()
    return np.dtype({"names": [n for n, _ in fields], "formats": ["<u8"] * len(fields),
                     "offsets": [o for _, o in fields], "itemsize": size})


PMD_STATS_DTYPE = _pmd_dtype()
POLL_STATS_DTYPE = _poll_dtype()


# ------------------------------------------------------------------------- field engine

# Fields a FieldVar may name: (offset, width) of the varied part, value parser.
def _ip(v) -> int:
    return int(ipaddress.IPv4Address(v)) if isinstance(v, str) else int(v)


def _mac_low(v) -> int:
    if isinstance(v, str):
        return int.from_bytes(_packets.mac_bytes(v)[2:], "big")
    return int(v)


_FIELDS = {
    "ip.src": (_packets.OFFSETS["ip.src"], 4, _ip),
    "ip.dst": (_packets.OFFSETS["ip.dst"], 4, _ip),
    "ip.id": (_packets.OFFSETS["ip.id"], 2, int),
    "ip.ttl": (_packets.OFFSETS["ip.ttl"], 1, int),
    "udp.sport": (_packets.OFFSETS["udp.sport"], 2, int),
    "udp.dport": (_packets.OFFSETS["udp.dport"], 2, int),
    "eth.src": (_packets.OFFSETS["eth.src"] + 2, 4, _mac_low),   # low 4 bytes of the MAC
    "eth.dst": (_packets.OFFSETS["eth.dst"] + 2, 4, _mac_low),
}
_IP_HDR = (14, 34)
_UDP_PSEUDO = (26, 34)         # source and destination addresses


class FieldVar:
    """A header field the generator changes for every packet (TRex's STLVmFlowVar +
    STLVmWrFlowVar): ``op`` is "inc", "dec" or "random" over ``[min, max]`` in ``step``s.

    ``field`` is one of ip.src, ip.dst, ip.id, ip.ttl, udp.sport, udp.dport, eth.src,
    eth.dst (the low 4 bytes of a MAC), or give ``offset`` and ``size`` (1, 2, 4) for
    any other place. Addresses may be given as strings. Checksums are fixed up.
    """

    def __init__(self, field: str | None = None, min=None, max=None, *, op: str = "inc",
                 step: int = 1, start=None, offset: int | None = None, size: int | None = None):
        if field is not None:
            if field not in _FIELDS:
                raise ConfigError(f"unknown field {field!r}; known: {', '.join(_FIELDS)} "
                                  "(or give offset= and size=)")
            offset, size, parse = _FIELDS[field]
        else:
            if offset is None or size is None:
                raise ConfigError("give a field name, or offset= and size=")
            parse = int
        if size not in (1, 2, 4):
            raise ConfigError("size must be 1, 2 or 4 bytes")
        if op not in ("inc", "dec", "random"):
            raise ConfigError(f"op must be inc, dec or random, got {op!r}")
        if min is None or max is None:
            raise ConfigError("give min and max")
        lo, hi = parse(min), parse(max)
        if not 0 <= lo <= hi < 1 << (8 * size):
            raise ConfigError(f"range {min}..{max} is empty or does not fit {size} byte(s)")
        if not isinstance(step, int) or step < 1:
            raise ConfigError("step must be a positive integer")
        if offset < 0 or offset + size > 65535:
            raise ConfigError("offset out of range")
        self.field = field
        self.offset, self.size, self.op = offset, size, op
        self.min, self.max, self.step = lo, hi, step
        self.start = parse(start) if start is not None else (lo if op != "dec" else hi)
        if not lo <= self.start <= hi:
            raise ConfigError("start must lie within [min, max]")
        if _packets.OFFSETS["ip.csum"] <= offset + size - 1 and offset <= _packets.OFFSETS["ip.csum"] + 1 \
                or _packets.OFFSETS["udp.csum"] <= offset + size - 1 and offset <= _packets.OFFSETS["udp.csum"] + 1:
            raise ConfigError("a field variable must not overlap a checksum field")

    def values(self, n: int) -> list[int]:
        """The first ``n`` values an inc/dec variable produces (for checking receivers)."""
        out, cur = [], self.start
        for _ in range(n):
            out.append(cur)
            if self.op == "inc":
                cur = self.min if cur > self.max or self.max - cur < self.step else cur + self.step
            elif self.op == "dec":
                cur = self.max if cur < self.min or cur - self.min < self.step else cur - self.step
            else:
                raise ValueError("random variables have no fixed sequence")
        return out

    def _overlaps(self, span) -> bool:
        return self.offset < span[1] and self.offset + self.size > span[0]

    def c_tuple(self, udp_len_end: int):
        in_ip = self._overlaps(_IP_HDR)
        in_udp = self._overlaps(_UDP_PSEUDO) or self._overlaps((34, udp_len_end))
        return (self.offset, self.size, self.op, self.min, self.max, self.step, self.start,
                int(in_ip), int(in_udp))

    def __repr__(self):
        name = self.field or f"offset {self.offset}/{self.size}"
        return f"FieldVar({name}, {self.min}..{self.max}, {self.op}, step={self.step})"


@dataclass
class SizeVar:
    """Vary the frame size over ``[min, max]`` (inc, dec or random; IPv4/UDP lengths and
    checksums are rewritten). Templates are padded to ``max``."""
    min: int
    max: int
    op: str = "inc"
    step: int = 1


def _as_frames(packets) -> list[bytes]:
    if isinstance(packets, (bytes, bytearray, memoryview)):
        return [bytes(packets)]
    if isinstance(packets, np.ndarray):
        if packets.dtype != np.uint8:
            raise ConfigError("packet arrays must be uint8")
        if packets.ndim == 1:
            return [packets.tobytes()]
        if packets.ndim == 2:
            return [row.tobytes() for row in packets]
        raise ConfigError("packet arrays must be 1-D (one frame) or 2-D (one frame per row)")
    if hasattr(packets, "__bytes__") and not isinstance(packets, (list, tuple)):
        return [bytes(packets)]                          # e.g. a scapy packet
    try:
        return [bytes(p) for p in packets]
    except TypeError:
        raise ConfigError("packets must be bytes, a list of bytes, a uint8 numpy array or "
                          "scapy packets") from None


def _is_ipv4_udp(frame: bytes) -> bool:
    return (len(frame) >= 42 and frame[12:14] == b"\x08\x00" and frame[14] == 0x45
            and frame[23] == 17)


class Stream:
    """What a generator sends (TRex's STLStream in spirit).

    Parameters
    ----------
    packets : bytes | list of bytes | numpy uint8 array (1-D, or 2-D one frame per row) |
              scapy packet(s)
        Templates, sent round-robin.
    vars : list[FieldVar]
        Fields varied per packet (at most 8).
    size : SizeVar, optional
    pps, bps, percent (+ line_rate_bps) :
        Rate: packets/s, frame bits/s (without FCS), or a percentage of ``line_rate_bps``
        counted on the wire (frame + 24 bytes). None of them: as fast as possible.
    count : int
        Stop after this many packets (0: no limit).
    duration_s : float
        Stop after this long (0: no limit).
    mode : "continuous" | "single_burst" | "multi_burst"
        single_burst sends ``count`` packets; multi_burst sends ``bursts`` bursts of
        ``burst_packets`` with ``ibg_s`` seconds between them.
    fix_checksums : bool
        Keep IPv4 and UDP checksums right while fields change (IPv4/UDP templates).
    seed : int
        For ``random`` variables.
    """

    def __init__(self, packets, *, vars=(), size: SizeVar | None = None, pps: float | None = None,
                 bps: float | None = None, percent: float | None = None,
                 line_rate_bps: float | None = None, count: int = 0, duration_s: float = 0.0,
                 mode: str = "continuous", burst_packets: int = 0, bursts: int = 0,
                 ibg_s: float = 0.0, fix_checksums: bool = True, seed: int = 1):
        frames = _as_frames(packets)
        if not frames:
            raise ConfigError("a stream needs at least one packet")
        if any(len(f) < 14 for f in frames):
            raise ConfigError("every packet needs at least an Ethernet header (14 bytes)")
        self.vars = list(vars)
        if len(self.vars) > _pmd.MAX_VARS:
            raise ConfigError(f"at most {_pmd.MAX_VARS} field variables per stream")
        for v in self.vars:
            if not isinstance(v, FieldVar):
                raise ConfigError("vars must be FieldVar objects")
            for f in frames:
                if v.offset + v.size > len(f):
                    raise ConfigError(f"{v!r} lies beyond the end of a {len(f)}-byte template")
        self.size = size
        if size is not None:
            if not isinstance(size, SizeVar) or not 42 <= size.min <= size.max <= 9000:
                raise ConfigError("size must be a SizeVar with 42 <= min <= max <= 9000")
            if size.op not in ("inc", "dec", "random") or size.step < 1:
                raise ConfigError("SizeVar op must be inc, dec or random and step >= 1")
            if not all(_is_ipv4_udp(f) for f in frames):
                raise ConfigError("a SizeVar needs Ethernet/IPv4/UDP templates")
            frames = [f.ljust(size.max, b"\0") for f in frames]
        self.fix_checksums = bool(fix_checksums)
        if self.fix_checksums:
            frames = [self._with_checksums(f) for f in frames]
        self.frames = frames
        rates = [r for r in (pps, bps, percent) if r is not None]
        if len(rates) > 1:
            raise ConfigError("give one of pps, bps or percent")
        for name, r in (("pps", pps), ("bps", bps), ("percent", percent)):
            if r is not None and not r > 0:
                raise ConfigError(f"{name} must be > 0, got {r!r}")
        if percent is not None and not line_rate_bps:
            raise ConfigError("percent needs line_rate_bps (e.g. 10e9 for 10 Gb/s)")
        if percent is not None and percent > 100:
            raise ConfigError("percent must be <= 100")
        self._rate_spec = ("pps", pps) if pps is not None else ("bps", bps) if bps is not None \
            else ("percent", percent) if percent is not None else (None, None)
        self.line_rate_bps = line_rate_bps
        if mode not in ("continuous", "single_burst", "multi_burst"):
            raise ConfigError("mode must be continuous, single_burst or multi_burst")
        if not isinstance(count, int) or count < 0:
            raise ConfigError("count must be a non-negative integer")
        if duration_s < 0:
            raise ConfigError("duration_s must be >= 0")
        if mode == "single_burst" and count < 1:
            raise ConfigError("single_burst needs count >= 1")
        if mode == "multi_burst":
            if burst_packets < 1 or bursts < 1 or ibg_s < 0:
                raise ConfigError("multi_burst needs burst_packets >= 1, bursts >= 1, ibg_s >= 0")
        self.mode, self.count, self.duration_s = mode, count, duration_s
        self.burst_packets, self.bursts, self.ibg_s = burst_packets, bursts, ibg_s
        self.seed = seed

    @staticmethod
    def _with_checksums(frame: bytes) -> bytes:
        """The template with IPv4 (and non-zero UDP) checksums made right, so that the C
        engine can update them incrementally."""
        if not _is_ipv4_udp(frame):
            return frame
        f = bytearray(frame)
        f[24:26] = b"\0\0"
        f[24:26] = struct.pack("!H", _packets.inet_checksum(bytes(f[14:34])))
        ulen = struct.unpack_from("!H", f, 38)[0]
        if f[40:42] != b"\0\0" and 8 <= ulen <= len(f) - 34:
            f[40:42] = b"\0\0"
            pseudo = bytes(f[26:34]) + struct.pack("!BBH", 0, 17, ulen)
            c = _packets.inet_checksum(pseudo + bytes(f[34:34 + ulen])) or 0xFFFF
            f[40:42] = struct.pack("!H", c)
        return bytes(f)

    @property
    def mean_size(self) -> float:
        if self.size is not None:
            return (self.size.min + self.size.max) / 2
        return sum(len(f) for f in self.frames) / len(self.frames)

    def pps_for(self, spec=None) -> float:
        """The rate in packets per second (0: unlimited)."""
        kind, value = spec or self._rate_spec
        if kind is None:
            return 0.0
        if kind == "pps":
            return float(value)
        if kind == "bps":
            return float(value) / (self.mean_size * 8)
        return self.line_rate_bps * value / 100.0 / ((self.mean_size + WIRE_OVERHEAD) * 8)

    def generator_args(self, mempool):
        udp_end = 34
        if self.frames and _is_ipv4_udp(self.frames[0]):
            udp_end = 34 + struct.unpack_from("!H", self.frames[0], 38)[0]
        count = self.count
        burst_packets, bursts, ibg = 0, 0, 0.0
        if self.mode == "multi_burst":
            burst_packets, bursts, ibg = self.burst_packets, self.bursts, self.ibg_s
        fixable = all(_is_ipv4_udp(f) for f in self.frames)
        return dict(
            mempool=mempool, templates=self.frames,
            variables=[v.c_tuple(udp_end) for v in self.vars],
            size_var=(self.size.op, self.size.min, self.size.max, self.size.step) if self.size else None,
            fix_ip=self.fix_checksums and fixable, fix_udp=self.fix_checksums and fixable,
            pps=self.pps_for(), count=count, duration_s=self.duration_s,
            burst_packets=burst_packets, bursts=bursts, ibg_s=ibg, seed=self.seed)

    # -- replay ------------------------------------------------------------------------
    @classmethod
    def replay(cls, packets, lengths=None, *, loops: int = 0, **kw) -> "Stream":
        """Send the given packets in order, ``loops`` times (0: forever). ``packets`` as
        for Stream, or a 2-D uint8 array with per-row ``lengths``."""
        if isinstance(packets, np.ndarray) and packets.ndim == 2 and lengths is not None:
            lengths = np.asarray(lengths)
            frames = [packets[i, :int(lengths[i])].tobytes() for i in range(len(packets))]
        else:
            frames = _as_frames(packets)
        count = loops * len(frames) if loops else 0
        kw.setdefault("fix_checksums", False)
        return cls(frames, count=count, **kw)

    @classmethod
    def from_pcap(cls, path, *, loops: int = 0, limit: int | None = None, **kw) -> "Stream":
        """Replay the Ethernet frames of a pcap file (classic pcap, any endianness)."""
        return cls.replay(read_pcap(path, limit=limit), loops=loops, **kw)


def read_pcap(path, limit: int | None = None) -> list[bytes]:
    """Frames of a classic pcap file (LINKTYPE_ETHERNET)."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            raise ConfigError(f"{path}: not a pcap file (too short)")
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            endian = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = ">"
        else:
            raise ConfigError(f"{path}: not a classic pcap file"
                              + (" (pcapng is not supported; convert it with editcap -F pcap)"
                                 if magic == b"\x0a\x0d\x0d\x0a" else ""))
        linktype = struct.unpack(endian + "I", head[20:24])[0]
        if linktype != 1:
            raise ConfigError(f"{path}: link type {linktype} is not Ethernet")
        snaplen = struct.unpack(endian + "I", head[16:20])[0]
        frames = []
        while limit is None or len(frames) < limit:
            rec = f.read(16)
            if not rec:
                break
            if len(rec) < 16:
                raise ConfigError(f"{path}: truncated: the record header after packet "
                                  f"{len(frames)} is cut short")
            _, _, incl, _ = struct.unpack(endian + "IIII", rec)
            if incl > max(snaplen, 65535):
                raise ConfigError(f"{path}: corrupt: packet {len(frames)} claims {incl} bytes "
                                  f"(snap length {snaplen})")
            data = f.read(incl)
            if len(data) < incl:
                raise ConfigError(f"{path}: truncated: packet {len(frames)} has {len(data)} of "
                                  f"its {incl} bytes")
            frames.append(data)
    if not frames:
        raise ConfigError(f"{path}: no packets")
    return frames


def write_pcap(path, frames) -> None:
    """Write frames to a classic pcap file (microsecond timestamps, Ethernet)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        t = time.time()
        for i, fr in enumerate(frames):
            fr = bytes(fr)
            f.write(struct.pack("<IIII", int(t), i % 1000000, len(fr), len(fr)))
            f.write(fr)


# ------------------------------------------------------------------------------ PMDs

class _Owners:
    """Which PMD owns each (port, rx queue) and (port, tx queue)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.rx: dict = {}
        self.tx: dict = {}

    @staticmethod
    def key(port, queue):
        return (id(port), queue)


_owners = _Owners()


@dataclass
class Assignment:
    action: str
    port: object
    queue: int
    out_port: object = None
    out_queue: int = 0
    generator: object = None
    stream: Stream | None = None
    row: int = 0

    def describe(self) -> dict:
        d = {"action": self.action, "port": self.port.name, "queue": self.queue}
        if self.out_port is not None:
            d.update(out_port=self.out_port.name, out_queue=self.out_queue)
        return d


class GeneratorHandle:
    """A running generator: rate changes, pause/resume, progress."""

    def __init__(self, pmd, assignment):
        self._pmd = weakref.ref(pmd)
        self._a = assignment
        self.stream = assignment.stream

    @property
    def port(self):
        return self._a.port

    @property
    def queue(self):
        return self._a.queue

    @property
    def built(self) -> int:
        """Packets built and handed to the port (sent, or dropped and counted there)."""
        return self._a.generator.built

    @property
    def nombuf(self) -> int:
        return self._a.generator.nombuf

    @property
    def done(self) -> bool:
        return self._a.generator.done

    @property
    def pps(self) -> float:
        return self._a.generator.pps

    def set_rate(self, pps: float | None = None, *, bps: float | None = None,
                 percent: float | None = None) -> float:
        """Change the rate while running (one of pps, bps, percent; all None: unlimited).
        Returns the new rate in packets per second."""
        given = [(k, v) for k, v in (("pps", pps), ("bps", bps), ("percent", percent)) if v is not None]
        if len(given) > 1:
            raise ConfigError("give one of pps, bps or percent")
        for k, v in given:
            if not v > 0:
                raise ConfigError(f"{k} must be > 0, got {v!r}")
        if given and given[0][0] == "percent" and not self.stream.line_rate_bps:
            raise ConfigError("percent needs the stream's line_rate_bps")
        rate = self.stream.pps_for(given[0] if given else (None, None))
        self._a.generator.set_rate(rate)
        return rate

    def pause(self, timeout_s: float = 5.0):
        """Stop building packets. Returns once the PMD has finished the poll round it was
        in, so ``built`` stays final until resume(). Raises PmdError when a running PMD
        did not complete a round within ``timeout_s``."""
        self._a.generator.paused = True
        pmd = self._pmd()
        if pmd is not None:
            pmd._wait_rounds(2, timeout_s)

    def resume(self):
        self._a.generator.paused = False

    def wait_done(self, timeout_s: float | None = None) -> bool:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.done:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


def _free_worker_lcores() -> list[int]:
    busy = {p.lcore for p in _eal_mod.current().objects(Pmd) if not p.closed}
    return [lc for lc in _pmd.worker_lcores() if lc not in busy]


class Pmd:
    """A PMD thread: a worker lcore running a C poll loop over its assignments.

    Parameters
    ----------
    cpu : int, optional
        Pin the PMD to this CPU (a free worker lcore is chosen and moved if needed).
    lcore : int, optional
        Use this worker lcore (as mapped at EAL init).
    burst_size : int
        Packets per rx poll / generator burst (1..64, default 32), changeable later.

    Raises
    ------
    PmdError
        No free worker lcore, the main lcore or an unknown lcore asked for.
    ConfigError
        A CPU this process may not use.
    """

    _close_rank = 0                   # closed before ports at EAL exit

    def __init__(self, cpu: int | None = None, *, lcore: int | None = None, burst_size: int = 32,
                 max_assignments: int = 2048):
        eal = _eal_mod.ensure()
        if cpu is not None:
            if cpu not in available_cpus():
                raise ConfigError(f"CPU {cpu} is not available to this process "
                                  f"(available: {available_cpus()})")
        with _owners.lock:
            if lcore is None:
                free = _free_worker_lcores()
                if not free:
                    raise PmdError(None, "no free worker lcore for another PMD (workers: "
                                   f"{_pmd.worker_lcores()})",
                                   None, "Close a PMD, or initialise DPDK with more worker lcores "
                                   "(EalConfig(workers={lcore: cpu, ...}))")
                if cpu is not None:
                    exact = [lc for lc in free if _core_eal.lcore_cpus(lc) == [cpu]]
                    lcore = exact[0] if exact else free[0]
                else:
                    lcore = free[0]
            elif lcore in {p.lcore for p in eal.objects(Pmd) if not p.closed}:
                raise PmdError(None, f"lcore {lcore} already runs a PMD")
            self._t = _pmd.PmdThread(lcore, burst_size, max_assignments)
        self.lcore = lcore
        self._assignments: list[Assignment] = []
        self._rows_free = list(range(max_assignments))
        self._lock = threading.RLock()
        self._closed = False
        self._cpu = _core_eal.lcore_cpus(lcore)[0] if len(_core_eal.lcore_cpus(lcore)) == 1 else None
        self.counters = counters_array(self._t.stats, PMD_STATS_DTYPE)
        self.poll_counters = counters_array(self._t.poll_stats, POLL_STATS_DTYPE)
        if cpu is not None and cpu != self._cpu:
            self._t.request_cpu(cpu)
            self._cpu = cpu
        eal.track(self)

    # -- state --------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def running(self) -> bool:
        return self._t.running

    @property
    def cpu(self) -> int | None:
        """The CPU this PMD is pinned to."""
        return self._cpu

    @property
    def burst_size(self) -> int:
        return self._t.burst_size

    @burst_size.setter
    def burst_size(self, value: int):
        self._t.burst_size = value

    def _check_open(self):
        if self._closed:
            raise PmdError(None, f"PMD on lcore {self.lcore} is closed")

    def __repr__(self):
        state = "closed" if self._closed else ("running" if self.running else "stopped")
        return f"<Pmd lcore={self.lcore} cpu={self._cpu} {state} assignments={len(self._assignments)}>"

    def _wait_rounds(self, rounds: int, timeout_s: float):
        """Return after the running poll loop completed ``rounds`` more rounds."""
        if not self.running:
            return
        iterations = self.counters["iterations"]          # a live view
        target = int(iterations[0]) + rounds
        deadline = time.monotonic() + timeout_s
        while int(iterations[0]) < target and self.running:
            if time.monotonic() > deadline:
                raise PmdError(None, f"PMD on lcore {self.lcore} did not complete a poll round "
                               f"within {timeout_s:g} s")
            time.sleep(0.0002)

    # -- assignments -------------------------------------------------------------------
    def _publish(self):
        self._t.set_plan([(a.action, a.port, a.queue, a.out_port, a.out_queue, a.generator, a.row)
                          for a in self._assignments])

    def _claim(self, a: Assignment):
        with _owners.lock:
            if a.action != "generator":
                k = _owners.key(a.port, a.queue)
                owner = _owners.rx.get(k)
                if owner is not None:
                    raise ConfigError(f"rx queue {a.queue} of port {a.port.name!r} is already "
                                      f"polled by the PMD on lcore {owner.lcore}; remove it there "
                                      "first (or use move_rxq)")
            tx_port = a.out_port if a.action in ("io", "macswap") else a.port if a.action == "generator" else None
            if tx_port is not None:
                k = _owners.key(tx_port, a.out_queue if a.action in ("io", "macswap") else a.queue)
                owner = _owners.tx.get(k)
                if owner is not None and owner is not self:
                    raise ConfigError(f"tx queue {k[1]} of port {tx_port.name!r} is already used by "
                                      f"the PMD on lcore {owner.lcore}; give another out_queue")
            if a.action != "generator":
                _owners.rx[_owners.key(a.port, a.queue)] = self
            if tx_port is not None:
                _owners.tx[_tx_key(a)] = self
            for p in {id(a.port): a.port, id(a.out_port): a.out_port}.values():
                if p is not None:
                    p._pmd_users += 1

    def _release(self, a: Assignment):
        with _owners.lock:
            if a.action != "generator":
                _owners.rx.pop(_owners.key(a.port, a.queue), None)
            k = _tx_key(a)
            if k is not None and not any(_tx_key(b) == k for b in self._assignments if b is not a):
                _owners.tx.pop(k, None)
            for p in {id(a.port): a.port, id(a.out_port): a.out_port}.values():
                if p is not None:
                    p._pmd_users -= 1
        self._rows_free.append(a.row)

    def _add(self, a: Assignment):
        self._check_open()
        if not hasattr(a.port, "_pmd_users"):
            raise ConfigError("ports must be dpdkvirtio ports")
        if a.port.closed:
            raise ConfigError(f"port {a.port.name!r} is closed")
        if not isinstance(a.queue, int) or not 0 <= a.queue < a.port.n_queues:
            raise ConfigError(f"queue {a.queue!r} out of range: port {a.port.name!r} has "
                              f"{a.port.n_queues} queue(s)")
        if a.out_port is not None:
            if a.out_port.closed:
                raise ConfigError(f"port {a.out_port.name!r} is closed")
            if not isinstance(a.out_queue, int) or not 0 <= a.out_queue < a.out_port.n_queues:
                raise ConfigError(f"out_queue {a.out_queue!r} out of range: port "
                                  f"{a.out_port.name!r} has {a.out_port.n_queues} queue(s)")
        with self._lock:
            if not self._rows_free:
                raise PmdError(None, f"the PMD on lcore {self.lcore} has no room for more "
                               "assignments")
            a.row = self._rows_free.pop(0)
            self._claim(a)
            self._assignments.append(a)
            # the poll counters row starts from zero for the new assignment
            try:
                self._publish()
            except BaseException:
                self._assignments.remove(a)
                self._release(a)
                raise
        return a

    def add_rxq(self, port, queue: int = 0, action: str = "rxonly", out_port=None,
                out_queue: int | None = None) -> Assignment:
        """Poll rx queue ``queue`` of ``port``: ``rxonly`` counts and frees; ``io`` forwards
        to (``out_port``, ``out_queue``); ``macswap`` swaps the Ethernet addresses and sends
        to (``out_port``, ``out_queue``), by default back out of the same port and queue."""
        if action not in ACTIONS:
            raise ConfigError(f"action must be one of {ACTIONS}, got {action!r}")
        if action == "io" and out_port is None:
            raise ConfigError("the io engine needs out_port")
        if action == "macswap" and out_port is None:
            out_port = port
        if action == "rxonly" and out_port is not None:
            raise ConfigError("rxonly sends nothing: no out_port")
        if out_queue is None:
            out_queue = queue if out_port is not None and queue < out_port.n_queues else 0
        return self._add(Assignment(action, port, queue, out_port, out_queue))

    def add_generator(self, port, queue: int, stream: Stream) -> GeneratorHandle:
        """Generate ``stream`` into tx queue ``queue`` of ``port``; packets come from the
        port's mempool."""
        if not isinstance(stream, Stream):
            raise ConfigError("add_generator needs a Stream")
        self._check_open()
        gen = _pmd.Generator(**stream.generator_args(port.mempool))
        a = self._add(Assignment("generator", port, queue, None, 0, gen, stream))
        return GeneratorHandle(self, a)

    def remove(self, port, queue: int | None = None, *, generators: bool = True) -> int:
        """Stop polling ``port`` (all its queues, or ``queue``), including generators into
        it and forwards out of it. Returns how many assignments were removed. Returns once
        the PMD no longer touches them."""
        with self._lock:
            gone = [a for a in self._assignments
                    if (a.port is port and (queue is None or a.queue == queue)
                        and (generators or a.action != "generator"))
                    or (a.out_port is port and queue is None)]
            if not gone:
                return 0
            self._assignments = [a for a in self._assignments if a not in gone]
            self._publish()
            for a in gone:
                self._release(a)
            return len(gone)

    def remove_generator(self, handle: GeneratorHandle) -> None:
        with self._lock:
            if handle._a not in self._assignments:
                return
            self._assignments.remove(handle._a)
            self._publish()
            self._release(handle._a)

    def assignments(self) -> list[Assignment]:
        with self._lock:
            return list(self._assignments)

    def move_rxq(self, port, queue: int, to: "Pmd") -> Assignment:
        """Move the assignment polling (port, queue) to PMD ``to`` while traffic runs:
        removed here (after this PMD acknowledges) then added there; packets wait in the
        ring meanwhile, none is lost."""
        with self._lock:
            found = [a for a in self._assignments if a.port is port and a.queue == queue
                     and a.action != "generator"]
            if not found:
                raise ConfigError(f"rx queue {queue} of {port.name!r} is not on lcore {self.lcore}")
            a = found[0]
            self._assignments.remove(a)
            self._publish()
            self._release(a)
        return to._add(Assignment(a.action, a.port, a.queue, a.out_port, a.out_queue))

    # -- run ----------------------------------------------------------------------------
    def start(self):
        self._check_open()
        self._t.start()

    def stop(self):
        """Stop polling (assignments stay; start() resumes)."""
        if not self._closed:
            self._t.stop()

    def move_to_cpu(self, cpu: int) -> None:
        """Re-pin this PMD's thread to ``cpu`` (while running: between two poll rounds)."""
        self._check_open()
        if cpu not in available_cpus():
            raise ConfigError(f"CPU {cpu} is not available to this process "
                              f"(available: {available_cpus()})")
        self._t.request_cpu(cpu)
        self._cpu = cpu

    def close(self):
        """Stop and drop every assignment (idempotent)."""
        if self._closed:
            return
        try:
            self._t.stop()
        finally:
            with self._lock:
                gone, self._assignments = self._assignments, []
                try:
                    self._publish()
                except Exception:  # noqa: BLE001 - EAL may be gone at exit
                    pass
                for a in gone:
                    self._release(a)
            self._closed = True
            try:
                _eal_mod.current().untrack(self)
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- observation -------------------------------------------------------------------
    def perf(self) -> dict:
        """A pmd-perf-show style summary: iterations, busy %, cycles per packet, packets per
        poll, the burst-size histogram."""
        c = self.counters[0]
        busy, idle = int(c["busy_cycles"]), int(c["idle_cycles"])
        pkts = int(c["rx_packets"]) + int(c["tx_packets"])
        hist = c["hist"].astype(np.int64)
        polls = int(hist.sum())
        moved = int((hist * np.arange(len(hist))).sum())
        return {
            "lcore": self.lcore, "cpu": self._cpu, "running": self.running,
            "iterations": int(c["iterations"]), "busy_cycles": busy, "idle_cycles": idle,
            "busy_pct": 100.0 * busy / (busy + idle) if busy + idle else 0.0,
            "rx_packets": int(c["rx_packets"]), "tx_packets": int(c["tx_packets"]),
            "cycles_per_packet": busy / pkts if pkts else 0.0,
            "packets_per_poll": moved / polls if polls else 0.0,
            "empty_iterations": int(c["empty_iterations"]),
            "burst_histogram": hist.tolist(),
            "tsc_hz": _pmd.tsc_hz(),
        }

    def rxq_show(self) -> list[dict]:
        """Per assignment: port, queue, action, packets and share of this PMD's cycles
        (like ovs-appctl dpif-netdev/pmd-rxq-show)."""
        with self._lock:
            rows = [(a, self.poll_counters[a.row]) for a in self._assignments]
        total = sum(int(r["cycles"]) for _, r in rows) or 1
        return [{**a.describe(), "packets": int(r["packets"]), "polls": int(r["polls"]),
                 "usage_pct": 100.0 * int(r["cycles"]) / total} for a, r in rows]


def _tx_key(a: Assignment):
    if a.action in ("io", "macswap"):
        return _owners.key(a.out_port, a.out_queue)
    if a.action == "generator":
        return _owners.key(a.port, a.queue)
    return None


# --------------------------------------------------------------------- queue placement
# (the pure part, parse_rxq_affinity and place_rxqs, lives in placement.py)

def assign_rxqs(port, pmds: list[Pmd], affinity: str | dict | None = None, action: str = "rxonly",
                out_port=None) -> list[Assignment]:
    """Spread the rx queues of ``port`` over ``pmds``: round-robin by default, or as an OVS
    ``pmd-rxq-affinity`` string / {queue: cpu} dict says (CPUs of the given PMDs). As in
    OVS, a PMD that gets pinned queues is isolated: the other queues go round-robin to the
    PMDs without pinned queues."""
    if not pmds:
        raise ConfigError("no PMDs to assign queues to")
    by_cpu = {p.cpu: p for p in pmds}
    amap = {}
    if affinity is not None:
        amap = parse_rxq_affinity(affinity) if isinstance(affinity, str) else dict(affinity)
    load = {p.cpu: sum(1 for a in p.assignments() if a.action != "generator") for p in pmds}
    placement = place_rxqs(port.n_queues, amap, load, set())
    out = []
    for q in sorted(placement):
        kw = {}
        if out_port is not None:
            kw = {"out_port": out_port, "out_queue": q if q < out_port.n_queues else 0}
        out.append(by_cpu[placement[q]].add_rxq(port, q, action, **kw))
    return out
