"""The measurement marker (pure Python): what a measured packet carries, where, and how
to write and read it outside the C data path (Python senders, tests, captures).

Layout: 22 bytes at the start of the UDP payload of an untagged Ethernet / IPv4 (no
options) / UDP frame, i.e. frame bytes 42..63::

    offset  size  field
    42      4     magic b"DVM1"
    46      2     flow id, big endian (0..65535)
    48      8     per-flow sequence number, little endian (0, 1, 2, ...)
    56      8     TSC of the sender when it stamped the packet, little endian

The smallest measured frame is therefore 64 bytes as DPDK counts them (``pkt_len``, the
4-byte FCS not included; 68 bytes on the wire). The C generator writes magic and flow id
once into its templates and the sequence number and TSC into each packet right before
the enqueue, updating the UDP checksum incrementally (the IPv4 header is not touched).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import numpy as np

from . import packets as _packets
from .errors import ConfigError

MAGIC = b"DVM1"
OFFSET = 42
LENGTH = 22
MIN_FRAME = OFFSET + LENGTH            # 64
FLOW_OFFSET = OFFSET + 4
SEQ_OFFSET = OFFSET + 6
TSC_OFFSET = OFFSET + 14
MAX_FLOW_ID = 65535


def check_flow_id(flow_id: object) -> int:
    if isinstance(flow_id, bool) or not isinstance(flow_id, (int, np.integer)) \
            or not 0 <= int(flow_id) <= MAX_FLOW_ID:
        raise ConfigError(f"flow_id must be an integer 0..{MAX_FLOW_ID}, got {flow_id!r}")
    return int(flow_id)


def check_template(frame: bytes, what: str = "template") -> None:
    """Raise ConfigError unless ``frame`` can carry the marker."""
    if not _packets.is_ipv4_udp(frame):
        raise ConfigError(f"a measured stream needs untagged Ethernet/IPv4 (no options)/UDP "
                          f"{what}s (the marker travels in the UDP payload); this {what} is not one")
    if len(frame) < MIN_FRAME:
        raise ConfigError(f"a measured {what} must be at least {MIN_FRAME} bytes (the "
                          f"{LENGTH}-byte marker starts at byte {OFFSET}); got {len(frame)}")
    udp_len = struct.unpack_from("!H", frame, 38)[0]
    if udp_len < 8 + LENGTH:
        raise ConfigError(f"the {what}'s UDP length ({udp_len}) does not cover the {LENGTH}-byte "
                          "marker: build it with udp_frame(size >= 64)")


def mark_template(frame: bytes, flow_id: int) -> bytes:
    """``frame`` with magic and flow id written and sequence/TSC zeroed (checksums are the
    caller's: Stream recomputes them after marking)."""
    check_template(frame)
    f = bytearray(frame)
    f[OFFSET:MIN_FRAME] = MAGIC + struct.pack("!H", check_flow_id(flow_id)) + bytes(16)
    return bytes(f)


def stamp(template: bytes, flow_id: int, seqs: Iterable[int], tsc: int | Iterable[int]) -> np.ndarray:
    """Measured frames, one row per sequence number, as a 2-D uint8 array (for Python
    senders): ``template`` marked with ``flow_id``, each row's sequence number and TSC
    (one value for all rows, or one per row), IPv4 and UDP checksums right."""
    base = mark_template(template, flow_id)
    seq_list = [int(s) for s in seqs]
    tscs = [int(tsc)] * len(seq_list) if isinstance(tsc, (int, np.integer)) else [int(t) for t in tsc]
    if len(tscs) != len(seq_list):
        raise ConfigError("give one TSC, or one per sequence number")
    rows = np.empty((len(seq_list), len(base)), dtype=np.uint8)
    for i, (seq, t) in enumerate(zip(seq_list, tscs)):
        f = bytearray(base)
        struct.pack_into("<QQ", f, SEQ_OFFSET, seq, t)
        rows[i] = np.frombuffer(_packets.fix_checksums(bytes(f)), dtype=np.uint8)
    return rows


def parse(frame: bytes | bytearray | memoryview) -> tuple[int, int, int] | None:
    """(flow id, sequence number, TSC) of a measured frame, or None for any other frame."""
    b = bytes(frame[:MIN_FRAME])
    if len(b) < MIN_FRAME or not _packets.is_ipv4_udp(b) or b[OFFSET:OFFSET + 4] != MAGIC:
        return None
    flow = struct.unpack_from("!H", b, FLOW_OFFSET)[0]
    seq, tsc = struct.unpack_from("<QQ", b, SEQ_OFFSET)
    return flow, seq, tsc
