"""Probes inside namespaces this file creates itself (root): what the kernel answers with lo down and for each
route type, the seed walkthrough's listener, -n before and after the object. No traffic leaves them."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator

import pytest
from system.test_probe import wait_for
from unit.test_probe import LO, cli

from nslab import probe

# -------------------------------------------------------------------------------------------- TCP listen


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a network namespace")
    name = f"nslabt-probe-{uuid.uuid4().hex[:8]}"
    _ip("netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.mark.kernel
def test_lo_down_gives_enetunreach_for_ipv4_and_eaddrnotavail_for_ipv6(netns: str) -> None:
    res = probe.connect(LO, 8900, timeout=1, netns=netns)
    assert not res.ok and res.errno == errno.ENETUNREACH and res.reason == "network is unreachable"
    assert res.elapsed_ms < 500  # at once, not a timeout
    assert res.hint and f"nslab -n {netns} link set lo up" in res.hint
    res6 = probe.connect("::1", 8900, timeout=1, netns=netns)
    assert not res6.ok and res6.errno == errno.EADDRNOTAVAIL
    udp = probe.connect(LO, 8900, udp=True, timeout=1, netns=netns)
    assert not udp.ok and udp.errno == errno.ENETUNREACH
    with pytest.raises(probe.ProbeFailed, match="unreachable: network is unreachable"):
        probe.http("http://localhost:8900/", netns=netns)


@pytest.mark.kernel
def test_seed_walkthrough_listener_in_namespace(netns: str) -> None:
    """The post: a server listens in the new namespace, but nothing gets through until lo is up."""
    lines: list[str] = []
    ready, stop = threading.Event(), threading.Event()
    t = threading.Thread(
        target=probe.listen,
        args=(0,),
        kwargs={"out": lines.append, "ready": ready, "stop": stop, "answer_http": True, "netns": netns},
    )
    t.start()
    try:
        assert ready.wait(3)
        port = int(lines[0].split()[-1])
        assert lines[0] == f"Listening on 0.0.0.0 {port}"
        assert probe.connect(LO, port, timeout=1, netns=netns).reason == "network is unreachable"
        _ip("-n", netns, "link", "set", "lo", "up")
        res = probe.http(f"http://localhost:{port}/", netns=netns)
        assert res.status == 200
        wait_for(lambda: "User-Agent: nslab/0.1" in lines)
        assert lines[1].startswith("Connection from 127.0.0.1:")
        assert "GET / HTTP/1.1" in lines
    finally:
        stop.set()
        t.join(3)


@pytest.mark.kernel
def test_route_types_give_their_errno(netns: str) -> None:
    _ip("-n", netns, "link", "set", "lo", "up")
    _ip("-n", netns, "route", "add", "unreachable", "10.99.0.1/32")
    _ip("-n", netns, "route", "add", "prohibit", "10.99.0.2/32")
    closed = probe.connect(LO, 8900, timeout=1, netns=netns)
    assert closed.errno == errno.ECONNREFUSED and closed.reason == "connection refused"
    unreach = probe.connect("10.99.0.1", 8900, timeout=1, netns=netns)
    assert unreach.errno == errno.EHOSTUNREACH and unreach.reason == "no route to host"
    prohibit = probe.connect("10.99.0.2", 8900, timeout=1, netns=netns)
    assert prohibit.errno == errno.EACCES
    noroute = probe.connect("10.99.0.3", 8900, timeout=1, netns=netns)
    assert noroute.errno == errno.ENETUNREACH


@pytest.mark.kernel
def test_cli_netns_option_before_and_after_object(netns: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["-n", netns, "probe", "connect", LO, "8900"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nslab: 127.0.0.1:8900 unreachable: network is unreachable")
    assert cli(["probe", "connect", "-n", netns, LO, "8900", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["errno_name"] == "ENETUNREACH"


@pytest.mark.kernel
def test_cli_missing_namespace_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    name = f"nslabt-probe-missing-{uuid.uuid4().hex[:6]}"
    assert cli(["-n", name, "probe", "connect", LO, "8900"]) == 2
    assert "does not exist" in capsys.readouterr().err
