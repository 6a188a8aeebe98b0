"""Built-in throughput on real labs (issue 4, item 2), checked against iperf3 where it is installed.

One lab `single,3` per module, named `t` + 6 hex digits and always taken down: h1 -> h2 is an unshaped veth path;
h3's eth0 is shaped with `tc ... tbf rate 50mbit` (tbf exists on this kernel, netem does not), so h3 -> h2
runs at ~50 Mbit/s. Traffic flows only between lab namespaces.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import NSLAB_MAIN, REPO, ROOT_REASON, TESTS, is_root, lab_name

from nslab.errors import NotFoundError, UsageError
from nslab.lab import state as st
from nslab.lab.lab import Lab
from nslab.perf import PerfResult, parse_rate, parse_seconds, perf

kernel = pytest.mark.kernel
needs_root = pytest.mark.skipif(not is_root(), reason=ROOT_REASON)
needs_iperf3 = pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed "
                                                                         "(apt-get install -y iperf3)")
SHAPED = 50e6

# The `nslab lab perf` verb in a parser of its own (nslab.cli.lab wires it in later), errors mapped to
# exit codes as nslab.cli.main does.
# The real CLI entry point, in a child process (Ctrl-C and exit codes as users see them).
CLI = NSLAB_MAIN


def cli(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, REPO, TESTS, *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def perf_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("nslab-perf")]


# ---- pure parts --------------------------------------------------------------------------------------------
def test_parse_rate_and_seconds() -> None:
    assert parse_rate("100M") == 100e6
    assert parse_rate("1G") == 1e9
    assert parse_rate("1.5g") == 1.5e9
    assert parse_rate("500k") == 500e3
    assert parse_rate("200Mbit") == 200e6
    assert parse_rate("2000000") == 2e6
    for bad in ("fast", "10X", "-1M", "0", "1T0"):
        with pytest.raises(UsageError, match="invalid rate"):
            parse_rate(bad)
    assert parse_seconds("2.5") == 2.5
    for bad in ("0", "-1", "soon", "99999"):
        with pytest.raises(UsageError, match="invalid time"):
            parse_seconds(bad)


# ---- real lab -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if not is_root():
        pytest.skip(ROOT_REASON)
    name = lab_name()
    lab = Lab.topo("single", 3, name=name)
    try:
        lab.up()
        lab["h3"].run(["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "50mbit", "burst", "256kbit",
                       "latency", "50ms"], check=True, capture_output=True)
        for a in ("h1", "h3"):
            lab[a].run(["ping", "-c1", "-W2", "h2"], check=True, capture_output=True)
        yield lab
    finally:
        try:
            lab.down()
        finally:
            assert re.fullmatch(r"t[0-9a-f]{6}", name)
            for ns in (n for n in os.listdir("/run/netns") if n.startswith(f"{name}-")):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            st.remove(name)


def iperf3(lab: Lab, a: str, b: str, seconds: int = 2, udp_rate: str | None = None) -> dict[str, object]:
    """`iperf3 -s -1` in B, `iperf3 -c B -t S -J` in A; the client's JSON."""
    port = str(5201 + secrets.randbelow(1000))
    server = lab[b].popen(["iperf3", "-s", "-1", "-p", port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        cmd = ["iperf3", "-c", b, "-p", port, "-t", str(seconds), "-J"]
        if udp_rate:
            cmd += ["-u", "-b", udp_rate]
        out = lab[a].run(cmd, capture_output=True, text=True, timeout=seconds + 20)
        assert out.returncode == 0, out.stdout + out.stderr
        data: dict[str, object] = json.loads(out.stdout)
        return data
    finally:
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def iperf3_tcp_bps(data: dict[str, object]) -> float:
    end = data["end"]
    assert isinstance(end, dict)
    return float(end["sum_received"]["bits_per_second"])


@kernel
@needs_root
@needs_iperf3
def test_tcp_against_iperf3_unshaped(lab: Lab) -> None:
    ours = perf(lab, "h1", "h2", seconds=2.0)
    theirs = iperf3_tcp_bps(iperf3(lab, "h1", "h2", 2))
    ratio = ours.bits_per_second / theirs
    print(f"\nTCP h1->h2 unshaped: nslab {ours.bits_per_second / 1e9:.2f} Gbit/s, "
          f"iperf3 {theirs / 1e9:.2f} Gbit/s, ratio {ratio:.2f}")
    assert ours.protocol == "tcp" and ours.address == "10.0.0.2"
    assert 1.8 < ours.seconds < 2.5 and ours.bytes > 0
    assert ratio > 0.1
    assert perf_threads() == []


@kernel
@needs_root
@needs_iperf3
def test_tcp_shaped_link_both_measure_50mbit(lab: Lab) -> None:
    ours = perf(lab, "h3", "h2", seconds=2.0)
    theirs = iperf3_tcp_bps(iperf3(lab, "h3", "h2", 2))
    print(f"\nTCP h3->h2 over tbf 50mbit: nslab {ours.bits_per_second / 1e6:.1f} Mbit/s, "
          f"iperf3 {theirs / 1e6:.1f} Mbit/s")
    for bps in (ours.bits_per_second, theirs):
        assert abs(bps - SHAPED) / SHAPED < 0.15, bps


@kernel
@needs_root
def test_udp_unshaped_no_loss(lab: Lab) -> None:
    res = perf(lab, "h1", "h2", udp=True, seconds=1.5, rate="100M")
    print(f"\nUDP h1->h2 100M: {res.summary()}")
    assert res.protocol == "udp"
    assert res.packets_sent and res.packets_received == res.packets_sent
    assert res.loss_percent == 0.0 and res.out_of_order == 0
    assert res.jitter_ms is not None and 0 <= res.jitter_ms < 5
    assert abs(res.bits_per_second - 100e6) / 100e6 < 0.1
    assert perf_threads() == []


@kernel
@needs_root
def test_udp_over_shaped_link_loses(lab: Lab) -> None:
    res = perf(lab, "h3", "h2", udp=True, seconds=1.5, rate="200M")
    print(f"\nUDP h3->h2 200M over tbf 50mbit: {res.summary()}")
    assert res.loss_percent is not None and res.loss_percent > 50
    assert abs(res.bits_per_second - SHAPED) / SHAPED < 0.2
    assert res.sent_bits_per_second and res.sent_bits_per_second > 150e6


@kernel
@needs_root
@needs_iperf3
def test_udp_jitter_against_iperf3(lab: Lab) -> None:
    """Both report low loss and sub-millisecond-ish jitter at 50M on the unshaped path (a sanity check)."""
    res = perf(lab, "h1", "h2", udp=True, seconds=1.0, rate="50M")
    data = iperf3(lab, "h1", "h2", 1, udp_rate="50M")
    end = data["end"]
    assert isinstance(end, dict)
    theirs = end["sum"]
    print(f"\nUDP 50M jitter: nslab {res.jitter_ms:.4f} ms, iperf3 {theirs['jitter_ms']:.4f} ms; "
          f"loss nslab {res.loss_percent:.2f} %, iperf3 {theirs['lost_percent']:.2f} %")
    assert res.loss_percent == 0.0
    assert res.jitter_ms is not None and res.jitter_ms < 5 and float(theirs["jitter_ms"]) < 5


@kernel
@needs_root
def test_api_bad_input(lab: Lab) -> None:
    with pytest.raises(NotFoundError, match="has no node 'h9'"):
        perf(lab, "h1", "h9")
    with pytest.raises(UsageError, match="is a switch"):
        perf(lab, "h1", "s1")
    with pytest.raises(UsageError, match="same node"):
        perf(lab, "h1", "h1")
    with pytest.raises(UsageError, match="UDP only"):
        perf(lab, "h1", "h2", rate="10M")
    with pytest.raises(UsageError, match="invalid time"):
        perf(lab, "h1", "h2", seconds=0)


@kernel
@needs_root
def test_cli_json_and_text(lab: Lab) -> None:
    res = cli(["lab", "perf", lab.name, "h1", "h2", "--udp", "--time", "0.5", "--rate", "20M", "--json"])
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(PerfResult("tcp", "a", "b", "x", 0.0, 0, 0.0).to_json()) == set(data)
    assert data["protocol"] == "udp" and data["client"] == "h1" and data["server"] == "h2"
    assert data["loss_percent"] == 0.0 and data["bits_per_second"] > 15e6
    res = cli(["lab", "perf", lab.name, "h1", "h2", "-t", "0.5"])
    assert res.returncode == 0, res.stderr
    assert re.fullmatch(r"h1 -> h2 \(10\.0\.0\.2\) TCP: [\d.]+ [GMk]bit/s \(\d+ bytes in 0\.\d+ s\)\n", res.stdout)


@kernel
@needs_root
def test_cli_bad_input_exit_2(lab: Lab) -> None:
    cases = [
        (["lab", "perf", "tnosuch", "h1", "h2"], "no lab named 'tnosuch'"),
        (["lab", "perf", lab.name, "h1", "h9"], "has no node 'h9'"),
        (["lab", "perf", lab.name, "h1", "h2", "--udp", "--rate", "fast"], "invalid rate 'fast'"),
        (["lab", "perf", lab.name, "h1", "h2", "--time", "0"], "invalid time '0'"),
        (["lab", "perf", lab.name, "h1", "h2", "--rate", "10M"], "UDP only"),
    ]
    for argv, message in cases:
        res = cli(argv)
        assert res.returncode == 2, (argv, res.stderr)
        assert message in res.stderr and "hint:" in res.stderr, (argv, res.stderr)
