"""`make_plan`: a Topology in, an immutable, deterministic Plan out (names, addresses, routes, the impairments the
file declares): everything the kernel must end up holding once the lab is up. Pure."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from .. import units
from ..errors import NotFoundError
from .addressing import assign
from .checks import Checker
from .model import TopologyData
from .routing import RoutePlan, compute_routes

__all__ = ["IfacePlan", "ImpairPlan", "LinkPlan", "NodePlan", "Plan", "RoutePlan", "SegmentPlan", "make_plan"]

BRIDGE = "br0"  # the bridge inside every switch namespace


@dataclass(frozen=True)
class NodePlan:
    name: str
    kind: str  # "host" | "router" | "switch"
    netns: str  # f"{lab}-{name}"
    bridge: str | None  # BRIDGE for switches
    forwarding: bool  # routers


@dataclass(frozen=True)
class IfacePlan:
    node: str
    ifname: str
    mtu: int | None
    master: str | None  # BRIDGE when the node is a switch
    addresses: tuple[str, ...]  # CIDRs, IPv4 first then IPv6


@dataclass(frozen=True)
class LinkPlan:
    """One veth pair; each end is created directly in its node's namespace."""

    a: IfacePlan
    b: IfacePlan


@dataclass(frozen=True)
class SegmentPlan:
    name: str
    ipv4: str
    ipv6: str
    members: tuple[tuple[str, str], ...]  # (node, ifname) of the interfaces holding addresses


@dataclass(frozen=True)
class ImpairPlan:
    """An impairment the file declares on one direction of a link (`impair:`), resolved to the link's two ends;
    `up` applies it as `lab impair` would (it joins the fault record). None: not given; 0: none."""

    src: str
    src_ifname: str
    dst: str
    dst_ifname: str
    loss: float | None  # percent
    duplicate: float | None  # percent
    rate: int | None  # bit/s
    netem: tuple[str, ...]  # the impairments given that need netem (delay, jitter, reorder, corrupt)


@dataclass(frozen=True)
class Plan:
    lab: str
    nodes: tuple[NodePlan, ...]
    links: tuple[LinkPlan, ...]
    routes: tuple[RoutePlan, ...]
    segments: tuple[SegmentPlan, ...]
    impairments: tuple[ImpairPlan, ...] = ()  # declared in the file, in file order

    # Lookups are built once on demand; cached_property writes to __dict__, which frozen allows.
    @cached_property
    def _nodes(self) -> dict[str, NodePlan]:
        return {n.name: n for n in self.nodes}

    @cached_property
    def _ifaces(self) -> dict[str, list[IfacePlan]]:
        out: dict[str, list[IfacePlan]] = {}
        for link in self.links:
            for end in (link.a, link.b):
                out.setdefault(end.node, []).append(end)  # link order: the order names were given
        return out

    def node(self, name: str) -> NodePlan:
        try:
            return self._nodes[name]
        except KeyError:
            known = ", ".join(n.name for n in self.nodes[:20]) + (", ..." if len(self.nodes) > 20 else "")
            raise NotFoundError(f"lab {self.lab!r} has no node {name!r}", f"known nodes: {known}") from None

    def interfaces_of(self, node: str) -> list[IfacePlan]:
        self.node(node)
        return list(self._ifaces.get(node, []))

    def addresses_of(self, node: str) -> list[str]:
        """All CIDRs of a node, interface by interface, IPv4 before IPv6 on each."""
        return [a for i in self.interfaces_of(node) for a in i.addresses]

    def primary_ipv4(self, node: str) -> str | None:
        """The node's first IPv4 address, bare (what `lab exec LAB h1 -- ping h2` puts for `h2`)."""
        for cidr in self.addresses_of(node):
            iface = ipaddress.ip_interface(cidr)
            if iface.version == 4:
                return str(iface.ip)
        return None

    def routes_of(self, node: str) -> list[RoutePlan]:
        return [r for r in self.routes if r.node == node]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def make_plan(topo: TopologyData) -> Plan:
    """Check the topology and plan it; raises UsageError (file, line, field) on anything wrong."""
    Checker(topo).all()
    addr = assign(topo)
    lab = topo.name
    nodes = tuple(
        NodePlan(name, kind, f"{lab}-{name}", BRIDGE if kind == "switch" else None, kind == "router")
        for name, kind in addr.nodes
    )
    ifaces = {
        id(p): IfacePlan(
            p.node,
            p.ifname,
            p.mtu,
            BRIDGE if p.kind == "switch" else None,
            tuple(a.cidr for a in (p.ipv4, p.ipv6) if a is not None),
        )
        for p in addr.ports
    }
    links = tuple(LinkPlan(ifaces[id(a)], ifaces[id(b)]) for a, b in addr.veths)
    segments = tuple(
        SegmentPlan(s.name, str(s.ipv4), str(s.ipv6), tuple((p.node, p.ifname) for p in s.members))
        for s in addr.segments
    )
    routes = tuple(compute_routes(addr)) if topo.routing == "auto" else ()
    return Plan(lab, nodes, links, routes, segments, _declared_impairments(topo, links))


def _declared_impairments(topo: TopologyData, links: tuple[LinkPlan, ...]) -> tuple[ImpairPlan, ...]:
    """The links' `impair:` (checked already), each direction on the ends it names. The Nth link of a file
    between two nodes is the Nth planned link between them (links are planned in file order)."""
    out: list[ImpairPlan] = []
    seen: dict[frozenset[str], int] = {}  # point-to-point links met so far between each pair
    for link in topo.links:
        if len(link.endpoints) != 2:
            continue
        a, b = link.endpoints[0].node, link.endpoints[1].node
        nth = seen.get(frozenset((a, b)), 0)
        seen[frozenset((a, b))] = nth + 1
        if not link.impair:
            continue
        ea, eb = [(lk.a, lk.b) if lk.a.node == a else (lk.b, lk.a) for lk in links
                  if {lk.a.node, lk.b.node} == {a, b}][nth]
        ends = {a: ea, b: eb}
        for direction, values in link.impair.items():
            for src, dst in ([(a, b), (b, a)] if direction == "both" else [(a, b)] if direction == f"{a}->{b}"
                             else [(b, a)]):
                out.append(_impairment(ends[src], ends[dst], values))
    return tuple(out)


def _impairment(src: IfacePlan, dst: IfacePlan, values: dict[str, str]) -> ImpairPlan:
    """VALUES as written in the file, in nslab.units' grammar (what `lab impair` parses its options with)."""
    loss, dup, rate = values.get("loss"), values.get("duplicate"), values.get("rate")

    def given(kind: str) -> bool:
        if kind not in values:
            return False
        if kind in ("delay", "jitter"):
            return units.parse_time(values[kind], kind) > 0
        return units.parse_percent(values[kind], f"{kind} percentage") > 0

    netem = tuple(k for k in ("delay", "jitter", "reorder", "corrupt") if given(k))
    return ImpairPlan(
        src.node, src.ifname, dst.node, dst.ifname,
        None if loss is None else units.parse_percent(loss, "loss percentage"),
        None if dup is None else units.parse_percent(dup, "duplicate percentage"),
        None if rate is None else (0 if rate == "0" else units.parse_rate(rate, units.SHAPING_RATES)),
        netem)
