"""Public API bad input that needs no DPDK: every case a clear ConfigError."""
import struct

import pytest

from dpdkvirtio import packets, pcapfile
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


def _pcapng(*blocks, linktype=1):
    shb = pcapfile.section_header("test")
    idb = pcapfile.interface_description("eth0", "test", 65535, linktype)
    return shb + idb + b"".join(blocks)


def _epb(data: bytes, iface=0, length=None, ts_hi=0):
    body = struct.pack("<IIIII", iface, ts_hi, 1000, len(data), len(data)) + data
    body += b"\0" * (-len(data) % 4)
    n = 12 + len(body) if length is None else length
    return struct.pack("<II", 6, n) + body + struct.pack("<I", n)


def test_capture_reader_rejects_what_it_cannot_read(tmp_path):
    def read_frames(p):
        return pcapfile.read_ethernet(p).frames

    frame = packets.udp_frame(64)
    cases = {
        "short": (b"\xd4\xc3\xb2\xa1", "too short"),
        "pcapng-no-magic": (b"\x0a\x0d\x0d\x0a" + bytes(40), "bad byte-order magic"),
        "garbage": (b"GIF89a" + bytes(40), "neither a pcap nor a pcapng"),
        "raw-ip": (_pcap_header(linktype=101) + _record(frame),
                   "link type 101 \\(raw IP\\), which cannot be sent"),
        "empty": (_pcap_header(), "no packets"),
        "cut-record-header": (_pcap_header() + _record(frame) + b"\0" * 7,
                              "truncated: the record header after packet 1"),
        "cut-data": (_pcap_header() + _record(frame) + _record(frame)[:40],
                     "truncated: packet 1 has 24 of its 64 bytes"),
        "huge-record": (_pcap_header(snaplen=2048) + _record(frame, incl=1 << 30),
                        "corrupt: packet 0 claims"),
        "ng-raw-ip": (_pcapng(_epb(frame), linktype=101), "link type 101"),
        "ng-cut-block": (_pcapng(_epb(frame), _epb(frame)[:30]), "truncated: a block"),
        "ng-bad-trailer": (_pcapng(_epb(frame)[:-4] + b"\1\0\0\0"), "ends with length 1"),
        "ng-bad-length": (_pcapng(_epb(frame, length=13)), "claims a length of 13"),
        "ng-no-interface": (_pcapng(_epb(frame, iface=3)), "names interface 3"),
        "ng-empty": (_pcapng(), "no packets"),
        "ng-far-future": (_pcapng(_epb(frame, ts_hi=0x81000000)), "beyond the year 2262"),
    }
    for name, (blob, text) in cases.items():
        p = tmp_path / f"{name}.pcap"
        p.write_bytes(blob)
        with pytest.raises(ConfigError, match=text):
            read_frames(p)
    ok = tmp_path / "ok.pcap"
    ok.write_bytes(_pcap_header() + _record(frame) + _record(frame[:60]))
    assert read_frames(ok) == [frame, frame[:60]]
    ok.write_bytes(b"\xa1\xb2\xc3\xd4" + struct.pack(">HHiIII", 2, 4, 0, 0, 65535, 1)
                   + struct.pack(">IIII", 7, 5, 64, 64) + frame)      # big-endian
    assert read_frames(ok) == [frame]
    assert pcapfile.read(ok).timestamps_ns.tolist() == [7_000_005_000]
    ok.write_bytes(_pcapng(_epb(frame), _epb(frame[:61])))
    pk = pcapfile.read(ok)
    assert pk.frames == [frame, frame[:61]] and pk.timestamps_ns.tolist() == [1000, 1000]
    assert pk.interfaces[0].name == "eth0"


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


@pytest.mark.parametrize("text, want", [
    ("10mpps", ("pps", 10e6)), ("1.5 Mpps", ("pps", 1.5e6)), ("500kpps", ("pps", 500e3)),
    ("5gbps", ("bps", 5e9)), ("100 Mbps", ("bps", 100e6)), ("50%", ("percent", 50.0)),
    ("2e3pps", ("pps", 2000.0)), (1000, ("pps", 1000.0)), (2.5, ("pps", 2.5)),
])
def test_rate_strings(text, want):
    from dpdkvirtio.streams import parse_rate
    assert parse_rate(text) == want


@pytest.mark.parametrize("text, message", [
    ("10 parsecs", "not a number and a unit"), ("mpps", "not a number and a unit"),
    ("0mpps", "must be > 0"), ("-5pps", "not a number and a unit"), ("150%", "<= 100"),
    (True, "must be a number or a string"), ([1], "must be a number or a string"),
])
def test_bad_rate_strings(text, message):
    from dpdkvirtio.streams import parse_rate
    with pytest.raises(ConfigError, match=message):
        parse_rate(text)


def test_stream_rate_string_is_the_same_as_its_number():
    from dpdkvirtio.streams import Stream
    f = packets.udp_frame(64)
    assert Stream(f, rate="2mpps").pps_for() == Stream(f, pps=2e6).pps_for() == 2e6
    assert Stream(f, rate="1gbps").pps_for() == Stream(f, bps=1e9).pps_for()
    assert Stream(f, rate="10%", line_rate_bps=10e9).pps_for() == \
        Stream(f, percent=10, line_rate_bps=10e9).pps_for()
    with pytest.raises(ConfigError, match="give rate, or one of pps"):
        Stream(f, rate="1mpps", pps=5)
    with pytest.raises(ConfigError, match="percent needs line_rate_bps"):
        Stream(f, rate="50%")
