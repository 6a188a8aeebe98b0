"""Fault injection: pure parsing/rendering without root, then MEASURED effects in real labs (root).

Kernel tests send traffic only between lab namespaces (sockets made with run_in_netns in the nodes), never
from or to the root namespace. Every lab is named `f` + 6 hex digits and taken down in a fixture, also when
the test fails; a module check asserts none of their namespaces or records survive.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ROOT_REASON, is_root, lab_name

from nslab import faults as fl
from nslab.errors import FeatureMissing, NslabError, UsageError
from nslab.lab import state as st
from nslab.lab.lab import Lab
from nslab.lab.topology import Topology

# ---- pure: parsing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "want"), [("5%", 5.0), ("5", 5.0), ("0.5%", 0.5), (" 100% ", 100.0), ("0", 0.0),
                                            (12, 12.0), (0.25, 0.25), ("99.99%", 99.99)])
def test_parse_percent_ok(text: Any, want: float) -> None:
    assert fl.parse_percent(text) == want


@pytest.mark.parametrize("text", ["-1%", "101%", "150", "abc", "", "%", "5%%", "nan", "inf", "0.001%", "1e3"])
def test_parse_percent_bad(text: str) -> None:
    with pytest.raises(UsageError) as e:
        fl.parse_percent(text, "loss percentage")
    assert e.value.exit_code == 2 and "loss percentage" in e.value.message


@pytest.mark.parametrize(("text", "bits"), [("10mbit", 10**7), ("1gbit", 10**9), ("500kbit", 5 * 10**5),
                                            ("1mbps", 8 * 10**6), ("1.5mbit", 1_500_000), ("8kbit", 8000),
                                            ("1mibit", 2**20), ("10MBIT", 10**7), (10**6, 10**6),
                                            # iperf3's spelling too (nslab.units: one grammar for every command;
                                            # '10m' was refused here before, while lab perf took it)
                                            ("10m", 10**7), ("100M", 10**8), ("1.5g", 1_500_000_000)])
def test_parse_rate_ok(text: Any, bits: int) -> None:
    assert fl.parse_rate(text) == bits


@pytest.mark.parametrize("text", ["10", "10 furlongs", "mbit", "-5mbit", "0mbit", "1bit", "2tbit", "", "1e6bit"])
def test_parse_rate_bad(text: str) -> None:
    with pytest.raises(UsageError):
        fl.parse_rate(text)


def test_format_rate() -> None:
    assert [fl.format_rate(x) for x in (10**7, 10**9, 1500, 1_500_000, 8001)] == [
        "10mbit", "1gbit", "1500bit", "1500kbit", "8001bit"]


@pytest.mark.parametrize(("text", "secs"), [("100ms", 0.1), ("1.5s", 1.5), ("250us", 0.00025), ("2", 2.0),
                                            (0.01, 0.01)])
def test_parse_time(text: Any, secs: float) -> None:
    assert fl.parse_time(text) == pytest.approx(secs)


@pytest.mark.parametrize("text", ["fast", "-1ms", "10min", "1e9s", "5000s"])
def test_parse_time_bad(text: str) -> None:
    with pytest.raises(UsageError):
        fl.parse_time(text)


def test_parse_groups() -> None:
    assert fl.parse_groups(["h1,h2", "h3"]) == [["h1", "h2"], ["h3"]]
    assert fl.parse_groups(["a,a,b", " c , d "]) == [["a", "b"], ["c", "d"]]
    for bad in (["h1,h2"], [], ["h1", ""], ["h1,h2", "h2,h3"], [",", "h1"]):
        with pytest.raises(UsageError):
            fl.parse_groups(bad)


def test_parse_grudge_words() -> None:
    assert fl.parse_grudge_words(["h1=h2,h3", "h2=h1", "h1=h4"]) == {"h1": ["h2", "h3", "h4"], "h2": ["h1"]}
    for bad in (["h1"], ["=h2"], ["h1="], ["h1=,"]):
        with pytest.raises(UsageError):
            fl.parse_grudge_words(bad)


def test_parse_direction() -> None:
    assert fl.parse_direction(None, "a", "b") == [("a", "b"), ("b", "a")]
    assert fl.parse_direction("both", "a", "b") == [("a", "b"), ("b", "a")]
    assert fl.parse_direction("A->B", "a", "b") == [("a", "b")]
    assert fl.parse_direction("B->A", "a", "b") == [("b", "a")]
    assert fl.parse_direction("b->a", "a", "b") == [("b", "a")]
    for bad in ("a->c", "sideways", "A<-B", "a->a"):
        with pytest.raises(UsageError):
            fl.parse_direction(bad, "a", "b")


# ---- pure: plan lookups and rendering ------------------------------------------------------------------------
def topo(name: str = "fx") -> Topology:
    """a, b, c hosts in a triangle of direct links, a second a-b link, and a router r between a and c."""
    t = Topology.new(name)
    for n in ("a", "b", "c"):
        t.add_node(n)
    t.add_node("r", "router")
    t.add_node("s", "switch")
    t.add_link("a", "b")
    t.add_link("b", "c")
    t.add_link("a", "c")
    t.add_link("a", "r")
    t.add_link("r", "c")
    t.add_link("c", "s")
    return t


def multi_topo(name: str) -> Topology:
    t = Topology.new(name)
    for n in ("a", "b"):
        t.add_node(n)
    t.add_link("a", "b")
    t.add_link("a", "b")
    return t


def test_find_link() -> None:
    plan = Lab(topo()).plan
    ea, eb = fl.find_link(plan, "a", "b")
    assert (ea.node, eb.node) == ("a", "b")
    ea, eb = fl.find_link(plan, "b", "a")
    assert (ea.node, eb.node) == ("b", "a")
    with pytest.raises(UsageError, match="no link between 'b' and 'r'"):
        fl.find_link(plan, "b", "r")
    with pytest.raises(UsageError, match="no node 'zz'"):
        fl.find_link(plan, "a", "zz")
    with pytest.raises(UsageError, match="two different nodes"):
        fl.find_link(plan, "a", "a")
    mplan = Lab(multi_topo("fm")).plan
    with pytest.raises(UsageError, match="2 links"):
        fl.find_link(mplan, "a", "b")
    assert fl.find_link(mplan, "a", "b", "eth1")[0].ifname == "eth1"
    assert fl.find_link(mplan, "a", "b", "a:eth0")[0].ifname == "eth0"
    with pytest.raises(UsageError, match="no interface 'eth7'"):
        fl.find_link(mplan, "a", "b", "eth7")


def test_render_empty_state_removes_only_nslab_tables() -> None:
    plan = Lab(topo()).plan
    script = fl.render_nft(plan, fl.FaultState("fx"), "a")
    assert script == ("add table inet nslab\ndelete table inet nslab\n"
                      "add table netdev nslab\ndelete table netdev nslab\n")


def test_render_partition_receiver_side() -> None:
    plan = Lab(topo()).plan
    state = fl.FaultState("fx", grudge={"a": ["b"], "r": ["b"]})
    a = fl.render_nft(plan, state, "a")
    b_v4 = [x.split("/")[0] for x in plan.addresses_of("b") if "." in x]
    assert all(ip in a for ip in b_v4)
    assert "hook input" in a and "hook forward" not in a and "hook output" not in a
    assert "ip saddr @drop4 counter drop" in a and "ip6 saddr @drop6 counter drop" in a
    r = fl.render_nft(plan, state, "r")
    assert "hook input" in r and "hook forward" in r  # a router also drops what it would forward
    assert "table inet" not in fl.render_nft(plan, state, "b").split("delete table netdev nslab\n")[1]


def test_render_impairments() -> None:
    plan = Lab(topo()).plan
    ea, eb = fl.find_link(plan, "a", "b")
    key = ("a", ea.ifname, "b", eb.ifname)
    state = fl.FaultState("fx", impair={key: fl.Impairment(loss=5, duplicate=1.5, rate=10**7)})
    b = fl.render_nft(plan, state, "b")
    assert f'hook ingress device "{eb.ifname}"' in b and "numgen random mod 10000 < 500 counter drop" in b
    a = fl.render_nft(plan, state, "a")
    assert f'hook egress device "{ea.ifname}"' in a and '< 150 meta mark set' in a
    assert f'dup to "{ea.ifname}"' in a
    assert "drop" not in a.split("table netdev nslab {")[1]
    assert fl.render_rates(plan, state) == {("a", ea.ifname): 10**7}


def test_render_certain_impairments_have_no_numgen() -> None:
    plan = Lab(topo()).plan
    ea, eb = fl.find_link(plan, "a", "b")
    state = fl.FaultState("fx", impair={("a", ea.ifname, "b", eb.ifname): fl.Impairment(loss=100, duplicate=100)})
    assert "numgen" not in fl.render_nft(plan, state, "b") + fl.render_nft(plan, state, "a")
    assert "counter drop" in fl.render_nft(plan, state, "b")


def test_render_links_down_and_stopped() -> None:
    plan = Lab(topo()).plan
    ea, eb = fl.find_link(plan, "a", "b")
    state = fl.FaultState("fx", links_down=[("a", ea.ifname, "b", eb.ifname)], stopped={"c": [1]})
    links = fl.render_links(plan, state)
    assert not links[("a", ea.ifname)] and not links[("b", eb.ifname)]
    assert all(not up for (n, _), up in links.items() if n == "c")
    assert sum(not up for up in links.values()) == 2 + len(plan.interfaces_of("c"))


def test_state_roundtrip_and_describe() -> None:
    state = fl.FaultState("fx", links_down=[("a", "eth0", "b", "eth0")], stopped={"c": [12, 13]},
                          grudge={"a": ["b", "c"]},
                          impair={("a", "eth0", "b", "eth0"): fl.Impairment(loss=5.0, rate=10**7)})
    assert fl.FaultState.from_json(state.to_json()) == state
    kinds = [f["fault"] for f in fl.describe(state)]
    assert kinds == ["link-down", "node-stopped", "drop-from", "impair"]
    lines = [fl.describe_line(f) for f in fl.describe(state)]
    assert lines[-1] == "impair a:eth0 -> b:eth0: loss 5%, rate 10mbit"
    assert fl.FaultState("fx").empty() and not state.empty()


# ---- the CLI parser (pure parts: no lab needed for bad forms) ------------------------------------------------
def cli(*argv: str) -> tuple[int, str]:
    """A tiny `nslab lab` parser with only our verbs, mapping NslabError to exit codes as cli/main does."""
    from nslab.cli import lab_faults
    from nslab.cli.main import _Parser

    parser = _Parser(prog="nslab lab")
    verbs = parser.add_subparsers(dest="verb", parser_class=_Parser)
    verbs.required = True
    lab_faults.register(verbs)
    try:
        args: argparse.Namespace = parser.parse_args(list(argv))
        return int(args.handler(args)), ""
    except NslabError as exc:
        return exc.exit_code, str(exc)


def test_cli_bad_forms_exit_2() -> None:
    assert cli("link", "L", "a", "b", "sideways")[0] == 2
    assert cli("node", "L", "a", "pause")[0] == 2
    assert cli("partition", "L")[0] == 2
    assert cli("partition", "L", "a", "b", "--from", "a", "--to", "b")[0] == 2
    assert cli("impair", "L", "a")[0] == 2
    rc, msg = cli("impair", "nosuchlab1", "a", "b", "--loss", "5%")
    assert rc == 2 and "no lab named" in msg


# ---- kernel: measured effects ----------------------------------------------------------------------------------
kernel = pytest.mark.kernel  # the project's marker: skipped without root (conftest), deselected by -m "not kernel"
MADE: list[str] = []


def _netns_of(lab: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(f"{lab}-"))
    except FileNotFoundError:
        return []


@pytest.fixture(scope="module", autouse=True)
def _no_lab_left() -> Iterator[None]:
    yield
    left = {lab: _netns_of(lab) for lab in MADE if _netns_of(lab) or os.path.exists(f"{fl.FAULT_DIR}/{lab}.json")}
    assert not left, f"LEAK: namespaces or fault records of test labs survived: {left}"


@contextlib.contextmanager
def running(t: Topology) -> Iterator[Lab]:
    MADE.append(t.name)
    lab = Lab(t)
    try:
        lab.up()
        yield lab
    finally:
        fl.forget(t.name)
        lab.down()
        st.remove(t.name)


def new_name() -> str:
    return lab_name()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if not is_root():
        pytest.skip(ROOT_REASON)
    with running(topo(new_name())) as lb:
        yield lb


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
    with running(multi_topo(new_name())) as lab:
        with pytest.raises(UsageError, match="--iface"):
            fl.link_state(lab, "a", "b", up=False)
        fl.link_state(lab, "a", "b", up=False, iface="eth1")
        assert fl.faults(lab)[0]["a_ifname"] == "eth1"
        fl.impair(lab, "a", "b", loss="1%", iface="eth0")
        assert fl.faults(lab)[1]["from_ifname"] == "eth0"
    assert not os.path.exists(f"{fl.FAULT_DIR}/{lab.name}.json")  # forget() at down removed the record
