"""Fault injection's pure parts, without root: parsing of percentages, rates, times, groups and directions;
the nftables/tc rendering of a fault state; the fault record; the CLI's bad forms. The MEASURED effects in
real labs are in tests/kernel/test_faults.py."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from nslab import faults as fl
from nslab.errors import NslabError, UsageError
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








