"""Building and checking test frames (pure Python): Ethernet/IPv4/UDP templates with
127.0.0.0/8 addresses, the Internet checksum, field offsets for the field engine, and
a reader for the packets a port received.
"""

from __future__ import annotations

import ipaddress
import struct

import numpy as np

from .errors import ConfigError

ETH_HLEN = 14
IPV4_HLEN = 20
UDP_HLEN = 8
MIN_FRAME = 60                 # without FCS
ETHERTYPE_IPV4 = 0x0800

# Offsets of fields in an untagged Ethernet/IPv4(no options)/UDP frame.
OFFSETS = {
    "eth.dst": 0, "eth.src": 6, "eth.type": 12,
    "ip.len": ETH_HLEN + 2, "ip.id": ETH_HLEN + 4, "ip.ttl": ETH_HLEN + 8,
    "ip.proto": ETH_HLEN + 9, "ip.csum": ETH_HLEN + 10,
    "ip.src": ETH_HLEN + 12, "ip.dst": ETH_HLEN + 16,
    "udp.sport": ETH_HLEN + IPV4_HLEN, "udp.dport": ETH_HLEN + IPV4_HLEN + 2,
    "udp.len": ETH_HLEN + IPV4_HLEN + 4, "udp.csum": ETH_HLEN + IPV4_HLEN + 6,
}
SIZES = {"eth.dst": 6, "eth.src": 6, "eth.type": 2, "ip.len": 2, "ip.id": 2, "ip.ttl": 1,
         "ip.proto": 1, "ip.csum": 2, "ip.src": 4, "ip.dst": 4, "udp.sport": 2,
         "udp.dport": 2, "udp.len": 2, "udp.csum": 2}


def mac_bytes(mac: str) -> bytes:
    """"02:00:00:00:00:01" -> 6 bytes. Raises ConfigError for anything else."""
    parts = mac.split(":") if isinstance(mac, str) else []
    if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
        raise ConfigError(f"bad MAC address {mac!r}: expected six hex bytes like 02:00:00:00:00:01")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ConfigError(f"bad MAC address {mac!r}: expected six hex bytes like "
                          "02:00:00:00:00:01") from None


def ipv4_bytes(address: str, what: str = "IPv4 address") -> bytes:
    """"127.0.0.1" -> 4 bytes. Raises ConfigError for anything else."""
    try:
        return ipaddress.IPv4Address(address).packed
    except (ValueError, TypeError):
        raise ConfigError(f"bad {what} {address!r}: expected dotted quad like 127.0.0.1") from None


def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def udp_frame(size: int = 64, *, src_mac: str = "02:00:00:00:00:01",
              dst_mac: str = "02:00:00:00:00:02", src_ip: str = "127.0.0.1",
              dst_ip: str = "127.0.0.2", sport: int = 1024, dport: int = 1024, ttl: int = 64,
              payload: bytes | None = None, udp_checksum: bool = True) -> bytes:
    """An Ethernet/IPv4/UDP frame of ``size`` bytes (FCS excluded; >= 60... 42 + payload),
    IPv4 and UDP checksums filled in. The payload is ``payload`` padded with zeros."""
    if not isinstance(size, int) or not ETH_HLEN + IPV4_HLEN + UDP_HLEN <= size <= 65535:
        raise ConfigError(f"a UDP frame is {ETH_HLEN + IPV4_HLEN + UDP_HLEN}..65535 bytes, "
                          f"got {size!r}")
    for name, port in (("sport", sport), ("dport", dport)):
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"{name} must be 0..65535, got {port!r}")
    if not isinstance(ttl, int) or not 0 <= ttl <= 255:
        raise ConfigError(f"ttl must be 0..255, got {ttl!r}")
    plen = size - ETH_HLEN - IPV4_HLEN - UDP_HLEN
    body = (payload or b"")[:plen].ljust(plen, b"\0")
    src = ipv4_bytes(src_ip, "src_ip")
    dst = ipv4_bytes(dst_ip, "dst_ip")
    ip_len = IPV4_HLEN + UDP_HLEN + plen
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, ttl, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", inet_checksum(ip)) + ip[12:]
    udp_len = UDP_HLEN + plen
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + body
    if udp_checksum:
        pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
        c = inet_checksum(pseudo + udp) or 0xFFFF
        udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    eth = mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", ETHERTYPE_IPV4)
    return eth + ip + udp


def is_ipv4_udp(frame: bytes) -> bool:
    """An untagged Ethernet/IPv4 (no options)/UDP frame."""
    return (len(frame) >= ETH_HLEN + IPV4_HLEN + UDP_HLEN and frame[12:14] == b"\x08\x00"
            and frame[14] == 0x45 and frame[23] == 17)


def fix_checksums(frame: bytes) -> bytes:
    """``frame`` with its IPv4 checksum (and a non-zero UDP checksum) made right; other
    frames unchanged."""
    if not is_ipv4_udp(frame):
        return frame
    f = bytearray(frame)
    csum = OFFSETS["ip.csum"]
    f[csum:csum + 2] = b"\0\0"
    f[csum:csum + 2] = struct.pack("!H", inet_checksum(bytes(f[ETH_HLEN:ETH_HLEN + IPV4_HLEN])))
    udp = ETH_HLEN + IPV4_HLEN
    ulen = struct.unpack_from("!H", f, udp + 4)[0]
    if f[udp + 6:udp + 8] != b"\0\0" and UDP_HLEN <= ulen <= len(f) - udp:
        f[udp + 6:udp + 8] = b"\0\0"
        pseudo = bytes(f[26:34]) + struct.pack("!BBH", 0, 17, ulen)
        c = inet_checksum(pseudo + bytes(f[udp:udp + ulen])) or 0xFFFF
        f[udp + 6:udp + 8] = struct.pack("!H", c)
    return bytes(f)


def ipv4_checksum_ok(frame: bytes) -> bool:
    return inet_checksum(frame[ETH_HLEN:ETH_HLEN + IPV4_HLEN]) == 0


def udp_checksum_ok(frame: bytes) -> bool:
    """True when the UDP checksum verifies (or is 0, meaning none)."""
    ip = frame[ETH_HLEN:ETH_HLEN + IPV4_HLEN]
    ulen = struct.unpack_from("!H", frame, ETH_HLEN + IPV4_HLEN + 4)[0]
    udp = frame[ETH_HLEN + IPV4_HLEN:ETH_HLEN + IPV4_HLEN + ulen]
    if udp[6:8] == b"\0\0":
        return True
    pseudo = ip[12:16] + ip[16:20] + struct.pack("!BBH", 0, 17, ulen)
    return inet_checksum(pseudo + udp) == 0


def field(frame: bytes | bytearray | memoryview, name: str) -> int:
    """Read a header field (see OFFSETS) as an integer."""
    off, size = OFFSETS[name], SIZES[name]
    return int.from_bytes(bytes(frame[off:off + size]), "big")


def fields_of_rows(data: np.ndarray, name: str) -> np.ndarray:
    """Read field ``name`` from every row of a (n, snaplen) uint8 array (burst.to_numpy)."""
    off, size = OFFSETS[name], SIZES[name]
    cols = data[:, off:off + size].astype(np.uint64)
    out = np.zeros(len(data), dtype=np.uint64)
    for i in range(size):
        out = (out << np.uint64(8)) | cols[:, i]
    return out
