"""`nslab lab reach` on real labs: all pairs, a downed link failing exactly the pairs that cross it,
JSON and matrix shapes, bad input (exit 2). Traffic flows only between lab namespaces.

Labs are named `t` + 6 hex digits and always taken down by the fixture (then force-removed by exact
name if anything is left), also when a test fails.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from conftest import ROOT_REASON, is_root

from nslab.errors import NslabError
from nslab.lab.lab import Lab
from nslab.lab.plan import Plan
from nslab.reach import reach

from .labkit import LabFactory

pytestmark = pytest.mark.kernel
if not is_root():
    print(f"test_reach: skipped: {ROOT_REASON}", file=sys.stderr)
    pytestmark = [pytest.mark.kernel, pytest.mark.skip(reason=ROOT_REASON)]


# ---- labs that always go away (shared with test_top_graph through this module) ---------------------




def ip_down(lab: Lab, node: str, dev: str) -> None:
    subprocess.run(["ip", "-n", lab[node].netns, "link", "set", dev, "down"], check=True)


def cli_runner(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """A tiny `nslab lab VERB` parser with our register() functions, mapping errors as main() does."""
    from nslab.cli import lab_graph, lab_reach, lab_top
    from nslab.cli.common import object_parser
    from nslab.cli.main import _Parser, add_globals

    def run(*argv: str) -> tuple[int, str, str]:
        parser = _Parser(prog="nslab")
        add_globals(parser, top=True)
        objects = parser.add_subparsers(dest="object", parser_class=_Parser)
        verbs = object_parser(objects, "lab", "labs")
        for mod in (lab_reach, lab_top, lab_graph):
            mod.register(verbs)
        capsys.readouterr()
        try:
            args: argparse.Namespace = parser.parse_args(list(argv))
            rc: int = args.handler(args)
        except NslabError as exc:
            print(f"nslab: {exc}", file=sys.stderr)
            rc = exc.exit_code
        cap = capsys.readouterr()
        return rc, cap.out, cap.err

    return run


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    return cli_runner(capsys)


# ---- the model: which pairs cross a link, following the planned routes --------------------------------
def _path_ok(plan: Plan, src: str, dst_ip: str, dead: set[tuple[str, str]]) -> bool:
    """Walk the planned routes from SRC to DST_IP; False if a hop uses a dead (node, ifname) end."""
    ends = {(e.node, e.ifname): lk for lk in plan.links for e in (lk.a, lk.b)}
    ip = ipaddress.ip_address(dst_ip)
    node = src
    for _ in range(32):
        ifaces = plan.interfaces_of(node)
        if any(ipaddress.ip_interface(c).ip == ip for i in ifaces for c in i.addresses):
            return True
        onlink = [i for i in ifaces for c in i.addresses if ip in ipaddress.ip_interface(c).network]
        if onlink:
            via, dev = dst_ip, onlink[0].ifname
        else:
            best = None
            for r in plan.routes_of(node):
                net = ipaddress.ip_network("0.0.0.0/0" if r.dst == "default" else r.dst)
                if net.version == ip.version and ip in net and (best is None or net.prefixlen > best[0].prefixlen):
                    best = (net, r)
            if best is None or best[1].via is None:
                return False
            via, dev = best[1].via, best[1].dev
        link = ends[(node, dev)]
        if (link.a.node, link.a.ifname) in dead or (link.b.node, link.b.ifname) in dead:
            return False
        far = link.b if (link.a.node, link.a.ifname) == (node, dev) else link.a
        owner = far.node
        if far.master:  # a switch: whoever on the segment holds VIA
            owner = next(n.name for n in plan.nodes for i in plan.interfaces_of(n.name)
                         for c in i.addresses if ipaddress.ip_interface(c).ip == ipaddress.ip_address(via))
            seg = next(lk for lk in plan.links for e in (lk.a, lk.b) if e.node == owner and
                       any(ipaddress.ip_interface(c).ip == ipaddress.ip_address(via) for c in e.addresses))
            if (seg.a.node, seg.a.ifname) in dead or (seg.b.node, seg.b.ifname) in dead:
                return False
        node = owner
    return False


def expected_failures(lab: Lab, dead: set[tuple[str, str]]) -> set[tuple[str, str]]:
    plan = lab.plan
    hosts = [n.name for n in plan.nodes if n.kind == "host"]
    out = set()
    for s in hosts:
        for d in hosts:
            if s == d:
                continue
            there = _path_ok(plan, s, plan.primary_ipv4(d) or "", dead)
            back = _path_ok(plan, d, plan.primary_ipv4(s) or "", dead)
            if not (there and back):
                out.add((s, d))
    return out


# ---- tests -------------------------------------------------------------------------------------------
LOADED = 20.0  # seconds: a bound for pairs that must all answer, on a 2-core machine shared with other runs
def test_single_all_pairs(labs: LabFactory) -> None:
    lab = labs.topo("single", 3)
    res = reach(lab)
    assert res.ok and len(res.pairs) == 6
    assert set(res.pairs) == {(s, d) for s in ("h1", "h2", "h3") for d in ("h1", "h2", "h3") if s != d}
    assert all(r.rtt_ms is not None and 0 <= r.rtt_ms < 1000 and r.reason == "ok" for r in res.pairs.values())
    text = res.matrix_text()
    assert text.splitlines()[-1].startswith("6/6 pairs reachable in ")
    rows = {ln.split()[0]: ln.split()[1:] for ln in text.splitlines() if ln.startswith("h")}
    assert rows == {"h1": ["-", ".", "."], "h2": [".", "-", "."], "h3": [".", ".", "-"]}


def test_ipv6_and_subsets(labs: LabFactory) -> None:
    lab = labs.topo("ring", 4)
    # reach returns as soon as every pair has answered (milliseconds here); the timeout only bounds how long
    # a loaded machine may take, so it is generous: what is proved (all pairs answer) is the same.
    res = reach(lab, family=6, timeout=LOADED)
    assert res.ok and len(res.pairs) == 12, res.matrix_text()
    assert all(":" in (a or "") for a in res.addresses.values())
    res = reach(lab, sources=["h1"], targets=["h2", "h3", "r3"], timeout=LOADED)
    assert set(res.pairs) == {("h1", "h2"), ("h1", "h3"), ("h1", "r3")} and res.ok


def test_switch_port_down_fails_exactly_that_host(labs: LabFactory) -> None:
    lab = labs.topo("single", 4)
    port = next(lk for lk in lab.plan.links if {lk.a.node, lk.b.node} == {"h2", "s1"})
    end = port.a if port.a.node == "s1" else port.b
    ip_down(lab, "s1", end.ifname)
    res = reach(lab, timeout=1.0)
    failed = set(res.failed)
    assert failed == {(s, d) for s in ("h1", "h2", "h3", "h4") for d in ("h1", "h2", "h3", "h4")
                      if s != d and "h2" in (s, d)}
    assert all(res.pairs[p].reason == "timeout" and res.pairs[p].rtt_ms is None for p in failed)
    assert not res.ok and res.summary().startswith("6/12 pairs reachable")


def test_ring_link_down_fails_the_pairs_routed_over_it(labs: LabFactory) -> None:
    lab = labs.topo("ring", 4)
    r1r2 = next(lk for lk in lab.plan.links if {lk.a.node, lk.b.node} == {"r1", "r2"})
    end = r1r2.a if r1r2.a.node == "r1" else r1r2.b
    ip_down(lab, "r1", end.ifname)
    want = expected_failures(lab, {(end.node, end.ifname)})
    assert ("h1", "h2") in want and ("h1", "h4") not in want  # the model is not vacuous
    res = reach(lab, timeout=1.0)
    assert set(res.failed) == want, res.matrix_text()
    # r1 has no route left to h2's subnet: it says so with an ICMP error, h1 learns at once.
    assert "net unreachable" in res.pairs[("h1", "h2")].reason


def test_tcp_and_udp_modes(labs: LabFactory) -> None:
    import socket

    from nslab.kernel.netns import run_in_netns

    lab = labs.topo("single", 3)

    def listener() -> socket.socket:
        sock = socket.socket()
        sock.bind(("0.0.0.0", 8900))
        sock.listen(16)
        return sock

    srv = run_in_netns(lab["h2"].netns, listener)  # accepts happen in the kernel's backlog
    try:
        res = reach(lab, targets=["h1", "h2"], proto="tcp", port=8900, timeout=1.0)
        assert {p for p, r in res.pairs.items() if r.ok} == {("h1", "h2"), ("h3", "h2")}
        assert res.pairs[("h2", "h1")].reason == "connection refused"
    finally:
        srv.close()
    res = reach(lab, proto="udp", port=9, timeout=1.0)
    assert {r.reason for r in res.pairs.values()} == {"connection refused"}


def test_cli_json_matrix_and_exit_codes(labs: LabFactory, cli: Callable[..., tuple[int, str, str]]) -> None:
    import json

    lab = labs.topo("single", 3)
    rc, out, _ = cli("--json", "lab", "reach", lab.name)
    assert rc == 0
    data = json.loads(out)
    assert {"lab", "proto", "family", "seconds", "ok", "total", "reachable", "pairs"} <= set(data)
    assert data["total"] == data["reachable"] == 6 and data["ok"] is True and data["proto"] == "icmp"
    pair: dict[str, Any] = data["pairs"][0]
    assert set(pair) == {"from", "to", "address", "ok", "rtt_ms", "reason"}
    rc, out, _ = cli("lab", "reach", lab.name, "--from", "h1", "--to", "h2,h3")
    assert rc == 0 and "2/2 pairs reachable" in out
    ip_down(lab, "h3", "eth0")
    rc, out, _ = cli("lab", "reach", lab.name, "--timeout", "0.5")
    assert rc == 1 and "2/6 pairs reachable" in out and "h1 -> h3" in out
    rc, _, err = cli("lab", "reach", lab.name, "--from", "h1,h9")
    assert rc == 2 and "'h9'" in err
    rc, _, err = cli("lab", "reach", "tnosuchlab")
    assert rc == 2 and "tnosuchlab" in err
    rc, _, err = cli("lab", "reach", lab.name, "--tcp", "0")
    assert rc == 2


# ---- the views a person reads: Mininet's pingall rows, the summary and --failed for big labs -------------
def _result(n: int, bad: set[tuple[str, str]], one_way: set[tuple[str, str]] | None = None) -> Any:
    from nslab.reach import PairResult, ReachResult

    one_way = one_way or set()

    hosts = [f"h{k}" for k in range(1, n + 1)]
    res = ReachResult("x", "icmp", 4, None, 1.0, hosts, hosts, {h: f"10.0.{k // 250}.{k % 250 + 1}"
                                                                for k, h in enumerate(hosts)})
    for s in hosts:
        for d in hosts:
            if s != d:
                res.pairs[(s, d)] = (PairResult(False, None, "one way only", one_way=True) if (s, d) in one_way
                                     else PairResult(False, None, "timeout") if (s, d) in bad
                                     else PairResult(True, 0.1, "ok"))
    res.seconds = 0.5
    return res


def test_pingall_rows_and_results_line() -> None:
    res = _result(3, {("h1", "h3"), ("h3", "h1"), ("h3", "h2")}, {("h2", "h3")})
    lines = res.text().splitlines()
    assert lines[:5] == ["*** Ping: testing ping reachability", "h1 -> h2 X", "h2 -> h1 >", "h3 -> X X",
                         "*** Results: 66% dropped (2/6 received)"]
    assert "  h1 -> h3 (10.0.0.3): timeout" in lines
    assert lines[-1] == "2/6 pairs reachable (and 1 one way only) in 0.50 s"
    assert any(ln.startswith("  '>': one way only") for ln in lines)
    ok = _result(2, set()).text().splitlines()
    assert ok == ["*** Ping: testing ping reachability", "h1 -> h2", "h2 -> h1",
                  "*** Results: 0% dropped (2/2 received)", "2/2 pairs reachable in 0.50 s"]
    assert res.text("matrix") == res.matrix_text() and "X" in res.matrix_text().splitlines()[2]


def test_big_labs_get_a_summary_and_failed_lists_every_pair() -> None:
    bad = {(f"h{k}", "h7") for k in range(1, 501) if k != 7}  # h7 unreachable from everyone
    res = _result(500, bad)
    text = res.text()  # auto: 500 targets, no matrix, no pingall rows
    assert max(len(ln) for ln in text.splitlines()) < 200
    assert text.splitlines()[-1] == "249001/249500 pairs reachable in 0.50 s"
    assert len(text.splitlines()) == 20 + 1 + 1 and "... and 479 more failed pairs (--failed lists them all" in text
    failed = res.text("failed").splitlines()
    assert len(failed) == 499 + 1 and all(re.fullmatch(r"  h\d+ -> h7 \(10\.0\.0\.7\): timeout", ln)
                                          for ln in failed[:-1])
    header = res.matrix_text().splitlines()[0]
    assert len(header) > 1000  # what the matrix would have been: why it is not the default


def _mininet_pingall(lab: Lab) -> str:
    """Mininet's own `Mininet.ping()` (pingall), its hosts standing for our lab's: each runs the real `ping`
    Mininet composes inside the host's namespace. Returns what Mininet prints."""
    import logging

    from mininet.log import lg, setLogLevel
    from mininet.net import Mininet

    class Host:
        def __init__(self, name: str) -> None:
            self.name = name
            self.intfs = {0: "eth0"}
            self.netns = lab[name].netns
            self.ip = lab.plan.primary_ipv4(name)

        def IP(self) -> str | None:  # Mininet's name
            return self.ip

        def cmd(self, command: str) -> str:
            res = subprocess.run(["ip", "netns", "exec", self.netns, "sh", "-c", command], capture_output=True,
                                 text=True, timeout=30, env={**os.environ, "LANG": "C"})
            return res.stdout + res.stderr

    chunks: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            chunks.append(record.getMessage())

    net = Mininet.__new__(Mininet)  # no Mininet network: its ping() over our nodes
    net.hosts = [Host(n.name) for n in lab.plan.nodes if n.kind == "host"]
    setLogLevel("output")
    keep = Keep()
    lg.addHandler(keep)
    saved = list(lg.handlers)
    for h in saved:
        if h is not keep:
            lg.removeHandler(h)
    try:
        net.ping(timeout="1")
    finally:
        lg.removeHandler(keep)
        for h in saved:
            if h is not keep:
                lg.addHandler(h)
    return "".join(chunks)


def test_pingall_rows_are_mininets(labs: LabFactory, cli: Callable[..., tuple[int, str, str]]) -> None:
    pytest.importorskip("mininet.net", reason="Mininet (the anchor) is not installed: pip install mininet")
    lab = labs.topo("single", 4)
    ip_down(lab, "h3", "eth0")
    theirs = _mininet_pingall(lab)
    rc, ours, _ = cli("lab", "reach", lab.name, "--timeout", "1")
    assert rc == 1
    print(f"\nMininet:\n{theirs}nslab:\n{ours}")
    rows = [ln.rstrip() for ln in theirs.splitlines()]  # Mininet ends each row with a space
    assert rows[0] == "*** Ping: testing ping reachability" and rows[-1].startswith("*** Results:")
    assert ours.splitlines()[:len(rows)] == rows
    assert rows[1:-1] == ["h1 -> h2 X h4", "h2 -> h1 X h4", "h3 -> X X X", "h4 -> h1 h2 X"]
