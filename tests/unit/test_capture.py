"""Capture's pure parts (issue 4, item 3): live-line decoding, the pcap writer's bytes, target and filter parsing.

The captures on real labs are in tests/kernel/test_capture.py and test_capture_oracle.py (tshark)."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from nslab.capture import PCAP_MAGIC_NS, Packet, PcapWriter, decode, parse_target
from nslab.errors import UsageError
from nslab.kernel.packet import compile_filter


# ---- pure parts (no root) -----------------------------------------------------------------------------
def eth(etype: int, payload: bytes) -> bytes:
    return bytes.fromhex("020000000002020000000001") + struct.pack("!H", etype) + payload


def ipv4(proto: int, body: bytes, src: str = "10.0.0.1", dst: str = "10.0.0.2") -> bytes:
    s = bytes(int(x) for x in src.split("."))
    d = bytes(int(x) for x in dst.split("."))
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, 64, proto, 0, s, d) + body


def test_decode_lines() -> None:
    syn = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
    assert decode(eth(0x0800, ipv4(6, syn))) == "10.0.0.1.40000 > 10.0.0.2.80: TCP [S] len 0"
    synack = struct.pack("!HHIIBBHHH", 80, 40000, 1, 2, 5 << 4, 0x12, 64240, 0, 0)
    assert decode(eth(0x0800, ipv4(6, synack, "10.0.0.2", "10.0.0.1"))) == (
        "10.0.0.2.80 > 10.0.0.1.40000: TCP [S.] len 0")
    push = struct.pack("!HHIIBBHHH", 40000, 80, 1, 2, 5 << 4, 0x18, 64240, 0, 0) + b"x" * 10
    assert decode(eth(0x0800, ipv4(6, push))).endswith("TCP [P.] len 10")
    udp = struct.pack("!HHHH", 5000, 53, 8 + 4, 0) + b"abcd"
    assert decode(eth(0x0800, ipv4(17, udp))) == "10.0.0.1.5000 > 10.0.0.2.53: UDP len 4"
    echo = struct.pack("!BBHHH", 8, 0, 0, 7, 3) + bytes(56)
    assert decode(eth(0x0800, ipv4(1, echo))) == "10.0.0.1 > 10.0.0.2: ICMP echo request id 7 seq 3 len 64"
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, bytes(6), bytes([10, 0, 0, 1]), bytes(6),
                      bytes([10, 0, 0, 2]))
    assert decode(eth(0x0806, arp)) == "ARP who-has 10.0.0.2 tell 10.0.0.1 len 28"
    ns_body = struct.pack("!BBHI", 135, 0, 0, 0) + bytes.fromhex("fd00" + "00" * 13 + "02")
    hbh = bytes([58, 0]) + bytes(6)  # a hop-by-hop header in front, as MLD and others carry
    v6 = struct.pack("!IHBB", 6 << 28, len(hbh) + len(ns_body), 0, 255) + bytes.fromhex(
        "fd00" + "00" * 13 + "01") + bytes.fromhex("ff02" + "00" * 13 + "01") + hbh + ns_body
    assert decode(eth(0x86DD, v6)) == "fd00::1 > ff02::1: ICMP6 neighbor solicitation who-has fd00::2 len 24"
    assert decode(eth(0x88CC, b"lldp")).endswith("ethertype 0x88cc len 18")
    assert decode(b"\x00" * 5) == "truncated frame len 5"
    pkt = Packet(1_700_000_000_123_456_789, eth(0x0800, ipv4(1, echo)), 98, False, "h1", "eth0")
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.123456 10\.0\.0\.1 > 10\.0\.0\.2: ICMP echo request .*", pkt.line())


def test_pcap_writer_format(tmp_path: Path) -> None:
    path = tmp_path / "a.pcap"
    with open(path, "wb") as f:
        w = PcapWriter(f, snaplen=100)
        w.write(1_700_000_000_000_000_123, b"\xaa" * 150, 150)
    raw = path.read_bytes()
    magic, major, minor, _zone, _sig, snaplen, linktype = struct.unpack_from("<IHHiIII", raw)
    assert (magic, major, minor, snaplen, linktype) == (PCAP_MAGIC_NS, 2, 4, 100, 1)
    assert struct.unpack_from("<IIII", raw, 24) == (1_700_000_000, 123, 100, 150)
    assert len(raw) == 24 + 16 + 100


def test_parse_target_and_filters() -> None:
    assert parse_target("h1") == ("h1", None)
    assert parse_target("s1:eth2") == ("s1", "eth2")
    for bad in ("", ":eth0", "h1:"):
        with pytest.raises(UsageError):
            parse_target(bad)
    prog = compile_filter("icmp")
    assert prog and all(len(i) == 4 for i in prog)
    with pytest.raises(UsageError, match=r"bad capture filter 'icmp and and'.*syntax error"):
        compile_filter("icmp and and")
    with pytest.raises(UsageError, match="bad capture filter 'port 99999999'"):
        compile_filter("port 99999999")


