"""Test frames: sizes, checksums, field offsets."""
import numpy as np
import pytest

from dpdkvirtio import packets


def test_udp_frame_layout_and_checksums():
    f = packets.udp_frame(64, src_ip="127.0.0.1", dst_ip="127.0.0.9", sport=1000, dport=2000)
    assert len(f) == 64
    assert packets.ipv4_checksum_ok(f) and packets.udp_checksum_ok(f)
    assert packets.field(f, "ip.src") == 0x7F000001
    assert packets.field(f, "ip.dst") == 0x7F000009
    assert packets.field(f, "udp.sport") == 1000 and packets.field(f, "udp.dport") == 2000
    assert packets.field(f, "ip.len") == 50 and packets.field(f, "udp.len") == 30
    assert packets.field(f, "eth.type") == 0x0800


def test_corruption_is_detected():
    f = bytearray(packets.udp_frame(128))
    f[40] ^= 0xFF
    assert not packets.udp_checksum_ok(bytes(f))
    f = bytearray(packets.udp_frame(128))
    f[14 + 8] ^= 1                  # ttl
    assert not packets.ipv4_checksum_ok(bytes(f))


def test_inet_checksum_rfc1071_example():
    data = bytes([0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7])
    assert packets.inet_checksum(data) == (~0xDDF2 & 0xFFFF)


def test_too_small():
    with pytest.raises(ValueError):
        packets.udp_frame(30)


def test_fields_of_rows():
    rows = np.zeros((3, 64), dtype=np.uint8)
    for i in range(3):
        rows[i] = np.frombuffer(packets.udp_frame(64, src_ip=f"127.0.0.{i + 1}"), dtype=np.uint8)
    assert packets.fields_of_rows(rows, "ip.src").tolist() == [0x7F000001, 0x7F000002, 0x7F000003]
