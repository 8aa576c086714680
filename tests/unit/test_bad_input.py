"""Public API bad input that needs no DPDK: every case a clear ConfigError."""
import struct

import pytest

from dpdkvirtio import packets
from dpdkvirtio.errors import ConfigError


@pytest.mark.parametrize("kw, text", [
    (dict(src_ip="127.0.0.256"), "bad src_ip"),
    (dict(dst_ip="localhost"), "bad dst_ip"),
    (dict(src_ip=None), "bad src_ip"),
    (dict(src_mac="02:00:00:00:00"), "bad MAC"),
    (dict(dst_mac="02:00:00:00:00:zz"), "bad MAC"),
    (dict(dst_mac="020:00:00:00:00:01"), "bad MAC"),
    (dict(sport=70000), "sport"),
    (dict(dport=-1), "dport"),
    (dict(ttl=256), "ttl"),
    (dict(size=41), "42..65535"),
    (dict(size=70000), "42..65535"),
])
def test_udp_frame_bad_fields(kw, text):
    with pytest.raises(ConfigError, match=text):
        packets.udp_frame(**kw)


def _pcap_header(linktype=1, magic=b"\xd4\xc3\xb2\xa1", snaplen=65535):
    return magic + struct.pack("<HHiII", 2, 4, 0, 0, snaplen) + struct.pack("<I", linktype)


def _record(data: bytes, incl=None):
    return struct.pack("<IIII", 0, 0, len(data) if incl is None else incl, len(data)) + data


def test_read_pcap_rejects_what_it_cannot_read(tmp_path):
    from dpdkvirtio.streams import read_pcap
    frame = packets.udp_frame(64)
    cases = {
        "short": (b"\xd4\xc3\xb2\xa1", "too short"),
        "pcapng": (b"\x0a\x0d\x0d\x0a" + bytes(40), "pcapng is not supported"),
        "garbage": (b"GIF89a" + bytes(40), "not a classic pcap"),
        "raw-ip": (_pcap_header(linktype=101) + _record(frame), "link type 101 is not Ethernet"),
        "empty": (_pcap_header(), "no packets"),
        "cut-record-header": (_pcap_header() + _record(frame) + b"\0" * 7,
                              "truncated: the record header after packet 1"),
        "cut-data": (_pcap_header() + _record(frame) + _record(frame)[:40],
                     "truncated: packet 1 has 24 of its 64 bytes"),
        "huge-record": (_pcap_header(snaplen=2048) + _record(frame, incl=1 << 30),
                        "corrupt: packet 0 claims"),
    }
    for name, (blob, text) in cases.items():
        p = tmp_path / f"{name}.pcap"
        p.write_bytes(blob)
        with pytest.raises(ConfigError, match=text):
            read_pcap(p)
    ok = tmp_path / "ok.pcap"
    ok.write_bytes(_pcap_header() + _record(frame) + _record(frame[:60]))
    assert read_pcap(ok) == [frame, frame[:60]]
    ok.write_bytes(b"\xa1\xb2\xc3\xd4" + struct.pack(">HHiIII", 2, 4, 0, 0, 65535, 1)
                   + struct.pack(">IIII", 0, 0, 64, 64) + frame)      # big-endian
    assert read_pcap(ok) == [frame]


@pytest.mark.parametrize("args, kw, text", [
    (("ip.src", "127.0.0.9", "127.0.0.1"), {}, "empty"),
    (("ip.nosuch", 1, 2), {}, "unknown field 'ip.nosuch'"),
    (("udp.sport", 1, 70000), {}, "does not fit"),
    (("udp.sport", 1, 5), dict(op="shuffle"), "op must be"),
    (("udp.sport", 1, 5), dict(step=0), "step"),
    (("udp.sport", 1, 5), dict(start=9), "start must lie"),
    ((None, 1, 5), dict(offset=24, size=3), "size must be"),
])
def test_fieldvar_bad_input(args, kw, text):
    from dpdkvirtio.streams import FieldVar
    with pytest.raises(ConfigError, match=text):
        FieldVar(*args, **kw)
