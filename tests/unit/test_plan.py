"""Plans: names, addresses, routes; and a hop-by-hop simulation proving every host reaches every host."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from conftest import LAB_DATA

from nslab.errors import NotFoundError, UsageError
from nslab.lab.builtin import parse_topo_arg, topo
from nslab.lab.plan import Plan, make_plan
from nslab.lab.topology import Topology, load_file

HERE = Path(LAB_DATA)
GOOD = HERE / "good"

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- a tiny forwarding simulator over the plan ------------------------------------------------------------


class Net:
    """Longest-prefix-match forwarding over a Plan, as the kernel would do it with these addresses/routes."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.kind = {n.name: n.kind for n in plan.nodes}
        self.seg_of: dict[tuple[str, str], str] = {}
        for seg in plan.segments:
            for member in seg.members:
                self.seg_of[member] = seg.name
        self.owner: dict[IPAddr, tuple[str, str]] = {}
        self.ifaces: dict[str, list[tuple[str, ipaddress.IPv4Interface | ipaddress.IPv6Interface]]] = {}
        for link in plan.links:
            for end in (link.a, link.b):
                for cidr in end.addresses:
                    iface = ipaddress.ip_interface(cidr)
                    assert iface.ip not in self.owner, f"{iface.ip} assigned twice"
                    self.owner[iface.ip] = (end.node, end.ifname)
                    self.ifaces.setdefault(end.node, []).append((end.ifname, iface))

    def lookup(self, node: str, dst: IPAddr) -> tuple[str, IPAddr | None] | None:
        """(dev, gateway or None for on-link) of the best route, or None."""
        best: tuple[int, int, str, IPAddr | None] | None = None
        for ifname, iface in self.ifaces.get(node, []):
            if iface.version == dst.version and dst in iface.network:
                cand = (iface.network.prefixlen, 1, ifname, None)  # connected beats a route of equal length
                best = max(best, cand, key=lambda c: c[:2]) if best else cand
        for r in self.plan.routes:
            if r.node != node:
                continue
            via = ipaddress.ip_address(r.via)
            if via.version != dst.version:
                continue
            net: IPNet = (
                ipaddress.ip_network("0.0.0.0/0" if via.version == 4 else "::/0")
                if r.dst == "default"
                else ipaddress.ip_network(r.dst)
            )
            if dst in net:
                cand = (net.prefixlen, 0, r.dev, via)
                best = max(best, cand, key=lambda c: c[:2]) if best else cand
        return (best[2], best[3]) if best else None

    def path(self, src: str, dst: IPAddr, limit: int) -> list[str]:
        """The nodes a packet from src to dst visits; AssertionError if it does not arrive."""
        target = self.owner[dst][0]
        hops = [src]
        cur = src
        while cur != target:
            assert len(hops) <= limit, f"{src} -> {dst}: more than {limit} hops: {hops}"
            route = self.lookup(cur, dst)
            assert route is not None, f"{src} -> {dst}: no route at {cur} (path {hops})"
            dev, gw = route
            nxt_ip = gw if gw is not None else dst
            assert nxt_ip in self.owner, f"{src} -> {dst}: {cur} sends to unknown {nxt_ip}"
            nxt, nxt_if = self.owner[nxt_ip]
            # the next hop must sit on the same L2 segment as the outgoing device
            assert self.seg_of.get((cur, dev)) == self.seg_of.get((nxt, nxt_if)), (
                f"{src} -> {dst}: {cur}:{dev} and {nxt}:{nxt_if} are not on one segment"
            )
            if nxt != target:
                assert self.kind[nxt] == "router", f"{src} -> {dst}: {nxt} is a {self.kind[nxt]}, not a router"
            hops.append(nxt)
            cur = nxt
        return hops


def all_pairs_reach(plan: Plan) -> int:
    """Every host reaches every address of every other host, except across router-less segments: hosts do
    not forward, so an address on a segment without a router is reachable from that segment only, and a
    host on no routed segment reaches only its neighbours. Returns the number of paths checked."""
    net = Net(plan)
    kinds = {n.name: n.kind for n in plan.nodes}
    routed = {s.name for s in plan.segments if any(kinds[node] == "router" for node, _ in s.members)}
    on = {(node, seg.name) for seg in plan.segments for node, _ in seg.members}
    hosts = [n.name for n in plan.nodes if n.kind == "host"]
    limit = sum(1 for n in plan.nodes if n.kind == "router") + 1  # at most every router once, then dst
    checked = 0
    for src in hosts:
        for dst in hosts:
            if src == dst:
                continue
            reached = 0
            for cidr in plan.addresses_of(dst):
                ip = ipaddress.ip_interface(cidr).ip
                seg = net.seg_of[net.owner[ip]]
                if (seg in routed and any((src, r) in on for r in routed)) or (src, seg) in on:
                    net.path(src, ip, limit)
                    reached += 1
            isolated = not all(any((n, r) in on for r in routed) for n in (src, dst))
            assert reached or isolated, f"{src} reaches no address of {dst}"
            checked += reached
    return checked


# --- the example ---------------------------------------------------------------------------------------------


def campus() -> Plan:
    return make_plan(load_file(GOOD / "campus.yaml"))


def test_campus_nodes() -> None:
    plan = campus()
    assert [n.name for n in plan.nodes] == ["h1", "h2", "db", "web", "cache", "r1", "s1", "lan5"]
    assert plan.node("r1").forwarding and plan.node("r1").netns == "campus-r1"
    assert plan.node("s1").bridge == "br0" and plan.node("lan5").bridge == "br0"
    assert plan.node("h1").bridge is None and not plan.node("h1").forwarding
    with pytest.raises(NotFoundError, match="no node 'hx'"):
        plan.node("hx")


def test_campus_interfaces() -> None:
    plan = campus()
    assert len(plan.links) == 8  # 5 two-endpoint links + 3 veths into lan5
    h1 = plan.links[0]
    assert (h1.a.node, h1.a.ifname, h1.b.node, h1.b.ifname, h1.b.master) == ("h1", "eth0", "s1", "eth0", "br0")
    assert h1.b.addresses == ()
    db_web = plan.links[-1]
    assert (db_web.a.ifname, db_web.b.ifname, db_web.a.mtu) == ("eth1", "eth1", 9000)
    assert [i.ifname for i in plan.interfaces_of("r1")] == ["eth0", "eth1", "eth2"]


def test_campus_addresses() -> None:
    plan = campus()
    assert plan.addresses_of("r1")[:2] == ["10.0.0.1/24", "fd00:6e73::1/64"]  # first router is .1
    assert plan.primary_ipv4("h1") == "10.0.0.2"
    assert plan.primary_ipv4("s1") is None
    seg = {s.name: s for s in plan.segments}
    assert set(seg) == {"s1", "r1-db", "lan5", "db-web"}
    assert seg["r1-db"].ipv4.endswith("/30")
    assert seg["s1"].members == (("h1", "eth0"), ("h2", "eth0"), ("r1", "eth0"))


def test_campus_routes() -> None:
    plan = campus()
    assert {(r.dst, r.via) for r in plan.routes_of("h1")} == {("default", "10.0.0.1"), ("default", "fd00:6e73::1")}
    assert plan.routes_of("r1") == []  # r1 is on every routed segment


# --- invariants over every good file and builtin -------------------------------------------------------------

BUILTINS = [
    "single,1",
    "single,5",
    "linear,4",
    "tree,2,3",
    "tree,3,2",
    "ring,3",
    "ring,6",
    "ring,7",
    "leafspine,2,4,2",
    "leafspine,3,3,1",
    "leafspine,1,1,3",
]


def plans() -> list[tuple[str, Plan]]:
    out = [(p.stem, make_plan(load_file(p))) for p in sorted(GOOD.glob("*.yaml"))]
    return out + [(arg, make_plan(parse_topo_arg(arg))) for arg in BUILTINS]


@pytest.mark.parametrize(("label", "plan"), plans(), ids=lambda v: v if isinstance(v, str) else "")
def test_addresses_unique_and_inside_their_segment(label: str, plan: Plan) -> None:
    seen: set[str] = set()
    iface_addrs = {(end.node, end.ifname): end.addresses for link in plan.links for end in (link.a, link.b)}
    for seg in plan.segments:
        v4, v6 = ipaddress.ip_network(seg.ipv4), ipaddress.ip_network(seg.ipv6)
        for member in seg.members:
            addrs = iface_addrs[member]
            assert len(addrs) == 2, (label, member, addrs)
            a4, a6 = ipaddress.ip_interface(addrs[0]), ipaddress.ip_interface(addrs[1])
            assert a4.network == v4 and a6.network == v6, (label, member)
            assert a4.ip not in (v4.network_address, v4.broadcast_address)
            for a in addrs:
                assert ipaddress.ip_interface(a).ip.compressed not in seen
                seen.add(ipaddress.ip_interface(a).ip.compressed)
    # segments do not overlap
    nets = [ipaddress.ip_network(s.ipv4) for s in plan.segments] + [ipaddress.ip_network(s.ipv6) for s in plan.segments]
    for i, a in enumerate(nets):
        for b in nets[i + 1 :]:
            assert a.version != b.version or not a.overlaps(b), (label, a, b)
    # switch ports carry no address, every non-switch interface is in exactly one segment
    members = [m for s in plan.segments for m in s.members]
    assert len(members) == len(set(members))
    kinds = {n.name: n.kind for n in plan.nodes}
    for link in plan.links:
        for end in (link.a, link.b):
            if kinds[end.node] == "switch":
                assert end.addresses == () and end.master == "br0"
            else:
                assert (end.node, end.ifname) in members and end.master is None


@pytest.mark.parametrize(("label", "plan"), plans(), ids=lambda v: v if isinstance(v, str) else "")
def test_determinism(label: str, plan: Plan) -> None:
    again = dict(plans())[label]
    assert plan == again
    assert plan.to_json() == again.to_json()


@pytest.mark.parametrize(
    "arg",
    [
        "single,4",
        "linear,5",
        "tree,2,3",
        "tree,3,2",
        "ring,3",
        "ring,4",
        "ring,7",
        "ring,10",
        "leafspine,2,4,2",
        "leafspine,3,3,1",
        "leafspine,4,2,3",
        "leafspine,1,1,3",
    ],
)
def test_every_host_reaches_every_host_builtin(arg: str) -> None:
    assert all_pairs_reach(make_plan(parse_topo_arg(arg))) > 0


@pytest.mark.parametrize("name", ["campus", "explicit", "triangle", "chain"])
def test_every_host_reaches_every_host_files(name: str) -> None:
    assert all_pairs_reach(make_plan(load_file(GOOD / f"{name}.yaml"))) > 0


def test_ring_uses_shortest_paths() -> None:
    plan = make_plan(topo("ring", 6))
    net = Net(plan)
    h4 = ipaddress.ip_interface(plan.addresses_of("h4")[0]).ip
    assert net.path("h1", h4, 10) == ["h1", "r1", "r2", "r3", "r4", "h4"]  # tie at 3 hops: r2 < r6
    h5 = ipaddress.ip_interface(plan.addresses_of("h5")[0]).ip
    assert net.path("h1", h5, 10) == ["h1", "r1", "r6", "r5", "h5"]


def test_chain_segments_and_isolated_lan() -> None:
    plan = make_plan(load_file(GOOD / "chain.yaml"))
    seg = {s.name: s for s in plan.segments}
    assert set(seg["s1"].members) == {("h1", "eth0"), ("h2", "eth0"), ("ra", "eth0")}  # s1-s2-s3: one LAN
    assert plan.routes_of("iso1") == [] and plan.routes_of("iso2") == []  # no router on their segment
    net = Net(plan)
    h3 = ipaddress.ip_interface(plan.addresses_of("h3")[0]).ip
    assert net.path("h1", h3, 5) == ["h1", "ra", "rb", "h3"]
    iso2 = ipaddress.ip_interface(plan.addresses_of("iso2")[0]).ip
    assert net.path("iso1", iso2, 2) == ["iso1", "iso2"]
    with pytest.raises(AssertionError, match="no route"):
        net.path("h1", iso2, 5)


def test_explicit_addresses_win() -> None:
    plan = make_plan(load_file(GOOD / "explicit.yaml"))
    h1 = plan.interfaces_of("h1")[0]
    assert (h1.ifname, h1.mtu, h1.addresses) == ("uplink", 9000, ("10.1.0.10/24", "fd00:a::10/64"))
    assert plan.addresses_of("r1")[:2] == ["10.1.0.1/24", "fd00:a::1/64"]  # the segment is h1's subnet
    assert [i.ifname for i in plan.interfaces_of("r1")] == ["lan0", "eth0"]
    assert plan.addresses_of("r2")[:1] == ["10.2.0.2/29"] and plan.addresses_of("r2")[2] == "10.3.0.1/30"
    assert plan.addresses_of("h2")[0] == "10.3.0.2/30"
    assert plan.addresses_of("h3")[0].startswith("172.16.0.")  # custom p2p pool


def test_routing_none() -> None:
    plan = make_plan(load_file(GOOD / "norouting.yaml"))
    assert plan.routes == ()
    assert plan.node("r1").forwarding  # still a router: forwarding on, only routes are left out
    assert plan.addresses_of("h1")


def test_hosts_without_router_get_no_default() -> None:
    plan = make_plan(topo("single", 3))
    assert plan.routes == ()


# --- built-ins --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "name", "nodes", "links", "routes"),
    [
        ("single,3", "single3", 4, 3, 0),
        ("linear,4", "linear4", 8, 7, 0),
        ("tree,2,3", "tree2-3", 13, 12, 0),  # 1 + 3 switches, 9 hosts
        ("tree,3,2", "tree3-2", 15, 14, 0),
        # ring,4: 4 routers, 4 hosts, 8 p2p segments; hosts 2 defaults each; routers 8-3=5 remote segs x 2
        ("ring,4", "ring4", 8, 8, 4 * 2 + 4 * 5 * 2),
        # leafspine,2,3,2: 2 spines + 3 leaves + 6 hosts + 3 lan switches; 6 uplinks + 3 x 3 LAN veths
        # segments: 6 p2p + 3 LANs = 9; leaf: 9 - 3 = 6 remote; spine: 9 - 3 = 6 remote
        ("leafspine,2,3,2", "ls2-3-2", 14, 15, 6 * 2 + 5 * 6 * 2),
    ],
)
def test_builtin_sizes(arg: str, name: str, nodes: int, links: int, routes: int) -> None:
    plan = make_plan(parse_topo_arg(arg))
    assert (plan.lab, len(plan.nodes), len(plan.links), len(plan.routes)) == (name, nodes, links, routes)


def test_tree_numbering_is_mininet_like() -> None:
    t = topo("tree", 2, 2)
    assert list(t.nodes) == ["s1", "s2", "h1", "h2", "s3", "h3", "h4"]
    assert [[e.node for e in link.endpoints] for link in t.links] == [
        ["s2", "h1"],
        ["s2", "h2"],
        ["s1", "s2"],
        ["s3", "h3"],
        ["s3", "h4"],
        ["s1", "s3"],
    ]


def test_builtin_name_and_python_api() -> None:
    assert topo("single", 2, name="mine").name == "mine"
    assert topo("ring", 3) == parse_topo_arg("ring,3")


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("tree,0,2", "--topo tree,0,2: DEPTH must be >= 1"),
        ("single,0", "--topo single,0: N must be >= 1"),
        ("ring,2", "--topo ring,2: N must be >= 3"),
        ("single,x", "--topo single,x: N must be a whole number, not 'x'"),
        ("tree,2", "--topo tree,2: tree takes 2 argument(s)"),
        ("star,3", "--topo star,3: unknown topology 'star'"),
        ("tree,30,30", "more than 100000"),
        ("leafspine,1,1,0", "HOSTS must be >= 1"),
    ],
)
def test_builtin_bad_args(arg: str, message: str) -> None:
    with pytest.raises(UsageError, match=None) as info:
        parse_topo_arg(arg)
    assert message in info.value.message
    assert info.value.hint


def test_single_over_the_bridge_port_limit_is_refused() -> None:
    # A Linux bridge numbers ports in 10 bits (port 0 reserved): single,1024 cannot exist.
    assert len(make_plan(parse_topo_arg("single,1023")).links) == 1023
    with pytest.raises(UsageError, match=r"nodes\.s1: switch 's1' would have 1024 ports.*at most 1023"):
        make_plan(parse_topo_arg("single,1024"))


def test_ten_thousand_hosts_plan() -> None:
    # (Planning speed is measured in bench/bench_lab.py, not asserted here.)
    plan = make_plan(parse_topo_arg("tree,2,100"))
    assert len(plan.nodes) == 10101 and len(plan.links) == 10100
    assert plan.segments[0].ipv4 == "10.0.0.0/18"  # grown past /24 to fit 10000 hosts
    assert plan.primary_ipv4("h10000") == "10.0.39.16"


def test_plan_validates_python_topologies() -> None:
    t = Topology.new("x")
    t.add_node("s1", "switch")
    t.add_node("s2", "switch")
    t.add_link("s1", "s2")
    t.add_link("s2", "s1")
    with pytest.raises(UsageError, match=r"links\[1\]: this link closes a loop of switches"):
        make_plan(t)
