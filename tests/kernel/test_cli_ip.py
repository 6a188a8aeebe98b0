"""iproute2 habits in the CLI (issue 13), each checked against `ip` itself on the same namespaces: -br and -s
(repeatable) before the object and after the verb with ip -s's columns, -4/-6, route show IPv4 unless -6,
neigh show, stats64 in --json, a bare object, and a quiet end on a pipe closed in the middle of a listing.
Traffic stays between the test's namespaces."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from conftest import REPO, CliResult, NetnsFactory, ip, ipj, settled
from system.test_cli_ip import NSLAB, _closed_pipe

from nslab.kernel.netns import run_in_netns
from nslab.namespace import Namespace

Cli = Callable[..., CliResult]


def _name(ns: Namespace) -> str:
    assert ns.name is not None
    return ns.name




# ---- the kernel, against ip ----------------------------------------------------------------------
@pytest.fixture
def pair(netns_factory: NetnsFactory, cli: Cli) -> tuple[Namespace, Namespace]:
    """A (v0, br0, a same-namespace veth pair p0/p1) and B (v1), joined by v0 - v1, with v4/v6 addresses
    and traffic both ways, so counters, neighbours (ARP and NDP) and link-netns all have something to show."""
    a, b = netns_factory(), netns_factory()
    na, nb = _name(a), _name(b)
    steps = [(na, ["link", "add", "v0", "type", "veth", "peer", "v1", "peer-netns", nb]),
             (na, ["link", "add", "br0", "type", "bridge"]), (na, ["link", "add", "p0", "type", "veth", "peer", "p1"]),
             (na, ["addr", "add", "10.98.0.1/24", "dev", "v0"]), (na, ["addr", "add", "fd00:98::1/64", "dev", "v0"]),
             (nb, ["addr", "add", "10.98.0.2/24", "dev", "v1"]), (nb, ["addr", "add", "fd00:98::2/64", "dev", "v1"])]
    steps += [(ns, ["link", "set", d, "up"]) for ns, devs in ((na, ("lo", "v0", "p0")), (nb, ("lo", "v1")))
              for d in devs]
    steps += [(na, ["route", "add", "10.97.0.0/16", "via", "10.98.0.2"]),
              (na, ["route", "add", "fd00:97::/64", "via", "fd00:98::2"])]
    for ns, argv in steps:
        res = cli("-n", ns, *argv)
        assert res.rc == 0, (argv, res)
    for dst in ("10.98.0.2", "fd00:98::2"):
        _udp(a, b, dst)
    return a, b


def _udp(src: Namespace, dst: Namespace, dst_ip: str) -> None:
    fam = socket.AF_INET6 if ":" in dst_ip else socket.AF_INET

    def sock() -> socket.socket:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(3.0)
        return s

    server, client = run_in_netns(_name(dst), sock), run_in_netns(_name(src), sock)
    try:
        server.bind((dst_ip, 0))
        for _ in range(3):
            client.sendto(b"x" * 100, (dst_ip, server.getsockname()[1]))
            data, peer = server.recvfrom(2048)
            server.sendto(data, peer)
            client.recvfrom(2048)
    finally:
        server.close()
        client.close()


def _blocks(text: str) -> dict[str, list[str]]:
    """Device name (as printed, with @LINK) -> its lines."""
    out: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines():
        m = re.match(r"\d+: ([^:]+):", line)
        if m:
            name = m.group(1)
            out[name] = []
        out[name].append(line)
    return out


def _ip_head(line: str) -> str:
    """ip's first line without what nslab does not show (qdisc, mode, group)."""
    return re.sub(r" (qdisc \S+|mode \S+|group \S+)", "", line)


@pytest.mark.kernel
@pytest.mark.parametrize("level", [1, 2])
def test_link_show_stats_text_equals_ip(pair: tuple[Namespace, Namespace], cli: Cli, level: int) -> None:
    a, _ = pair
    n = _name(a)
    flags = ["-s"] * level
    theirs, mine = settled(lambda: _blocks(ip(n, *flags, "link", "show").stdout),
                           lambda: _blocks(cli("-n", n, "link", "show", *flags).out))
    assert list(mine) == list(theirs)  # names and NAME@LINK as ip prints them: v0@if.., p0@p1, p1@p0
    assert any(k.startswith("p0@p1") for k in theirs) and any(k.startswith("v0@if") for k in theirs)
    for dev, lines in theirs.items():
        ours = [ln for ln in mine[dev] if not re.fullmatch(r"    [a-z]+", ln)]  # nslab's kind line: not ip's
        assert ours[0] == _ip_head(lines[0]), dev
        assert ours[1:] == lines[1:], dev  # link/ line (link-netns NAME) and the counters, byte for byte
    v0 = next(v for k, v in theirs.items() if k.startswith("v0@"))
    assert f"link-netns {_name(pair[1])}" in v0[1]
    assert len(v0) == 2 + 4 * level


@pytest.mark.kernel
def test_stats_options_before_object_and_after_verb_agree(pair: tuple[Namespace, Namespace], cli: Cli) -> None:
    n = _name(pair[0])

    def outs(*forms: list[str]) -> list[str]:
        return [cli("-n", n, *f).out for f in forms]

    one = settled(lambda: outs(["-s", "link", "show"]), lambda: outs(["link", "show", "-s"], ["l", "--stats"]))
    assert one[1] == [one[0][0]] * 2
    two = settled(lambda: outs(["-s", "-s", "link"]),
                  lambda: outs(["-s", "link", "show", "-s"], ["link", "show", "-s", "-s"]))
    assert two[1] == [two[0][0]] * 2 and two[0][0] != one[0][0]
    assert cli("-n", n, "-4", "route").out == cli("-n", n, "route", "show", "-4").out
    assert cli("-n", n, "-br", "a").out == cli("-n", n, "addr", "show", "-br").out


@pytest.mark.kernel
def test_stats64_json_equals_ip(pair: tuple[Namespace, Namespace], cli: Cli) -> None:
    n = _name(pair[0])
    for flags in (["-s"], ["-s", "-s"]):
        theirs, mine = settled(lambda f=flags: {lk["ifname"]: lk["stats64"] for lk in ipj(n, *f, "link", "show")},
                               lambda f=flags: {lk["ifname"]: lk["stats64"]
                                                for lk in cli("-n", n, "--json", "link", "show", *f).json()})
        assert mine == theirs  # same keys, same values
    assert "carrier_changes" in theirs["v0"]["tx"] and "missed_errors" in theirs["v0"]["rx"]
    assert "stats64" not in cli("-n", n, "--json", "link", "show").json()[0]


@pytest.mark.kernel
@pytest.mark.parametrize("argv", [["-br", "link"], ["-br", "addr"], ["-br", "-4", "addr"], ["-br", "-6", "addr"],
                                  ["-br", "link", "show", "v0"]])
def test_brief_equals_ip(pair: tuple[Namespace, Namespace], cli: Cli, argv: list[str]) -> None:
    n = _name(pair[0])
    theirs, mine = settled(lambda: ip(n, *argv).stdout, lambda: cli("-n", n, *argv).out)
    assert mine == theirs  # byte for byte, padding and trailing blanks included
    tj, mj = settled(lambda: ipj(n, *argv), lambda: cli("-n", n, "--json", *argv).json())
    assert mj == tj


@pytest.mark.kernel
@pytest.mark.parametrize("family", ["-4", "-6"])
def test_addr_family_filter_equals_ip(pair: tuple[Namespace, Namespace], cli: Cli, family: str) -> None:
    n = _name(pair[0])

    def view(links: list[dict[str, Any]]) -> list[Any]:
        return [(lk["ifname"], [(i["family"], i["local"], i["prefixlen"]) for i in lk["addr_info"]]) for lk in links]

    theirs, mine = settled(lambda: view(ipj(n, family, "addr")),
                           lambda: view(cli("-n", n, "--json", family, "a").json()))
    assert mine == theirs and theirs
    text = cli("-n", n, family, "addr").out
    assert "link/" not in text and ("inet6" in text) == (family == "-6")


@pytest.mark.kernel
def test_route_show_is_ipv4_unless_6(pair: tuple[Namespace, Namespace], cli: Cli) -> None:
    n = _name(pair[0])
    for argv in ([], ["-6"], ["-4"]):
        theirs = [(r["dst"], r.get("gateway"), r.get("dev")) for r in ipj(n, *argv, "route", "show")]
        mine = [(r["dst"], r.get("gateway"), r.get("dev")) for r in cli("-n", n, "--json", *argv, "route").json()]
        assert mine == theirs, argv
    assert all(":" not in d for d, _, _ in theirs)
    text4 = cli("-n", n, "route").out
    assert "10.97.0.0/16 via 10.98.0.2 dev v0" in text4 and "fd00" not in text4


@pytest.mark.kernel
@pytest.mark.parametrize("argv", [[], ["-4"], ["-6"], ["show", "dev", "v0"], ["show", "nud", "all"],
                                  ["show", "nud", "reachable", "nud", "stale"], ["-s"],
                                  ["-s", "-6", "show", "dev", "v0"]])
def test_neigh_show_equals_ip(pair: tuple[Namespace, Namespace], cli: Cli, argv: list[str]) -> None:
    n = _name(pair[0])
    fam = [a for a in argv if a.startswith("-")]
    rest = [a for a in argv if not a.startswith("-")] or ["show"]
    theirs, mine = settled(lambda: ip(n, *fam, "neigh", *rest).stdout, lambda: cli("-n", n, *fam, "neigh", *rest).out)
    assert mine == theirs
    tj, mj = settled(lambda: ipj(n, *fam, "neigh", *rest), lambda: cli("-n", n, "--json", *fam, "n", *rest).json())
    assert mj == tj
    if not fam and rest == ["show"]:
        assert "10.98.0.2 dev v0 lladdr" in theirs and "fd00:98::2 dev v0 lladdr" in theirs


@pytest.mark.kernel
def test_bare_object_and_abbreviations_show(pair: tuple[Namespace, Namespace], cli: Cli) -> None:
    n = _name(pair[0])
    assert cli("-n", n, "l").out == cli("-n", n, "link", "show").out
    assert cli("-n", n, "link").out == cli("-n", n, "link", "sh").out
    assert cli("-n", n, "a").out == cli("-n", n, "address", "lst").out
    assert cli("-n", n, "r").out == cli("-n", n, "route", "show").out
    assert cli("-n", n, "--json", "n").json() == cli("-n", n, "--json", "neighbour", "show").json()


@pytest.mark.kernel
def test_broken_pipe_in_the_middle_of_a_listing(netns_factory: NetnsFactory) -> None:
    """Output larger than the stdout buffer: the write in the handler fails, not only the flush at exit."""
    ns = netns_factory()
    batch = "".join(f"link add d{i} type veth peer e{i}\n" for i in range(40))
    subprocess.run(["ip", "-n", _name(ns), "-batch", "-"], input=batch, text=True, check=True)
    res = _closed_pipe(["-n", _name(ns), "-s", "-s", "link", "show"])
    assert res.stderr == b"" and res.returncode == 141, res
    full = subprocess.run([*NSLAB, "-n", _name(ns), "-s", "-s", "link"], capture_output=True, cwd=REPO)
    assert len(full.stdout) > 16384  # the case is real: more than the buffer
    head = subprocess.run(f"{' '.join(NSLAB)} -n {_name(ns)} -s -s link | head -1", shell=True, capture_output=True,
                          text=True, cwd=REPO)
    assert head.stdout.startswith("1: lo:") and head.stderr == "", head
