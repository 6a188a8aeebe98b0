"""Capture on real labs (issue 4, item 3): live lines, stop, memory, bad input, counts across interfaces.

Every lab is named `t` + 6 hex digits and taken down by its fixture even when a test fails. Traffic flows only
between lab nodes (ping from one lab namespace to another), never from or to the root namespace. What tshark
reads back from the captures is in test_capture_oracle.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import NSLAB_MAIN, REPO, ROOT_REASON, TESTS, is_root

from nslab.capture import capture
from nslab.errors import NotFoundError, UsageError
from nslab.lab.lab import Lab

from .labkit import LabFactory, capture_lab

kernel = pytest.mark.kernel
needs_root = pytest.mark.skipif(not is_root(), reason=ROOT_REASON)
# The real CLI entry point, in a child process (Ctrl-C and exit codes as users see them).
CLI = NSLAB_MAIN


def cli_popen(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CLI, REPO, TESTS, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)


def cli(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, REPO, TESTS, *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def capture_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("nslab-capture")]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---- real labs ------------------------------------------------------------------------------------------




@pytest.fixture(scope="module")
def lab(module_labs: LabFactory) -> Lab:
    return capture_lab(module_labs)


def ping(lab: Lab, a: str, b: str, n: int = 3, *extra: str) -> None:
    # -W: how long ping waits for a late reply (it exits as soon as all are in): bounded, generous under load.
    out = lab[a].run(["ping", "-c", str(n), "-i", "0.05", "-W", "10", *extra, b], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


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


@kernel
@needs_root
def test_count_is_for_all_interfaces_together(lab: Lab) -> None:
    with capture(lab, "h1", more=["h3"], count=5, filter="icmp") as cap:
        ping(lab, "h1", "h3", 3)  # h1 and h3 each see 6: the count stops the pair at 5
        assert cap.wait(5)
    assert cap.count == 5 and sum(cap.counts.values()) == 5 and not cap.running
    assert capture_threads() == []


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
