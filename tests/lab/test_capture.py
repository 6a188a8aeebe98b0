"""Capture on real labs (issue 4, item 3): pcap files read back by tshark, filters, switch ports, stop, memory.

Every lab is named `t` + 6 hex digits and taken down by its fixture even when a test fails. Traffic flows only
between lab nodes (ping from one lab namespace to another), never from or to the root namespace.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import NSLAB_MAIN, REPO, ROOT_REASON, TESTS, is_root, lab_name

from nslab.capture import PCAP_MAGIC_NS, Packet, PcapngWriter, PcapWriter, capture, decode, link_points, parse_target
from nslab.errors import NotFoundError, UsageError
from nslab.kernel.packet import compile_filter
from nslab.lab import state as st
from nslab.lab.lab import Lab
from nslab.testing import wait_until

kernel = pytest.mark.kernel
needs_root = pytest.mark.skipif(not is_root(), reason=ROOT_REASON)
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed "
                                                                         "(apt-get install -y tshark)")

# The real CLI entry point, in a child process (Ctrl-C and exit codes as users see them).
CLI = NSLAB_MAIN


def cli_popen(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CLI, REPO, TESTS, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)


def cli(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, REPO, TESTS, *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def tshark(path: Path, *fields: str, display: str | None = None) -> list[list[str]]:
    cmd = ["tshark", "-r", str(path), "-T", "fields", *[a for f in fields for a in ("-e", f)]]
    if display:
        cmd += ["-Y", display]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"tshark could not read {path}: {out.stderr}"
    return [line.split("\t") for line in out.stdout.splitlines()]


def capture_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("nslab-capture")]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


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


@needs_tshark
def test_pcapng_writer_read_by_tshark(tmp_path: Path) -> None:
    """One IDB per interface with its name and description, nanosecond stamps, EPBs with direction flags."""
    path = tmp_path / "a.pcapng"
    frame = eth(0x0800, ipv4(1, struct.pack("!BBHHH", 8, 0, 0, 7, 1) + bytes(56)))
    with open(path, "wb") as f:
        w = PcapngWriter(f, snaplen=64)
        a, b = w.add_interface("h1:eth0", "eth0 of node h1"), w.add_interface("s1:eth1", "eth1 of node s1")
        w.write(1_700_000_000_123_456_789, frame, len(frame), a, True)
        w.write(1_700_000_001_000_000_001, frame, len(frame), b, False)
        w.write(1_700_000_002_000_000_000, frame + bytes(3), len(frame) + 3, b)
    rows = tshark(path, "frame.interface_id", "frame.interface_name", "frame.interface_description",
                  "frame.time_epoch", "frame.len", "frame.cap_len", "frame.packet_flags_direction", "ip.dst")
    assert rows == [
        ["0", "h1:eth0", "eth0 of node h1", "1700000000.123456789", "98", "64", "0x00000002", "10.0.0.2"],
        ["1", "s1:eth1", "eth1 of node s1", "1700000001.000000001", "98", "64", "0x00000001", "10.0.0.2"],
        ["1", "s1:eth1", "eth1 of node s1", "1700000002.000000000", "101", "64", "", "10.0.0.2"],
    ]


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


# ---- real labs ------------------------------------------------------------------------------------------
def _take_down(lab: Lab) -> None:
    """`down`, then (last resort) delete what is left by exact name: our random lab names only."""
    try:
        lab.down()
    finally:
        assert re.fullmatch(r"t[0-9a-f]{6}", lab.name)
        for ns in (n for n in os.listdir("/run/netns") if n.startswith(f"{lab.name}-")):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        st.remove(lab.name)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if not is_root():
        pytest.skip(ROOT_REASON)
    name = lab_name()
    lab = Lab.topo("single", 3, name=name)
    try:
        lab.up()
        # Neighbours known and the IPv6 addresses settled: later captures see only the traffic a test makes.
        for a, b in (("h1", "h2"), ("h1", "h3"), ("h2", "h3")):
            lab[a].run(["ping", "-c1", "-W2", b], capture_output=True, check=True)
        yield lab
    finally:
        _take_down(lab)
        assert not [n for n in os.listdir("/run/netns") if n.startswith(f"{name}-")]


def ping(lab: Lab, a: str, b: str, n: int = 3, *extra: str) -> None:
    # -W: how long ping waits for a late reply (it exits as soon as all are in): bounded, generous under load.
    out = lab[a].run(["ping", "-c", str(n), "-i", "0.05", "-W", "10", *extra, b], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@kernel
@needs_root
@needs_tshark
def test_pcap_of_ping_read_by_tshark(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "h1.pcap"
    with capture(lab, "h1", write=str(path)) as cap:
        assert cap.iface == "eth0"
        ping(lab, "h1", "h2", 3)
        time.sleep(0.1)
    assert cap.count >= 6 and cap.drops == 0
    frames = tshark(path, "frame.number")
    assert len(frames) == cap.count  # tshark reads every record we wrote
    icmp = tshark(path, "ip.src", "ip.dst", "icmp.type", "frame.len", display="icmp")
    assert sorted(tuple(r) for r in icmp) == sorted(
        [("10.0.0.1", "10.0.0.2", "8", "98")] * 3 + [("10.0.0.2", "10.0.0.1", "0", "98")] * 3)
    stamps = [float(r[0]) for r in tshark(path, "frame.time_epoch", display="icmp")]
    assert stamps == sorted(stamps) and abs(stamps[0] - time.time()) < 30  # kernel timestamps, in order


@kernel
@needs_root
@needs_tshark
def test_filter_keeps_only_icmp(lab: Lab, tmp_path: Path) -> None:
    icmp_path, all_path = tmp_path / "icmp.pcap", tmp_path / "all.pcap"
    h2_v6 = next(a.split("/")[0] for a in lab["h2"].addresses if ":" in a)
    with capture(lab, "h1:eth0", filter="icmp", write=str(icmp_path)) as only, \
            capture(lab, "h1:eth0", write=str(all_path), keep=True) as every:
        lab["h1"].run(["ip", "neigh", "flush", "dev", "eth0"], check=True)  # ARP again
        ping(lab, "h1", "h2", 2)
        ping(lab, "h1", h2_v6, 2)  # ICMPv6: not "icmp"

        # Leaving the block stops the readers at once, and what the kernel has queued for them but they have
        # not read yet is not written: wait (bounded) until both have read what the pings made, not a fixed
        # sleep that a busy machine outlasts.
        def read_all() -> bool:
            lines = [p.line() for p in list(every.packets)]
            return (only.count >= 4 and any(" ARP " in ln for ln in lines)
                    and sum(" ICMP6 echo " in ln for ln in lines) >= 4)

        wait_until(read_all, timeout=20, interval=0.02, message=lambda: f"icmp capture read {only.count} of 4, "
                   f"the full one {every.count}: {[p.line() for p in list(every.packets)]}")
    protos = {r[0] for r in tshark(all_path, "frame.protocols")}
    assert any("arp" in p for p in protos) and any("icmpv6" in p for p in protos)
    rows = tshark(icmp_path, "frame.protocols", "ip.src", "ip.dst")
    assert len(rows) == only.count == 4, rows
    assert all(r[0] == "eth:ethertype:ip:icmp:data" for r in rows), rows
    assert every.count > only.count


@kernel
@needs_root
@needs_tshark
def test_switch_port_sees_the_hosts_traffic(lab: Lab, tmp_path: Path) -> None:
    # s1's port to h1 is the peer of h1:eth0 (plan order); a count ends the capture by itself.
    port = next(lk.b.ifname for lk in lab.plan.links if lk.a.node == "h1" and lk.b.node == "s1")
    path = tmp_path / "port.pcap"
    with capture(lab, f"s1:{port}", count=4, filter="icmp", write=str(path)) as cap:
        ping(lab, "h1", "h3", 2)
        assert cap.wait(5), "count reached: the capture ends by itself"
        assert not cap.running
    rows = tshark(path, "ip.src", "ip.dst", "icmp.type")
    assert sorted(tuple(r) for r in rows) == sorted([("10.0.0.1", "10.0.0.3", "8")] * 2 +
                                                    [("10.0.0.3", "10.0.0.1", "0")] * 2)
    # the other port (to h2) does not see h1 <-> h3 unicast
    other = next(lk.b.ifname for lk in lab.plan.links if lk.a.node == "h2" and lk.b.node == "s1")
    with capture(lab, "s1", other, filter="icmp") as quiet:
        ping(lab, "h1", "h3", 2)
        time.sleep(0.1)
    assert quiet.count == 0


@kernel
@needs_root
def test_live_iteration_and_stop_leave_nothing(lab: Lab) -> None:
    fds = open_fds()
    lines = []
    with capture(lab, "h2", count=4, filter="icmp") as cap:
        pinger = lab["h2"].popen(["ping", "-c2", "-i0.05", "h1"], stdout=subprocess.DEVNULL)
        for pkt in cap:
            lines.append(pkt.line())
        pinger.wait(10)
    assert len(lines) == 4
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{6} 10\.0\.0\.2 > 10\.0\.0\.1: ICMP echo request id \d+ seq 1 len 64",
                        lines[0]), lines
    # A capture that sees nothing, stopped from another thread while the main thread iterates.
    idle = capture(lab, "h3", filter="tcp port 9")
    threading.Timer(0.3, idle.stop).start()
    t0 = time.monotonic()
    assert list(idle) == []
    assert time.monotonic() - t0 < 3
    idle.stop()
    assert capture_threads() == []
    assert open_fds() == fds, "the packet socket and the wake-up pipe are closed"


@kernel
@needs_root
def test_long_capture_memory_is_bounded(lab: Lab, tmp_path: Path) -> None:
    """20 000 packets streamed to a file and through the iterator: RSS must not grow with the count."""
    path = tmp_path / "big.pcap"
    before = rss_kib()
    seen = 0
    with capture(lab, "h1", count=20000, filter="icmp", write=str(path)) as cap:
        # a flood ping for as long as it takes (the capture may lose some: counted as kernel drops)
        flood = lab["h1"].popen(["ping", "-f", "-q", "-w", "60", "h2"], stdout=subprocess.DEVNULL)
        try:
            for _ in cap:
                seen += 1
        finally:
            flood.terminate()
            flood.wait(10)
    grown = rss_kib() - before
    # iteration began just after the capture: it sees all but the first few packets
    assert cap.count == 20000 and 15000 < seen + cap.queue_drops <= 20000
    assert cap.packets == []  # nothing kept unless asked
    assert path.stat().st_size >= 24 + 20000 * (16 + 98)
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB over 20000 packets"
    print(f"memory: RSS grew {grown} KiB over 20000 packets ({cap.drops} kernel drops)")


@kernel
@needs_root
def test_api_bad_input(lab: Lab) -> None:
    with pytest.raises(NotFoundError, match="has no interface 'eth9'"):
        capture(lab, "h1:eth9")
    with pytest.raises(NotFoundError, match="has no node 'h9'"):
        capture(lab, "h9")
    with pytest.raises(UsageError, match="bad capture filter"):
        capture(lab, "h1", filter="icmp and (")
    with pytest.raises(UsageError, match="count"):
        capture(lab, "h1", count=0)
    assert capture(lab, "s1", "br0").iface == "br0"  # the switch's bridge itself


# ---- the CLI ----------------------------------------------------------------------------------------------
@kernel
@needs_root
@needs_tshark
def test_cli_count_live_and_write(lab: Lab, tmp_path: Path) -> None:
    proc = cli_popen(["lab", "capture", lab.name, "h3", "--count", "2", "--filter", "icmp"])
    assert proc.stderr is not None and proc.stderr.readline().startswith("capturing on")  # its socket is open
    ping(lab, "h3", "h1", 1)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and "10.0.0.3 > 10.0.0.1: ICMP echo request" in lines[0], out
    assert "10.0.0.1 > 10.0.0.3: ICMP echo reply" in lines[1]
    assert "2 packets captured on h3:eth0" in err

    path = tmp_path / "cli.pcap"
    proc = cli_popen(["lab", "capture", lab.name, "h3:eth0", "-w", str(path)])
    assert proc.stderr is not None and proc.stderr.readline().startswith("capturing on")
    ping(lab, "h3", "h2", 2)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: stops cleanly, the file is complete, exit 0
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out == ""
    assert re.search(r"\d+ packets captured on h3:eth0", err), err
    assert len(tshark(path, "frame.number", display="icmp")) == 4


@kernel
@needs_root
def test_cli_bad_input_exit_2(lab: Lab) -> None:
    cases = [
        (["lab", "capture", "tnosuch", "h1"], "no lab named 'tnosuch'"),
        (["lab", "capture", lab.name, "h9"], "has no node 'h9'"),
        (["lab", "capture", lab.name, "h1:eth7"], "has no interface 'eth7'"),
        (["lab", "capture", lab.name, "h1", "--filter", "icmp and and"], "bad capture filter"),
        (["lab", "capture", lab.name, "h1", "--count", "x"], "invalid --count 'x'"),
        (["lab", "capture", lab.name, "h1:"], "bad capture point"),
    ]
    for argv, message in cases:
        res = cli(argv)
        assert res.returncode == 2, (argv, res.stderr)
        assert message in res.stderr and "hint:" in res.stderr, (argv, res.stderr)


# ---- several interfaces, one pcapng; pcap on standard output ------------------------------------------------
def per_interface(rows: list[list[str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[0]] = counts.get(r[0], 0) + 1
    return counts


def port_to(lab: Lab, node: str) -> str:
    return next(lk.b.ifname for lk in lab.plan.links if lk.a.node == node and lk.b.node == "s1")


@kernel
@needs_root
@needs_tshark
def test_whole_link_into_one_pcapng(lab: Lab, tmp_path: Path) -> None:
    """Both ends of h1-s1 and h2's end of its link: one pcapng, one interface record each (tshark names them)."""
    points = link_points(lab, "h1", "s1")
    assert points == ["h1:eth0", f"s1:{port_to(lab, 'h1')}"]
    path = tmp_path / "link.pcapng"
    with capture(lab, points[0], more=[points[1], "h2"], filter="icmp", write=str(path)) as cap:
        assert cap.pcapng
        ping(lab, "h1", "h2", 3)
        time.sleep(0.2)
    names = ["h1:eth0", f"s1:{port_to(lab, 'h1')}", "h2:eth0"]
    assert cap.counts == dict.fromkeys(names, 6) and cap.count == 18
    rows = tshark(path, "frame.interface_name", "frame.interface_description", "ip.src", "icmp.type",
                  "frame.packet_flags_direction")
    assert per_interface(rows) == dict.fromkeys(names, 6)
    for r in rows:
        node, iface = r[0].split(":")
        assert r[1] == f"{iface} of node {node} in lab {lab.name} (netns {lab.plan.node(node).netns})"
        # the kernel's direction: h1 sends the requests, s1's port to h1 receives them, h2 receives them
        request = r[3] == "8"
        assert r[4] == ("0x00000002" if (node == "h1") == request else "0x00000001"), r
    assert sorted((r[0], r[2], r[3]) for r in rows if r[0] == "h2:eth0") == sorted(
        [("h2:eth0", "10.0.0.1", "8")] * 3 + [("h2:eth0", "10.0.0.2", "0")] * 3)
    with pytest.raises(UsageError, match="given twice"):
        capture(lab, "h1", more=["h1:eth0"])
    with pytest.raises(UsageError, match="no link between 'h1' and 'h2'"):
        link_points(lab, "h1", "h2")


@kernel
@needs_root
def test_count_is_for_all_interfaces_together(lab: Lab) -> None:
    with capture(lab, "h1", more=["h3"], count=5, filter="icmp") as cap:
        ping(lab, "h1", "h3", 3)  # h1 and h3 each see 6: the count stops the pair at 5
        assert cap.wait(5)
    assert cap.count == 5 and sum(cap.counts.values()) == 5 and not cap.running
    assert capture_threads() == []


def tshark_stdin(src: subprocess.Popen[str] | subprocess.Popen[bytes], *args: str) -> subprocess.Popen[str]:
    assert src.stdout is not None
    return subprocess.Popen(["tshark", "-r", "-", *args], stdin=src.stdout, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@kernel
@needs_root
@needs_tshark
def test_cli_write_stdout_into_tshark(lab: Lab) -> None:
    """`lab capture ... -w - | tshark -r -`: classic pcap for one interface, pcapng for a link's two ends."""
    for argv, expect in (
        (["h3"], {"": 4}),
        (["--link", "h3", "s1"], {"h3:eth0": 4, f"s1:{port_to(lab, 'h3')}": 4}),
    ):
        cap = subprocess.Popen([sys.executable, "-c", CLI, REPO, TESTS, "lab", "capture", lab.name, *argv, "-f",
                                "icmp", "-w", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
        reader = tshark_stdin(cap, "-T", "fields", "-e", "frame.interface_name", "-e", "icmp.type")
        assert cap.stdout is not None and cap.stderr is not None
        cap.stdout.close()  # tshark holds the pipe now
        first = cap.stderr.readline().decode()
        assert first.startswith("capturing on") and "writing standard output" in first, first
        ping(lab, "h3", "h1", 2)
        time.sleep(0.3)
        cap.send_signal(signal.SIGINT)
        err = cap.stderr.read().decode()
        assert cap.wait(20) == 0, err
        out, terr = reader.communicate(timeout=30)
        assert reader.returncode == 0, terr
        assert per_interface([line.split("\t") for line in out.splitlines()]) == expect, out
        assert f"{sum(expect.values())} packets captured" in err, err


@kernel
@needs_root
@needs_tshark
def test_cli_stdout_reader_going_away_ends_quietly(lab: Lab) -> None:
    """`-w - | tshark -r - -c 2`: tshark leaves after 2 packets; the capture sees the broken pipe at its next
    packet and ends with exit 0 and its summary, no traceback."""
    cap = subprocess.Popen([sys.executable, "-c", CLI, REPO, TESTS, "lab", "capture", lab.name, "h2", "-f", "icmp",
                            "-w", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    reader = tshark_stdin(cap, "-c", "2")
    assert cap.stdout is not None and cap.stderr is not None
    cap.stdout.close()
    assert cap.stderr.readline().decode().startswith("capturing on")
    pinger = lab["h2"].popen(["ping", "-c", "40", "-i", "0.05", "h1"], stdout=subprocess.DEVNULL)
    try:
        out, _ = reader.communicate(timeout=30)
        assert reader.returncode == 0 and len(out.splitlines()) == 2, out
        assert cap.wait(20) == 0
    finally:
        pinger.wait(20)
    err = cap.stderr.read().decode()
    assert "Traceback" not in err and "packets captured on h2:eth0" in err, err


@kernel
@needs_root
def test_cli_live_lines_name_their_interface(lab: Lab) -> None:
    proc = cli_popen(["lab", "capture", lab.name, "h1", "h2", "--count", "4", "--filter", "icmp"])
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("capturing on h1:eth0, h2:eth0 of lab ")
    ping(lab, "h1", "h2", 1)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert sorted(line.split(" ")[0] for line in lines) == ["h1:eth0", "h1:eth0", "h2:eth0", "h2:eth0"], out
    assert all(re.fullmatch(r"h[12]:eth0 \d\d:\d\d:\d\d\.\d{6} 10\.0\.0\.[12] > 10\.0\.0\.[12]: ICMP echo "
                            r"(request|reply) .*", line) for line in lines), out
    assert "4 packets captured on h1:eth0, h2:eth0 in " in err and "(h1:eth0 2, h2:eth0 2)" in err, err
