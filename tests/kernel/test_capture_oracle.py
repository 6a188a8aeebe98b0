"""Capture on real labs checked by tshark (the oracle): pcap files of a ping, filters, switch ports, a whole
link into one pcapng, `-w -` into tshark's stdin (issue 4, item 3).

Every lab is named `t` + 6 hex digits and taken down by its fixture even when a test fails. Traffic flows only
between lab nodes (ping from one lab namespace to another), never from or to the root namespace."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, TESTS
from system.test_capture_oracle import needs_tshark, tshark

from nslab.capture import capture, link_points
from nslab.errors import UsageError
from nslab.lab.lab import Lab
from nslab.testing import wait_until

from .labkit import LabFactory, capture_lab
from .test_capture import CLI, cli_popen, kernel, needs_root, ping

# The real CLI entry point, in a child process (Ctrl-C and exit codes as users see them).






# ---- real labs ------------------------------------------------------------------------------------------






@pytest.fixture(scope="module")
def lab(module_labs: LabFactory) -> Lab:
    return capture_lab(module_labs)


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


