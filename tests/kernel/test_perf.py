"""Built-in throughput on real labs (issue 4, item 2): UDP loss and shaping, bad input, the CLI's JSON and text,
intervals, and a lossy link that still ends on time. The iperf3 comparisons are in test_perf_oracle.py.

One lab `single,3` per module, named `t` + 6 hex digits and always taken down: h1 -> h2 is an unshaped veth path;
h3's eth0 is shaped with `tc ... tbf rate 50mbit` (tbf exists on this kernel, netem does not), so h3 -> h2
runs at ~50 Mbit/s. Traffic flows only between lab namespaces."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import pytest
from conftest import NSLAB_MAIN, REPO, ROOT_REASON, TESTS, is_root

from nslab import faults
from nslab import perf as perf_mod
from nslab.errors import NotFoundError, UsageError
from nslab.lab.lab import Lab
from nslab.perf import PerfResult, perf

from .labkit import LabFactory, perf_lab

kernel = pytest.mark.kernel
needs_root = pytest.mark.skipif(not is_root(), reason=ROOT_REASON)
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


# ---- real lab -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(module_labs: LabFactory) -> Lab:
    return perf_lab(module_labs)


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
