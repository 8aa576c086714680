"""pcap and pcapng files (pure Python, no DPDK): the one reader of both formats, and the
blocks of a pcapng file that are not packets (section header, interface description,
interface statistics). Packet blocks are formatted by DPDK's rte_pcapng_copy in the
capture writer (capture.py); DPDK 22.11's rte_pcapng describes only ethdev ports as
interfaces, and our vhost-user ports are not ethdevs, so the file's other blocks are ours.

Readers raise ConfigError naming the file and what is wrong with it (truncated, corrupt,
not a capture, a link type that cannot be sent)."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError

LINKTYPE_ETHERNET = 1
LINKTYPE_NAMES = {0: "null/loopback", 1: "Ethernet", 101: "raw IP", 105: "802.11",
                  113: "Linux cooked (SLL)", 127: "802.11 radiotap", 228: "raw IPv4",
                  229: "raw IPv6", 276: "Linux cooked v2 (SLL2)"}

# pcapng block types and options (draft-ietf-opsawg-pcapng)
SHB, IDB, PB_OBSOLETE, SPB, ISB, EPB = 0x0A0D0D0A, 1, 2, 3, 5, 6
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END, OPT_COMMENT = 0, 1
SHB_USERAPPL = 4
IF_NAME, IF_DESCRIPTION, IF_TSRESOL, IF_FILTER = 2, 3, 9, 11
ISB_STARTTIME, ISB_ENDTIME, ISB_IFRECV, ISB_IFDROP, ISB_FILTERACCEPT = 2, 3, 4, 5, 6
MAX_BLOCK = 1 << 26                     # a block longer than this is corruption


@dataclass
class Interface:
    """One capture interface: pcapng's IDB (a classic pcap file has one)."""
    name: str
    linktype: int
    snaplen: int
    description: str = ""
    ticks_per_second: int = 1_000_000    # timestamp unit (pcapng if_tsresol; pcap: 10^6 or 10^9)

    def ticks_to_ns(self, ticks: int) -> int:
        """Nanoseconds of ``ticks`` in this interface's unit, exactly (integers: a float
        of ns since 1970 holds only multiples of 256 ns), rounded down."""
        return ticks * 1_000_000_000 // self.ticks_per_second


@dataclass
class Packets:
    """What a capture file holds: frames in file order and, per frame, its timestamp (ns
    since the epoch), original length and interface index. ``stats`` has the last
    interface statistics per interface index: {"ifrecv": n, "ifdrop": n} (pcapng only)."""
    frames: list[bytes]
    timestamps_ns: np.ndarray
    orig_lengths: np.ndarray
    interface: np.ndarray
    interfaces: list[Interface]
    stats: dict[int, dict[str, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(data, lengths): frames as rows of a 2-D uint8 array, zero-padded, and their
        captured lengths."""
        lengths = np.array([len(f) for f in self.frames], dtype=np.uint32)
        data = np.zeros((len(self.frames), int(lengths.max()) if len(lengths) else 0), np.uint8)
        for i, f in enumerate(self.frames):
            data[i, :len(f)] = np.frombuffer(f, np.uint8)
        return data, lengths

    def to_scapy(self) -> list:
        """The frames decoded by scapy (``scapy.layers.l2.Ether``), each with its
        timestamp as ``.time`` (seconds, a scapy EDecimal: exact to the nanosecond) —
        scapy is imported here, not at import time."""
        from scapy.layers.l2 import Ether  # (an optional dependency)
        from scapy.utils import EDecimal
        out = []
        for f, ns in zip(self.frames, self.timestamps_ns.tolist()):
            p = Ether(f)
            p.time = EDecimal(ns) / 1_000_000_000
            out.append(p)
        return out

    def require_linktype(self, linktype: int = LINKTYPE_ETHERNET, what: str = "file") -> None:
        """Raise ConfigError when a packet came from an interface of another link type."""
        for i in sorted(set(self.interface.tolist())):
            lt = self.interfaces[i].linktype
            if lt != linktype:
                raise ConfigError(
                    f"{what}: interface {i} ({self.interfaces[i].name or 'unnamed'}) has link "
                    f"type {lt} ({LINKTYPE_NAMES.get(lt, 'unknown')}), which cannot be sent "
                    f"on an Ethernet port; only link type {linktype} "
                    f"({LINKTYPE_NAMES.get(linktype)}) can")


def read(source, limit: int | None = None) -> Packets:
    """Read a classic pcap (any byte order, µs or ns) or pcapng file: a path or a binary
    file object. ``limit``: stop after that many packets."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return _read(f, os.fspath(source), limit)
    return _read(source, getattr(source, "name", "capture"), limit)


def _read(f, name: str, limit: int | None) -> Packets:
    head = f.read(4)
    if len(head) < 4:
        raise ConfigError(f"{name}: not a capture file (too short)")
    if head == b"\x0a\x0d\x0d\x0a":
        return _Pcapng(f, name, head, limit).read()
    if head in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return _read_pcap(f, name, head, limit)
    raise ConfigError(f"{name}: neither a pcap nor a pcapng file (starts with {head.hex()})")


def _exact(f, n: int, name: str, what: str) -> bytes:
    data = f.read(n)
    if len(data) < n:
        raise ConfigError(f"{name}: truncated: {what} has {len(data)} of its {n} bytes")
    return data


def _read_pcap(f, name: str, magic: bytes, limit: int | None) -> Packets:
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    per_second = 10**9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 10**6
    rest = f.read(20)
    if len(rest) < 20:
        raise ConfigError(f"{name}: not a pcap file (too short)")
    snaplen, linktype = struct.unpack(endian + "II", rest[12:20])
    linktype &= 0xFFFF
    iface = Interface("", linktype, snaplen, ticks_per_second=per_second)
    frames: list[bytes] = []
    ts: list[int] = []
    orig: list[int] = []
    while limit is None or len(frames) < limit:
        rec = f.read(16)
        if not rec:
            break
        if len(rec) < 16:
            raise ConfigError(f"{name}: truncated: the record header after packet "
                              f"{len(frames)} is cut short")
        sec, frac, incl, olen = struct.unpack(endian + "IIII", rec)
        if incl > max(snaplen, 65535):
            raise ConfigError(f"{name}: corrupt: packet {len(frames)} claims {incl} bytes "
                              f"(snap length {snaplen})")
        frames.append(_exact(f, incl, name, f"packet {len(frames)}"))
        ts.append(sec * 1_000_000_000 + iface.ticks_to_ns(frac))
        orig.append(olen)
    return _packets(frames, ts, orig, [0] * len(frames), [iface], {}, name)


def _packets(frames, ts, orig, ifaces, interfaces, stats, name) -> Packets:
    return Packets(frames, np.array(ts, np.int64), np.array(orig, np.uint32),
                   np.array(ifaces, np.uint16), interfaces, stats)


def _options(body: bytes, endian: str) -> list[tuple[int, bytes]]:
    out, off = [], 0
    while off + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, off)
        if code == OPT_END:
            break
        out.append((code, body[off + 4:off + 4 + length]))
        off += 4 + (length + 3) // 4 * 4
    return out


class _Pcapng:
    def __init__(self, f, name: str, head: bytes, limit: int | None):
        self.f, self.name, self.head, self.limit = f, name, head, limit
        self.endian = "<"
        self.base = 0                    # interface index of this section's interface 0
        self.interfaces: list[Interface] = []
        self.frames: list[bytes] = []
        self.ts: list[int] = []
        self.orig: list[int] = []
        self.ifaces: list[int] = []
        self.stats: dict[int, dict[str, int]] = {}

    def read(self) -> Packets:
        btype_raw: bytes = self.head
        while self.limit is None or len(self.frames) < self.limit:
            self._block(btype_raw)
            btype_raw = self.f.read(4)
            if not btype_raw:
                break
            if len(btype_raw) < 4:
                raise ConfigError(f"{self.name}: truncated: a block header after packet "
                                  f"{len(self.frames)} is cut short")
        return _packets(self.frames, self.ts, self.orig, self.ifaces, self.interfaces,
                        self.stats, self.name)

    def _block(self, btype_raw: bytes) -> None:
        if btype_raw == b"\x0a\x0d\x0d\x0a":
            rest = _exact(self.f, 8, self.name, "a section header")
            magic = rest[4:8]
            if magic == b"\x4d\x3c\x2b\x1a":
                self.endian = "<"
            elif magic == b"\x1a\x2b\x3c\x4d":
                self.endian = ">"
            else:
                raise ConfigError(f"{self.name}: corrupt: bad byte-order magic in a section header")
            length = struct.unpack(self.endian + "I", rest[:4])[0]
            self._check_length(length, 28)
            _exact(self.f, length - 12, self.name, "a section header")
            self.base = len(self.interfaces)
            return
        btype = struct.unpack(self.endian + "I", btype_raw)[0]
        length = struct.unpack(self.endian + "I", _exact(self.f, 4, self.name, "a block header"))[0]
        self._check_length(length, 12)
        body = _exact(self.f, length - 8, self.name,
                      f"a block (type {btype}) after packet {len(self.frames)}")
        trailer = struct.unpack(self.endian + "I", body[-4:])[0]
        if trailer != length:
            raise ConfigError(f"{self.name}: corrupt: a block (type {btype}) after packet "
                              f"{len(self.frames)} ends with length {trailer}, not {length}")
        body = body[:-4]
        e = self.endian
        if btype == IDB:
            if len(body) < 8:
                raise ConfigError(f"{self.name}: corrupt: interface description too short")
            linktype, _, snaplen = struct.unpack_from(e + "HHI", body)
            iface = Interface("", linktype, snaplen)
            for code, val in _options(body[8:], e):
                if code == IF_NAME:
                    iface.name = val.rstrip(b"\0").decode("utf-8", "replace")
                elif code == IF_DESCRIPTION:
                    iface.description = val.rstrip(b"\0").decode("utf-8", "replace")
                elif code == IF_TSRESOL and val:
                    r = val[0]
                    iface.ticks_per_second = 2 ** (r & 0x7F) if r & 0x80 else 10 ** r
            self.interfaces.append(iface)
        elif btype in (EPB, PB_OBSOLETE):
            if len(body) < 20:
                raise ConfigError(f"{self.name}: corrupt: packet block {len(self.frames)} too short")
            if btype == EPB:
                iface, hi, lo, caplen, olen = struct.unpack_from(e + "IIIII", body)
            else:
                iface, _, hi, lo, caplen, olen = struct.unpack_from(e + "HHIIII", body)
            self._packet(iface, (hi << 32) | lo, caplen, olen, body, 20)
        elif btype == SPB:
            olen = struct.unpack_from(e + "I", body)[0]
            caplen = min(olen, self._iface(0).snaplen or olen)
            self._packet(0, None, caplen, olen, body, 4)
        elif btype == ISB and len(body) >= 12:
            iface = struct.unpack_from(e + "I", body)[0] + self.base
            st = self.stats.setdefault(iface, {})
            for code, val in _options(body[12:], e):
                key = {ISB_IFRECV: "ifrecv", ISB_IFDROP: "ifdrop",
                       ISB_FILTERACCEPT: "filteraccept"}.get(code)
                if key and len(val) == 8:
                    st[key] = struct.unpack(e + "Q", val)[0]
        # other blocks (name resolution, custom, ...) carry no packets

    def _check_length(self, length: int, minimum: int) -> None:
        if length < minimum or length % 4 or length > MAX_BLOCK:
            raise ConfigError(f"{self.name}: corrupt: a block after packet {len(self.frames)} "
                              f"claims a length of {length} bytes")

    def _iface(self, local: int) -> Interface:
        i = local + self.base
        if i >= len(self.interfaces):
            raise ConfigError(f"{self.name}: corrupt: packet {len(self.frames)} names interface "
                              f"{local}, which no interface description block defined")
        return self.interfaces[i]

    def _packet(self, local: int, ticks: int | None, caplen: int, olen: int, body: bytes,
                off: int) -> None:
        iface = self._iface(local)
        if off + caplen > len(body):
            raise ConfigError(f"{self.name}: corrupt: packet {len(self.frames)} claims {caplen} "
                              f"bytes in a {len(body) - off}-byte block")
        ns = 0 if ticks is None else iface.ticks_to_ns(ticks)
        if ns >= 1 << 63:
            raise ConfigError(f"{self.name}: corrupt: packet {len(self.frames)} is stamped "
                              f"{ns / 1e9:.0f} s after 1970 (beyond the year 2262)")
        self.frames.append(bytes(body[off:off + caplen]))
        self.ts.append(ns)
        self.orig.append(olen)
        self.ifaces.append(local + self.base)


# -- writing the blocks that are not packets ----------------------------------------------
def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes, options: list[bytes]) -> bytes:
    opts = b"".join(options) + (struct.pack("<HH", OPT_END, 0) if options else b"")
    length = 12 + len(body) + len(opts)
    return struct.pack("<II", btype, length) + body + opts + struct.pack("<I", length)


def section_header(application: str, comment: str | None = None) -> bytes:
    """A little-endian section header of unknown length."""
    opts = [_option(SHB_USERAPPL, application.encode())]
    if comment:
        opts.append(_option(OPT_COMMENT, comment.encode()))
    return _block(SHB, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1), opts)


def interface_description(name: str, description: str, snaplen: int,
                          linktype: int = LINKTYPE_ETHERNET, filter: str | None = None) -> bytes:
    """An Ethernet interface with nanosecond timestamps (what rte_pcapng_copy writes),
    and the capture filter (libpcap syntax) when there is one."""
    opts = [_option(IF_NAME, name.encode()), _option(IF_DESCRIPTION, description.encode()),
            _option(IF_TSRESOL, bytes([9]))]
    if filter:
        opts.append(_option(IF_FILTER, b"\0" + filter.encode()))
    return _block(IDB, struct.pack("<HHI", linktype, 0, snaplen), opts)


def interface_statistics(iface: int, time_ns: int, ifrecv: int, ifdrop: int,
                         start_ns: int, end_ns: int, filter_accept: int | None = None) -> bytes:
    def ts(ns: int) -> bytes:
        return struct.pack("<II", ns >> 32, ns & 0xFFFFFFFF)
    opts = [_option(ISB_STARTTIME, ts(start_ns)), _option(ISB_ENDTIME, ts(end_ns)),
            _option(ISB_IFRECV, struct.pack("<Q", ifrecv)),
            _option(ISB_IFDROP, struct.pack("<Q", ifdrop))]
    if filter_accept is not None:
        opts.append(_option(ISB_FILTERACCEPT, struct.pack("<Q", filter_accept)))
    return _block(ISB, struct.pack("<I", iface) + ts(time_ns), opts)


def read_ethernet(source, limit: int | None = None) -> Packets:
    """``read`` for sending: ConfigError when the file has no packets, or a packet of a
    link type other than Ethernet."""
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "capture"
    pk = read(source, limit)
    if not pk.frames:
        raise ConfigError(f"{name}: no packets")
    pk.require_linktype(LINKTYPE_ETHERNET, name)
    return pk


read_capture = read                     # the package's name for it (dpdkvirtio.read_capture)

__all__ = ["Interface", "Packets", "read", "read_capture", "read_ethernet", "section_header",
           "interface_description", "interface_statistics", "LINKTYPE_ETHERNET"]
