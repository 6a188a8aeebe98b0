"""Built-in throughput on real labs checked against iperf3 (the oracle) where it is installed: TCP unshaped and
shaped, UDP jitter, intervals with -R/-P on a tbf link (issue 4, item 2).

One lab `single,3` per module, named `t` + 6 hex digits and always taken down: h1 -> h2 is an unshaped veth path;
h3's eth0 is shaped with `tc ... tbf rate 50mbit` (tbf exists on this kernel, netem does not), so h3 -> h2
runs at ~50 Mbit/s. Traffic flows only between lab namespaces."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time

import pytest

from nslab.lab.lab import Lab
from nslab.perf import PerfResult, perf

from .labkit import LabFactory, perf_lab
from .test_perf import SHAPED, kernel, needs_root, perf_threads

needs_iperf3 = pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed "
                                                                         "(apt-get install -y iperf3)")



# ---- real lab -------------------------------------------------------------------------------------------------


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


@pytest.fixture(scope="module")
def lab(module_labs: LabFactory) -> Lab:
    return perf_lab(module_labs)


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


