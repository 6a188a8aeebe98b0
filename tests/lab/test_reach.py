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
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import ROOT_REASON, is_root, lab_name

from nslab.errors import NslabError
from nslab.lab import state as st
from nslab.lab.lab import Lab
from nslab.lab.plan import Plan
from nslab.reach import reach

pytestmark = pytest.mark.kernel
if not is_root():
    print(f"test_reach: skipped: {ROOT_REASON}", file=sys.stderr)
    pytestmark = [pytest.mark.kernel, pytest.mark.skip(reason=ROOT_REASON)]


# ---- labs that always go away (shared with test_top_graph through this module) ---------------------
class Labs:
    def __init__(self) -> None:
        self.labs: list[Lab] = []

    def topo(self, kind: str, *args: int) -> Lab:
        lab = Lab.topo(kind, *args, name=lab_name())
        self.labs.append(lab)
        lab.up()
        return lab

    def close(self) -> None:
        left = []
        for lab in self.labs:
            try:
                lab.down()
            except Exception as exc:
                left.append(f"{lab.name}: down failed: {exc!r}")
            assert re.fullmatch(r"t[0-9a-f]{6}", lab.name)
            stale = [n for n in os.listdir("/run/netns") if n.startswith(f"{lab.name}-")]
            for ns in stale:  # deletion is asynchronous; a file left here is a real leak
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            if stale:
                left.append(f"{lab.name}: {stale}")
            st.remove(lab.name)
        assert not left, f"LEAK: {left}"


@pytest.fixture
def labs() -> Iterator[Labs]:
    if not is_root():
        pytest.skip(ROOT_REASON)
    ls = Labs()
    try:
        yield ls
    finally:
        ls.close()


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
def test_single_all_pairs(labs: Labs) -> None:
    lab = labs.topo("single", 3)
    res = reach(lab)
    assert res.ok and len(res.pairs) == 6
    assert set(res.pairs) == {(s, d) for s in ("h1", "h2", "h3") for d in ("h1", "h2", "h3") if s != d}
    assert all(r.rtt_ms is not None and 0 <= r.rtt_ms < 1000 and r.reason == "ok" for r in res.pairs.values())
    text = res.matrix_text()
    assert text.splitlines()[-1].startswith("6/6 pairs reachable in ")
    rows = {ln.split()[0]: ln.split()[1:] for ln in text.splitlines() if ln.startswith("h")}
    assert rows == {"h1": ["-", ".", "."], "h2": [".", "-", "."], "h3": [".", ".", "-"]}


def test_ipv6_and_subsets(labs: Labs) -> None:
    lab = labs.topo("ring", 4)
    res = reach(lab, family=6)
    assert res.ok and len(res.pairs) == 12
    assert all(":" in (a or "") for a in res.addresses.values())
    res = reach(lab, sources=["h1"], targets=["h2", "h3", "r3"])
    assert set(res.pairs) == {("h1", "h2"), ("h1", "h3"), ("h1", "r3")} and res.ok


def test_switch_port_down_fails_exactly_that_host(labs: Labs) -> None:
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


def test_ring_link_down_fails_the_pairs_routed_over_it(labs: Labs) -> None:
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


def test_tcp_and_udp_modes(labs: Labs) -> None:
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


def test_cli_json_matrix_and_exit_codes(labs: Labs, cli: Callable[..., tuple[int, str, str]]) -> None:
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
