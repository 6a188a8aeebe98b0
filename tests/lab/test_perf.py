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

from nslab import faults
from nslab import perf as perf_mod
from nslab.errors import NotFoundError, UsageError
from nslab.lab import state as st
from nslab.lab.lab import Lab
from nslab.perf import PerfResult, _Clock, parse_interval, parse_rate, parse_seconds, parse_streams, perf

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


def test_intervals_interval_streams_parse() -> None:
    # iperf3 3.12 cuts -t 2 -i 0.5 in 4 intervals and -t 1 -i 0.3 in 4 (0.3 0.6 0.9 1.0), measured on a lab
    assert _Clock(2.0, 0.5).boundaries() == [0.5, 1.0, 1.5, 2.0]
    assert _Clock(1.0, 0.3).boundaries() == pytest.approx([0.3, 0.6, 0.9, 1.0])
    assert _Clock(1.0, 0.33).boundaries() == pytest.approx([0.33, 0.66, 1.0])  # a 0.01 s rest joins the last
    assert _Clock(1.0, None).boundaries() == [1.0]
    assert _Clock(0.5, 1.0).boundaries() == [0.5]
    assert parse_interval("0.5") == 0.5 and parse_streams("4") == 4 and parse_streams(128) == 128
    for bad in ("0", "0.01", "61", "x"):
        with pytest.raises(UsageError, match="invalid interval"):
            parse_interval(bad)
    for bad_n in ("0", "129", "-1", "2.5", "x", "", "\u0663"):
        with pytest.raises(UsageError, match="invalid number of streams"):
            parse_streams(bad_n)


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


def iperf3(lab: Lab, a: str, b: str, seconds: int = 2, udp_rate: str | None = None,
           extra: tuple[str, ...] = ()) -> dict[str, object]:
    """`iperf3 -s -1` in B, `iperf3 -c B -t S -J [EXTRA]` in A; the client's JSON."""
    port = str(5201 + secrets.randbelow(1000))
    server = lab[b].popen(["iperf3", "-s", "-1", "-p", port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        cmd = ["iperf3", "-c", b, "-p", port, "-t", str(seconds), "-J"]
        if udp_rate:
            cmd += ["-u", "-b", udp_rate]
        cmd += extra
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


def iperf3_intervals(data: dict[str, object]) -> list[dict[str, float]]:
    intervals = data["intervals"]
    assert isinstance(intervals, list)
    return [i["sum"] for i in intervals]


def assert_intervals_add_up(res: PerfResult, count: int) -> None:
    assert len(res.intervals) == count, res.intervals
    assert res.intervals[0].start == 0.0 and res.intervals[-1].end == pytest.approx(res.seconds, abs=1e-5)
    for x, y in zip(res.intervals, res.intervals[1:], strict=False):
        assert x.end == y.start
    assert sum(i.bytes for i in res.intervals) == res.bytes


@kernel
@needs_root
@needs_iperf3
def test_intervals_reverse_parallel_against_iperf3_on_tbf(lab: Lab) -> None:
    """-i, -R and -P over the tbf-shaped path, each next to iperf3 with the same options in the same run:
    totals within 15 % of each other (and of the shaped rate), the same number of intervals."""
    cases: list[tuple[str, str, dict[str, object], tuple[str, ...]]] = [
        ("h3", "h2", {"interval": 0.5}, ("-i", "0.5")),
        ("h2", "h3", {"interval": 0.5, "reverse": True}, ("-i", "0.5", "-R")),  # data h3 -> h2, over the tbf
        ("h3", "h2", {"interval": 0.5, "streams": 3}, ("-i", "0.5", "-P", "3")),
    ]
    for a, b, kw, opts in cases:
        ours = perf(lab, a, b, seconds=2.0, **kw)  # type: ignore[arg-type]
        theirs = iperf3(lab, a, b, 2, extra=opts)
        t_bps, t_iv = iperf3_tcp_bps(theirs), iperf3_intervals(theirs)
        print(f"\nTCP {a}->{b} {' '.join(opts)}: nslab {ours.bits_per_second / 1e6:.1f} Mbit/s in "
              f"{len(ours.intervals)} intervals, iperf3 {t_bps / 1e6:.1f} Mbit/s in {len(t_iv)} intervals")
        for line in ours.report().splitlines():
            print("   ", line)
        assert len(ours.intervals) == len(t_iv) == 4
        assert_intervals_add_up(ours, 4)
        assert abs(ours.bits_per_second - t_bps) / t_bps < 0.15
        assert abs(ours.bits_per_second - SHAPED) / SHAPED < 0.15
        for i in ours.intervals:  # every interval carries the shaped path's traffic, not one burst and silence
            assert 0.2 * SHAPED < i.bits_per_second < 2 * SHAPED, ours.report()  # (a loss releases a held queue)
        assert ours.reverse == bool(kw.get("reverse")) and ours.streams == kw.get("streams", 1)
        assert (ours.sender, ours.receiver) == ("h3", "h2")
    assert perf_threads() == []


@kernel
@needs_root
@needs_iperf3
def test_udp_intervals_against_iperf3(lab: Lab) -> None:
    ours = perf(lab, "h1", "h2", udp=True, seconds=1.0, rate="40M", interval=0.25)
    theirs = iperf3(lab, "h1", "h2", 1, udp_rate="40M", extra=("-i", "0.25"))
    t_iv = iperf3_intervals(theirs)
    print("\n" + ours.report())
    assert len(ours.intervals) == len(t_iv) == 4
    assert_intervals_add_up(ours, 4)
    assert sum(i.packets or 0 for i in ours.intervals) == ours.packets_received == ours.packets_sent
    assert all(i.lost == 0 and i.loss_percent == 0.0 and i.jitter_ms is not None for i in ours.intervals)
    t_bytes = sum(int(i["bytes"]) for i in t_iv)
    assert abs(ours.bytes - t_bytes) / t_bytes < 0.1, (ours.bytes, t_bytes)
    # reverse with 2 streams, 15M each: 30M B -> A, the rate applying per stream as iperf3's -b does
    rev = perf(lab, "h1", "h2", udp=True, seconds=1.0, rate="15M", reverse=True, streams=2, interval=0.5)
    print(rev.report())
    assert rev.sender == "h2" and rev.receiver == "h1" and rev.streams == 2
    assert rev.loss_percent == 0.0 and abs(rev.bits_per_second - 30e6) / 30e6 < 0.1
    assert_intervals_add_up(rev, 2)
    assert perf_threads() == []


@kernel
@needs_root
def test_lossy_link_ends_on_time(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """10 % loss both ways on h3's link (nft numgen, lab impair) behind the 50 Mbit/s tbf: every 1 s test ends
    with a result (not "timed out") whose measured length is 1 s, and the stop after the last sample takes no
    network time: what is queued on the slow, lossy path is reset, not drained (the old end took 2.5-5 s)."""
    stops: list[float] = []
    real_abort = perf_mod._abort

    def abort(sockets: list[object]) -> None:
        stops.append(time.monotonic())
        real_abort(sockets)  # type: ignore[arg-type]

    monkeypatch.setattr(perf_mod, "_abort", abort)
    faults.impair(lab, "h3", "s1", loss=10)
    try:
        for kw in ({}, {"streams": 4, "interval": 0.5}, {"reverse": True}, {"udp": True, "rate": "40M"}):
            stops.clear()
            res = perf(lab, "h3", "h2", seconds=1.0, **kw)  # type: ignore[arg-type]
            done = time.monotonic()
            print(f"\nlossy {kw}: {res.summary()}; stop took {done - stops[0]:.3f} s" if stops else res.summary())
            assert 0.95 <= res.seconds < 1.5  # UDP: the sender's own clock, started just after the main's
            if res.protocol == "tcp":
                assert len(stops) == 1 and done - stops[0] < 1.0
            else:
                assert res.loss_percent is not None and 3 < res.loss_percent < 30
    finally:
        faults.clear(lab, "h3", "s1")
    assert perf_threads() == []
    lab["h3"].run(["ping", "-c1", "-W2", "h2"], check=True, capture_output=True)


@kernel
@needs_root
def test_cli_intervals_reverse_parallel(lab: Lab) -> None:
    res = cli(["lab", "perf", lab.name, "h1", "h2", "-t", "1", "-i", "0.5", "-R", "-P", "2", "--json"])
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["reverse"] is True and data["streams"] == 2 and data["interval"] == 0.5
    iv = data["intervals"]
    assert len(iv) == 2 and iv[0]["start"] == 0.0 and iv[0]["end"] == iv[1]["start"]
    assert abs(iv[0]["end"] - 0.5) < 0.2 and iv[1]["end"] == pytest.approx(data["seconds"], abs=1e-5)
    assert sum(i["bytes"] for i in data["intervals"]) == data["bytes"] > 0
    res = cli(["lab", "perf", lab.name, "h1", "h2", "-u", "-r", "10M", "-t", "1", "-i", "0.5"])
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 3, res.stdout
    for line in lines[:2]:
        assert re.fullmatch(r" +0\.\d\d-[01]\.\d\d s +[\d.]+ Mbit/s +\d+ bytes  loss 0\.00 % \(0/\d+\)  "
                            r"jitter [\d.]+ ms", line), line
    assert lines[2].startswith("h1 -> h2 (10.0.0.2) UDP: ")
    for argv, message in ((["-P", "0"], "invalid number of streams"), (["-i", "0"], "invalid interval")):
        bad = cli(["lab", "perf", lab.name, "h1", "h2", *argv])
        assert bad.returncode == 2 and message in bad.stderr and "hint:" in bad.stderr, bad.stderr
