"""nslab.testing: the assertion helpers, on their passing and failing paths, and the words of their messages.

The lab (named `t` + 6 random hex digits) is taken down at the end even when a test fails; the only
traffic is between its namespaces, or inside one node's loopback.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import ROOT_REASON, is_root

from nslab.errors import NotFoundError, UsageError
from nslab.lab.lab import Lab
from nslab.services import forget, start
from nslab.testing import assert_port_open, assert_reachable, assert_unreachable, status_text

from .labkit import LabFactory

kernel = pytest.mark.kernel
needs_root = pytest.mark.skipif(not is_root(), reason=ROOT_REASON)


# ---- in the kernel -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(module_labs: LabFactory) -> Lab:
    return module_labs.add(Lab.from_topo_arg("single,3", name=module_labs.name()))


def ip(lab: Lab, node: str, *args: str) -> None:
    subprocess.run(["ip", "-n", lab[node].netns, *args], check=True, capture_output=True)


@kernel
@needs_root
def test_reachable(lab: Lab) -> None:
    assert_reachable(lab, "h1", "h3")
    assert_reachable(lab, "h3", "h1", timeout=1)
    assert_reachable(lab, "h1", "10.0.0.2")  # an address works too
    assert_reachable(lab, "h2", "fd00:6e73::1")


@kernel
@needs_root
def test_unreachable_fails_when_a_reply_comes(lab: Lab) -> None:
    t0 = time.monotonic()
    with pytest.raises(AssertionError) as ei:
        assert_unreachable(lab, "h1", "h2", within=1.0)
    assert time.monotonic() - t0 < 3
    msg = str(ei.value)
    assert msg.startswith(f"h1 reached h2 (10.0.0.2) in lab {lab.name!r}, which it should not: ")
    assert "64 bytes from 10.0.0.2" in msg


@kernel
@needs_root
def test_link_down_unreachable_and_reachable_fails(lab: Lab) -> None:
    ip(lab, "h3", "link", "set", "eth0", "down")
    try:
        t0 = time.monotonic()
        assert_unreachable(lab, "h1", "h3", within=1.0)
        assert time.monotonic() - t0 >= 1.0  # the whole window was watched
        t0 = time.monotonic()
        with pytest.raises(AssertionError) as ei:
            assert_reachable(lab, "h1", "h3", timeout=1.0)
        assert time.monotonic() - t0 < 4
        msg = str(ei.value)
        assert msg.startswith(f"h1 cannot reach h3 (10.0.0.3) in lab {lab.name!r}: no ping reply within 1 s (")
        assert "tries); last: " in msg
        # From the side whose link is down: no route at all, said at once.
        assert_unreachable(lab, "h3", "h1", within=0.5)
    finally:
        ip(lab, "h3", "link", "set", "eth0", "up")
    assert_reachable(lab, "h1", "h3")


@kernel
@needs_root
def test_port_open(lab: Lab) -> None:
    web = start(lab, "h2", "web", [sys.executable, "-m", "http.server", "8080"], ready_port=8080)
    try:
        assert_port_open(lab, "h2", 8080)
        assert_port_open(lab, "h2", 8080, from_node="h1")
        with pytest.raises(AssertionError) as ei:
            assert_port_open(lab, "h2", 8081, timeout=0.3)
        assert str(ei.value).startswith(
            f"port 8081 of h2 in lab {lab.name!r} is not open from inside h2 on 127.0.0.1 within 0.3 s (")
        assert str(ei.value).endswith("last: connection refused")
        with pytest.raises(AssertionError) as ei:
            assert_port_open(lab, "h2", 8081, from_node="h3", timeout=0.3)
        assert "is not open from h3 to h2 (10.0.0.2) within 0.3 s" in str(ei.value)
        # The service ends: the open port closes, and waiting for it to open again fails.
        web.stop()
        with pytest.raises(AssertionError, match="connection refused"):
            assert_port_open(lab, "h2", 8080, from_node="h1", timeout=0.3)
        # A port opening later is waited for.
        start(lab, "h2", "late", ["sh", "-c", f"sleep 0.5; exec {sys.executable} -m http.server 8082"])
        assert_port_open(lab, "h2", 8082, from_node="h1", timeout=5)
    finally:
        forget(lab.name)


@kernel
@needs_root
def test_bad_input_is_usage_error(lab: Lab) -> None:
    with pytest.raises(NotFoundError, match="has no node 'h9'"):
        assert_reachable(lab, "h1", "h9")
    with pytest.raises(NotFoundError, match="has no node 'h9'"):
        assert_unreachable(lab, "h9", "h1")
    with pytest.raises(NotFoundError, match="has no node 'h9'"):
        assert_port_open(lab, "h9", 80)
    with pytest.raises(UsageError, match="not a port number"):
        assert_port_open(lab, "h1", 0)
    with pytest.raises(UsageError, match="within"):
        assert_unreachable(lab, "h1", "h2", within=0)


@kernel
@needs_root
def test_status_text(lab: Lab) -> None:
    text = status_text(lab)
    assert f"h1 (host, netns {lab.name}-h1)" in text
    assert f"s1 (switch, netns {lab.name}-s1)" in text
    assert "inet 10.0.0.3/24" in text and "master br0" in text
