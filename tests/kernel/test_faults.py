"""Fault injection: MEASURED effects in real labs (root); the pure parsing and rendering are in
tests/unit/test_faults.py.

Kernel tests send traffic only between lab namespaces (sockets made with run_in_netns in the nodes), never
from or to the root namespace. Every lab is named `f` + 6 hex digits and taken down in a fixture, also when
the test fails; a module check asserts none of their namespaces or records survive."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from unit.test_faults import cli, multi_topo, topo

from nslab import faults as fl
from nslab.errors import FeatureMissing, UsageError
from nslab.lab.lab import Lab

from .labkit import LabFactory, new_lab_name, running

# ---- pure: parsing ----------------------------------------------------------------------------------------


# ---- pure: plan lookups and rendering ------------------------------------------------------------------------




# ---- the CLI parser (pure parts: no lab needed for bad forms) ------------------------------------------------


# ---- kernel: measured effects ----------------------------------------------------------------------------------
kernel = pytest.mark.kernel  # the project's marker: skipped without root (conftest), deselected by -m "not kernel"












@pytest.fixture(scope="module")
def lab(module_labs: LabFactory) -> Lab:
    return module_labs.add(Lab(topo(module_labs.name())))


@pytest.fixture
def clean(lab: Lab) -> Iterator[Lab]:
    """The shared lab, every fault removed after the test (even when it failed)."""
    try:
        yield lab
    finally:
        fl.clear_all(lab)


def ip4(lab: Lab, src: str, dst: str) -> str:
    """DST's IPv4 address on the direct link SRC-DST."""
    _, eb = fl.find_link(lab.plan, src, dst)
    return next(a.split("/")[0] for a in eb.addresses if "." in a)


def in_ns(lab: Lab, node: str, kind: int, bind: tuple[str, int] | None = None) -> socket.socket:
    from nslab.kernel.netns import run_in_netns

    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, kind)
        if bind:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.bind(bind)
        return s

    return run_in_netns(lab[node].netns, make)


def udp(lab: Lab, src: str, dst: str, n: int = 1000, port: int = 9000) -> tuple[int, int]:
    """Send N datagrams SRC -> DST (DST's address on their direct link); (received, sendto errors)."""
    addr = ip4(lab, src, dst)
    rx = in_ns(lab, dst, socket.SOCK_DGRAM, (addr, port))
    tx = in_ns(lab, src, socket.SOCK_DGRAM)
    got = [0]
    rx.settimeout(0.5)

    def receive() -> None:
        with contextlib.suppress(OSError):
            while True:
                rx.recv(2048)
                got[0] += 1

    th = threading.Thread(target=receive)
    th.start()
    errors = 0
    try:
        for i in range(n):
            try:
                tx.sendto(i.to_bytes(4, "big") * 25, (addr, port))
            except OSError:
                errors += 1
            if i % 20 == 19:
                time.sleep(0.0005)
        th.join()
    finally:
        rx.close()
        tx.close()
    return got[0], errors


def tcp_rate(lab: Lab, src: str, dst: str, seconds: float = 2.0, port: int = 9100) -> float:
    """Bulk TCP SRC -> DST for SECONDS; the receiver's goodput in bits/s (first to last byte)."""
    addr = ip4(lab, src, dst)
    srv = in_ns(lab, dst, socket.SOCK_STREAM, (addr, port))
    srv.listen(1)
    box: dict[str, float] = {}

    def receive() -> None:
        conn, _ = srv.accept()
        total, first, last = 0, 0.0, 0.0
        while data := conn.recv(1 << 16):
            now = time.perf_counter()
            if not first:
                first = now
            total += len(data)
            last = now
        conn.close()
        box["rate"] = total * 8 / (last - first)

    th = threading.Thread(target=receive)
    th.start()
    cl = in_ns(lab, src, socket.SOCK_STREAM)
    cl.connect((addr, port))
    chunk = b"x" * (1 << 16)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        cl.sendall(chunk)
    cl.close()
    th.join(30)
    srv.close()
    return box["rate"]


def snapshot(lab: Lab) -> dict[str, tuple[str, str]]:
    """Every node's full nft ruleset and `tc -j qdisc show` (to prove clear/heal restore them exactly)."""
    from nslab.kernel import nft

    out = {}
    for n in lab.plan.nodes:
        q = subprocess.run(["ip", "netns", "exec", n.netns, "tc", "-j", "qdisc", "show"], capture_output=True,
                           text=True).stdout
        out[n.name] = (nft.ruleset(n.netns), q)
    return out


@kernel
def test_loss_measured(clean: Lab) -> None:
    lab = clean
    assert udp(lab, "a", "b") == (1000, 0)
    before = snapshot(lab)
    fl.impair(lab, "a", "b", "A->B", loss="20%")
    fl.impair(lab, "a", "b", "A->B", loss="20%")  # idempotent
    got, errors = udp(lab, "a", "b", n=2000)
    loss = 100 * (2000 - got) / 2000
    print(f"loss a->b at 20%: measured {loss:.1f}% over 2000 datagrams, sendto errors {errors}")
    assert abs(loss - 20) <= 3 and errors == 0  # silent, as on a real network
    assert udp(lab, "b", "a") == (1000, 0)  # the other direction is untouched
    assert [f["fault"] for f in fl.faults(lab)] == ["impair"]
    fl.clear(lab, "a", "b")
    assert udp(lab, "a", "b") == (1000, 0)
    assert snapshot(lab) == before
    assert fl.faults(lab) == []


@kernel
def test_duplicate_measured(clean: Lab) -> None:
    lab = clean
    fl.impair(lab, "b", "c", "b->c", duplicate="10%")
    got, _ = udp(lab, "b", "c", n=2000)
    dup = 100 * (got - 2000) / 2000
    print(f"duplicate b->c at 10%: measured {dup:.1f}% over 2000 datagrams")
    assert abs(dup - 10) <= 3
    fl.impair(lab, "b", "c", "b->c", duplicate="100%")
    assert udp(lab, "b", "c", n=500) == (1000, 0)  # every packet exactly twice: a copy is never copied again
    fl.impair(lab, "b", "c", "b->c", duplicate=0)
    assert udp(lab, "b", "c") == (1000, 0)


@kernel
def test_rate_measured(clean: Lab) -> None:
    lab = clean
    before = snapshot(lab)
    fl.impair(lab, "a", "c", "A->B", rate="10mbit")
    rate = tcp_rate(lab, "a", "c")
    print(f"rate a->c at 10mbit: measured {rate / 1e6:.2f} Mbit/s (TCP, 2 s)")
    assert abs(rate - 10e6) <= 1e6
    back = tcp_rate(lab, "c", "a", seconds=0.5)
    assert back > 50e6  # the other direction is not limited
    fl.clear(lab, "a", "c")
    assert snapshot(lab) == before


@kernel
def test_partition_and_heal(clean: Lab) -> None:
    lab = clean
    before = snapshot(lab)
    fl.partition(lab, [["a"], ["b", "c"]])
    for src, dst in (("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")):
        got, errors = udp(lab, src, dst, n=500)
        assert (got, errors) == (0, 0), (src, dst)  # 100 % dropped, silently
    assert udp(lab, "b", "c", n=500) == (500, 0)  # inside a group: untouched
    fl.heal(lab)
    for src, dst in (("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")):
        assert udp(lab, src, dst, n=500) == (500, 0)
    assert snapshot(lab) == before


@kernel
def test_oneway_and_grudge(clean: Lab) -> None:
    lab = clean
    fl.partition_oneway(lab, "a", "b")
    assert udp(lab, "a", "b", n=300) == (0, 0)
    assert udp(lab, "b", "a", n=300) == (300, 0)
    fl.grudge(lab, {"c": ["b"]})
    assert udp(lab, "b", "c", n=300) == (0, 0)
    assert udp(lab, "c", "b", n=300) == (300, 0)
    assert {f["node"]: f["from"] for f in fl.faults(lab)} == {"b": ["a"], "c": ["b"]}
    fl.heal(lab)
    assert udp(lab, "a", "b", n=300) == (300, 0) and udp(lab, "b", "c", n=300) == (300, 0)


@kernel
def test_router_drops_transit_from_grudged(clean: Lab) -> None:
    """A router in a partition group also refuses to forward for the other side."""
    lab = clean
    c_via_r = ip4(lab, "r", "c")  # c's address on the r-c link: a reaches it through r
    got = lab["a"].run(["ping", "-c", "2", "-i", "0.2", "-W", "1", c_via_r], resolve=False, capture_output=True)
    assert got.returncode == 0
    fl.grudge(lab, {"r": ["a"]})
    got = lab["a"].run(["ping", "-c", "2", "-i", "0.2", "-W", "1", c_via_r], resolve=False, capture_output=True)
    assert got.returncode != 0
    fl.heal(lab)


@kernel
def test_link_down_up(clean: Lab) -> None:
    lab = clean
    fl.link_state(lab, "a", "b", up=False)
    fl.link_state(lab, "a", "b", up=False)  # idempotent
    _, eb = fl.find_link(lab.plan, "a", "b")
    assert "UP" not in lab["b"].namespace().rtnl.link(eb.ifname).flags
    got, _ = udp(lab, "a", "b", n=200)
    assert got == 0
    assert [f["fault"] for f in fl.faults(lab)] == ["link-down"]
    fl.link_state(lab, "a", "b", up=True)
    time.sleep(0.1)
    assert udp(lab, "a", "b", n=200) == (200, 0)


@kernel
def test_flap_ends_up(clean: Lab) -> None:
    lab = clean
    t0 = time.monotonic()
    fl.flap(lab, "a", "b", period=0.2, count=3)
    assert time.monotonic() - t0 >= 0.6
    assert fl.faults(lab) == []
    time.sleep(0.1)
    assert udp(lab, "a", "b", n=200) == (200, 0)


@kernel
def test_node_stop_start(clean: Lab) -> None:
    lab = clean
    proc = lab["b"].popen(["sleep", "60"], resolve=False)
    try:
        pids = fl.node_stop(lab, "b")
        assert proc.pid in pids

        def state() -> str:
            with open(f"/proc/{proc.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0]

        assert state() == "T"
        assert udp(lab, "a", "b", n=200)[0] == 0
        assert udp(lab, "c", "b", n=200)[0] == 0
        fl.node_start(lab, "b")
        assert state() in ("S", "R")
        time.sleep(0.1)
        assert udp(lab, "a", "b", n=200) == (200, 0)
    finally:
        proc.kill()
        proc.wait()


@kernel
def test_netem_missing_is_an_error_and_nothing_applied(clean: Lab) -> None:
    from nslab.kernel import tc

    lab = clean
    if tc.have_qdisc(lab["a"].netns, "netem"):
        pytest.skip("this kernel has netem: the missing-feature error cannot be shown here")
    before = snapshot(lab)
    for kw in ({"delay": "10ms"}, {"jitter": "5ms"}, {"reorder": "5%"}, {"corrupt": "1%"}):
        with pytest.raises(FeatureMissing) as e:
            fl.impair(lab, "a", "b", "both", loss="5%", **kw)
        assert e.value.exit_code == 1 and "netem" in e.value.message and next(iter(kw)) in e.value.message
    assert snapshot(lab) == before and fl.faults(lab) == []


@kernel
def test_cli_verbs_and_bad_input(clean: Lab) -> None:
    lab = clean
    name = lab.name
    assert cli("partition", name, "a", "b,c")[0] == 0
    assert udp(lab, "b", "a", n=200) == (0, 0)
    assert cli("heal", name)[0] == 0
    assert cli("impair", name, "a", "b", "--dir", "a->b", "--loss", "5%", "--rate", "100mbit")[0] == 0
    assert [f["loss"] for f in fl.faults(lab)] == [5.0]
    assert cli("impair", name, "a", "b", "--clear")[0] == 0
    assert cli("link", name, "a", "b", "down")[0] == 0
    assert cli("link", name, "a", "b", "up")[0] == 0
    assert cli("node", name, "c", "stop")[0] == 0
    assert cli("node", name, "c", "start")[0] == 0
    assert fl.faults(lab) == []
    for argv, words in [
        (("impair", name, "a", "zz", "--loss", "5%"), "no node 'zz'"),
        (("impair", name, "b", "r", "--loss", "5%"), "no link between"),
        (("impair", name, "a", "b", "--loss", "150%"), "outside 0-100"),
        (("impair", name, "a", "b", "--loss", "-1"), "outside 0-100"),
        (("impair", name, "a", "b", "--rate", "10 furlongs"), "invalid rate"),
        (("impair", name, "a", "b", "--rate", "10"), "invalid rate"),
        (("impair", name, "a", "b", "--dir", "a->c", "--loss", "1"), "invalid direction"),
        (("impair", name, "a", "b", "--clear", "--loss", "1"), "--clear"),
        (("impair", name, "a", "b"), "nothing to change"),
        (("link", name, "a", "zz", "down"), "no node"),
        (("link", name, "b", "r", "down"), "no link between"),
        (("link", name, "a", "b", "flap", "--count", "0"), "flap count"),
        (("node", name, "zz", "stop"), "no node"),
        (("partition", name, "a,zz", "b"), "no node"),
        (("partition", name, "a", "s"), "switch"),
        (("partition", name, "a,b", "b"), "two groups"),
        (("partition", name, "--from", "a"), "go together"),
        (("partition", name, "--grudge", "a=a"), "itself"),
    ]:
        rc, msg = cli(*argv)
        assert rc == 2 and words in msg, (argv, rc, msg)
    assert fl.faults(lab) == []
    rc, msg = cli("impair", name, "a", "b", "--delay", "10ms")
    from nslab.kernel import tc

    if tc.have_qdisc(lab["a"].netns, "netem"):  # the VM tier's kernel: delay works, and goes with --clear
        assert rc == 0 and [f["netem"] for f in fl.faults(lab)] == ["delay 10ms", "delay 10ms"], msg
        assert cli("impair", name, "a", "b", "--clear")[0] == 0 and fl.faults(lab) == []
    else:
        assert rc == 1 and "netem" in msg


@kernel
def test_multi_link_needs_iface() -> None:
    with running(Lab(multi_topo(new_lab_name()))) as lab:
        with pytest.raises(UsageError, match="--iface"):
            fl.link_state(lab, "a", "b", up=False)
        fl.link_state(lab, "a", "b", up=False, iface="eth1")
        assert fl.faults(lab)[0]["a_ifname"] == "eth1"
        fl.impair(lab, "a", "b", loss="1%", iface="eth0")
        assert fl.faults(lab)[1]["from_ifname"] == "eth0"
    assert not os.path.exists(f"{fl.FAULT_DIR}/{lab.name}.json")  # forget() at down removed the record
