"""What a generator sends (pure Python, no DPDK): template frames, field variables
(TRex's flow variables: inc/dec/random over MAC/IPv4/UDP fields), packet-size variables,
rates (pps, bps, percent of a line rate) and limits, replay of numpy arrays and pcap
files. Pmd.add_generator turns a Stream into the C generator state."""

from __future__ import annotations

import ipaddress
import re
import struct
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import marker as _marker
from . import packets as _packets
from . import pcapfile as _pcapfile
from .errors import ConfigError

WIRE_OVERHEAD = 24                       # FCS 4 + preamble 8 + inter-frame gap 12 bytes
MAX_VARS = 8                             # field variables per stream (DV_MAX_VARS, checked)



# Fields a FieldVar may name: (offset, width) of the varied part, value parser.
def _ip(v) -> int:
    return int(ipaddress.IPv4Address(v)) if isinstance(v, str) else int(v)


def _mac_low(v) -> int:
    if isinstance(v, str):
        return int.from_bytes(_packets.mac_bytes(v)[2:], "big")
    return int(v)


_FIELDS: dict[str, tuple[int, int, Callable[[Any], int]]] = {
    "ip.src": (_packets.OFFSETS["ip.src"], 4, _ip),
    "ip.dst": (_packets.OFFSETS["ip.dst"], 4, _ip),
    "ip.id": (_packets.OFFSETS["ip.id"], 2, int),
    "ip.ttl": (_packets.OFFSETS["ip.ttl"], 1, int),
    "udp.sport": (_packets.OFFSETS["udp.sport"], 2, int),
    "udp.dport": (_packets.OFFSETS["udp.dport"], 2, int),
    "eth.src": (_packets.OFFSETS["eth.src"] + 2, 4, _mac_low),   # low 4 bytes of the MAC
    "eth.dst": (_packets.OFFSETS["eth.dst"] + 2, 4, _mac_low),
}
# Rate strings, TRex's style: "10mpps", "1.5 Mpps", "5gbps", "50%". The one parser.
_RATE_UNITS = {"pps": ("pps", 1.0), "kpps": ("pps", 1e3), "mpps": ("pps", 1e6),
               "gpps": ("pps", 1e9), "bps": ("bps", 1.0), "kbps": ("bps", 1e3),
               "mbps": ("bps", 1e6), "gbps": ("bps", 1e9), "tbps": ("bps", 1e12),
               "%": ("percent", 1.0)}
_RATE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z%]*)\s*$")


def parse_rate(rate) -> tuple[str, float]:
    """A rate as ("pps" | "bps" | "percent", value): a number is packets per second; a
    string is a number and a unit — pps, kpps, mpps, gpps; bps, kbps, mbps, gbps, tbps
    (frame bits, without FCS); % (of a line rate) — in any case, spaces allowed
    ("10mpps", "1.5 Mpps", "5gbps", "50%"). Raises ConfigError naming what is wrong."""
    if isinstance(rate, bool):
        raise ConfigError(f"a rate must be a number or a string like '10mpps', got {rate!r}")
    if isinstance(rate, (int, float)):
        kind, value = "pps", float(rate)
    elif isinstance(rate, str):
        m = _RATE_RE.match(rate)
        unit = m.group(2).lower() if m else ""
        if m is None or unit not in _RATE_UNITS:
            raise ConfigError(f"rate {rate!r} is not a number and a unit (pps, kpps, mpps, "
                              "gpps, bps, kbps, mbps, gbps, tbps or %), e.g. '10mpps', "
                              "'5gbps', '50%'")
        kind, scale = _RATE_UNITS[unit]
        value = float(m.group(1)) * scale
    else:
        raise ConfigError(f"a rate must be a number or a string like '10mpps', got {rate!r}")
    if not value > 0:
        raise ConfigError(f"rate must be > 0, got {rate!r}")
    if kind == "percent" and value > 100:
        raise ConfigError(f"rate {rate!r}: a percentage must be <= 100")
    return kind, value


# scapy's names for the same fields (layer.field), where the offset is unambiguous:
# Ether/IP/UDP without options or VLAN tags, as the generator's templates are
SCAPY_NAMES = {"IP.src": "ip.src", "IP.dst": "ip.dst", "IP.id": "ip.id", "IP.ttl": "ip.ttl",
               "UDP.sport": "udp.sport", "UDP.dport": "udp.dport",
               "Ether.src": "eth.src", "Ether.dst": "eth.dst"}
_IP_HDR = (14, 34)
_UDP_PSEUDO = (26, 34)         # source and destination addresses


class FieldVar:
    """A header field the generator changes for every packet (TRex's STLVmFlowVar +
    STLVmWrFlowVar): ``op`` is "inc", "dec" or "random" over ``[min, max]`` in steps of ``step``.

    ``field`` is one of ip.src, ip.dst, ip.id, ip.ttl, udp.sport, udp.dport, eth.src,
    eth.dst (the low 4 bytes of a MAC) — or scapy's name for it (``IP.src``,
    ``UDP.sport``, ``Ether.dst``...) — or give ``offset`` and ``size`` (1, 2, 4) for
    any other place. Addresses may be given as strings. Checksums are fixed up.
    """

    def __init__(self, field: str | None = None, min=None, max=None, *, op: str = "inc",
                 step: int = 1, start=None, offset: int | None = None, size: int | None = None):
        if field is not None:
            field = SCAPY_NAMES.get(field, field)
            if field not in _FIELDS:
                raise ConfigError(f"unknown field {field!r}; known: {', '.join(_FIELDS)}, or "
                                  f"scapy's {', '.join(SCAPY_NAMES)} (or give offset= and size=)")
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
                or (_packets.OFFSETS["udp.csum"] <= offset + size - 1
                    and offset <= _packets.OFFSETS["udp.csum"] + 1):
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
    rate : str or number
        The rate as one value, parsed by ``parse_rate``: "10mpps", "5gbps", "50%" (with
        ``line_rate_bps``), or a number of packets per second. Instead of pps/bps/percent.
    pps, bps, percent (+ line_rate_bps) :
        Rate: packets/s, frame bits/s (without FCS), or a percentage of ``line_rate_bps``
        counted on the wire (frame + 24 bytes). None of them: as fast as possible. The
        average holds through host jitter: packets a late poll owes are sent at once, up
        to 1 ms worth (a longer stall is not made up for).
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
    flow_id : int, optional
        Measure this stream (0..65535): every packet carries the marker of
        ``dpdkvirtio.marker`` (flow id, a per-flow sequence number from 0, the sender's
        TSC), so receivers with a FlowStats table count loss, reordering, duplicates and
        latency per flow. Needs Ethernet/IPv4/UDP templates of at least 64 bytes.
    """

    def __init__(self, packets, *, vars=(), size: SizeVar | None = None, pps: float | None = None,
                 bps: float | None = None, percent: float | None = None,
                 line_rate_bps: float | None = None, count: int = 0, duration_s: float = 0.0,
                 mode: str = "continuous", burst_packets: int = 0, bursts: int = 0,
                 ibg_s: float = 0.0, fix_checksums: bool = True, seed: int = 1,
                 flow_id: int | None = None, rate: str | float | None = None):
        frames = _as_frames(packets)
        if not frames:
            raise ConfigError("a stream needs at least one packet")
        if any(len(f) < 14 for f in frames):
            raise ConfigError("every packet needs at least an Ethernet header (14 bytes)")
        self.vars = list(vars)
        if len(self.vars) > MAX_VARS:
            raise ConfigError(f"at most {MAX_VARS} field variables per stream")
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
            if not all(_packets.is_ipv4_udp(f) for f in frames):
                raise ConfigError("a SizeVar needs Ethernet/IPv4/UDP templates")
            frames = [f.ljust(size.max, b"\0") for f in frames]
        self.flow_id = None if flow_id is None else _marker.check_flow_id(flow_id)
        if self.flow_id is not None:
            if size is not None and size.min < _marker.MIN_FRAME:
                raise ConfigError(f"a measured stream's SizeVar needs min >= {_marker.MIN_FRAME} "
                                  "(the marker's end)")
            for v in self.vars:
                if v.offset < _marker.MIN_FRAME and v.offset + v.size > _marker.OFFSET:
                    raise ConfigError(f"{v!r} overlaps the measurement marker (bytes "
                                      f"{_marker.OFFSET}..{_marker.MIN_FRAME - 1})")
            frames = [_marker.mark_template(f, self.flow_id) for f in frames]
        self.fix_checksums = bool(fix_checksums)
        if self.fix_checksums or self.flow_id is not None:
            frames = [_packets.fix_checksums(f) for f in frames]
        self.frames = frames
        if rate is not None:
            if any(r is not None for r in (pps, bps, percent)):
                raise ConfigError("give rate, or one of pps, bps or percent, not both")
            kind, value = parse_rate(rate)
            pps, bps, percent = [value if kind == k else None for k in ("pps", "bps", "percent")]
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
        self.due_ns: np.ndarray | None = None    # timed replay (from_pcap timing="original")
        self.loop_ns = 0

    @property
    def mean_size(self) -> float:
        if self.size is not None:
            return (self.size.min + self.size.max) / 2
        return sum(len(f) for f in self.frames) / len(self.frames)

    def pps_for(self, spec: tuple[str | None, float | None] | None = None) -> float:
        """The rate in packets per second (0: unlimited)."""
        kind, value = spec or self._rate_spec
        if kind is None or value is None:
            return 0.0
        if kind == "pps":
            return float(value)
        if kind == "bps":
            return float(value) / (self.mean_size * 8)
        return (self.line_rate_bps or 0.0) * value / 100.0 / ((self.mean_size + WIRE_OVERHEAD) * 8)

    def generator_args(self, mempool):
        udp_end = 34
        if self.frames and _packets.is_ipv4_udp(self.frames[0]):
            udp_end = 34 + struct.unpack_from("!H", self.frames[0], 38)[0]
        count = self.count
        burst_packets, bursts, ibg = 0, 0, 0.0
        if self.mode == "multi_burst":
            burst_packets, bursts, ibg = self.burst_packets, self.bursts, self.ibg_s
        fixable = all(_packets.is_ipv4_udp(f) for f in self.frames)
        return dict(
            mempool=mempool, templates=self.frames,
            variables=[v.c_tuple(udp_end) for v in self.vars],
            size_var=(self.size.op, self.size.min, self.size.max, self.size.step) if self.size else None,
            fix_ip=self.fix_checksums and fixable, fix_udp=self.fix_checksums and fixable,
            pps=self.pps_for(), count=count, duration_s=self.duration_s,
            burst_packets=burst_packets, bursts=bursts, ibg_s=ibg, seed=self.seed,
            flow_id=-1 if self.flow_id is None else self.flow_id,
            due_ns=self.due_ns, loop_ns=self.loop_ns)

    # -- replay ------------------------------------------------------------------------
    @classmethod
    def replay(cls, packets, lengths=None, *, loops: int = 0, **kw) -> Stream:
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
    def from_pcap(cls, path, *, loops: int = 0, limit: int | None = None,
                  timing: str = "rate", speed: float = 1.0, **kw) -> Stream:
        """Replay the Ethernet frames of a pcap or pcapng file in order (pcapfile.read;
        ConfigError for a file of another link type, truncated or corrupt), ``loops``
        times (0: forever).

        ``timing="rate"``: at the stream's rate (``pps``/``bps``/``percent``; none: as
        fast as possible). ``timing="original"``: each packet at its timestamp's offset
        from the file's first, divided by ``speed`` (2.0: twice as fast); a packet
        stamped earlier than the one before it goes right after it; a loop lasts the
        file's span plus one mean gap. The generator keeps the schedule: packets due
        while it could not run are sent at once."""
        if timing not in ("rate", "original"):
            raise ConfigError(f"timing must be 'rate' or 'original', got {timing!r}")
        pk = _pcapfile.read_ethernet(path, limit)
        if timing == "rate":
            return cls.replay(pk.frames, loops=loops, **kw)
        if not speed > 0:
            raise ConfigError(f"speed must be > 0, got {speed!r}")
        if any(kw.get(k) is not None for k in ("pps", "bps", "percent", "rate")):
            raise ConfigError("timing='original' takes the file's timing: give speed=, "
                              "not rate/pps/bps/percent")
        stream = cls.replay(pk.frames, loops=loops, **kw)
        offsets = np.maximum.accumulate(pk.timestamps_ns - pk.timestamps_ns[0])
        due = (offsets / float(speed)).astype(np.int64)
        mean_gap = int(due[-1] // (len(due) - 1)) if len(due) > 1 else 1_000_000
        stream.due_ns = due
        stream.loop_ns = int(due[-1]) + max(mean_gap, 1)
        return stream


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
    def flow_id(self) -> int | None:
        """The measured flow this generator stamps (None: unmeasured)."""
        return self._a.generator.flow_id

    @property
    def built(self) -> int:
        """Packets built and handed to the port (sent, or dropped and counted there); for
        a measured stream, the ``sent`` of FlowStats.flow()."""
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
