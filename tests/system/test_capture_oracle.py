"""The pcapng writer's files read back by tshark (the oracle), without root; captures on real labs are in
tests/kernel/test_capture*.py."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from unit.test_capture import eth, ipv4

from nslab.capture import PcapngWriter

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed "
                                                                         "(apt-get install -y tshark)")

def tshark(path: Path, *fields: str, display: str | None = None) -> list[list[str]]:
    cmd = ["tshark", "-r", str(path), "-T", "fields", *[a for f in fields for a in ("-e", f)]]
    if display:
        cmd += ["-Y", display]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"tshark could not read {path}: {out.stderr}"
    return [line.split("\t") for line in out.stdout.splitlines()]


# ---- pure parts (no root) -----------------------------------------------------------------------------




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


