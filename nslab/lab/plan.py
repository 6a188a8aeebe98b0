"""`make_plan`: a Topology in, an immutable, deterministic Plan out (names, addresses, routes, the impairments the
file declares): everything the kernel must end up holding once the lab is up. Pure."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from ..errors import NotFoundError
from .addressing import assign
from .checks import Checker
from .model import TopologyData
from .profiles import expand, resolve
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
    netem: tuple[str, ...]  # the impairments given that need netem (delay, jitter, reorder, corrupt, ...)
    values: dict[str, Any] = field(default_factory=dict)  # nslab.netem's canonical values (delay in s, ...)


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
    """The links' `impair:` and the file's `between:` (checked already), each direction on the ends it names.
    The Nth link of a file between two nodes is the Nth planned link between them (links are planned in file
    order). A link's own `impair:` wins over `between:`, key by key."""
    out: list[ImpairPlan] = []
    seen: dict[frozenset[str], int] = {}  # point-to-point links met so far between each pair
    for link in topo.links:
        if len(link.endpoints) != 2:
            continue
        a, b = link.endpoints[0].node, link.endpoints[1].node
        nth = seen.get(frozenset((a, b)), 0)
        seen[frozenset((a, b))] = nth + 1
        rules = [x.impair for x in topo.between if (a in x.a and b in x.b) or (a in x.b and b in x.a)]
        if not link.impair and not rules:
            continue
        ea, eb = [(lk.a, lk.b) if lk.a.node == a else (lk.b, lk.a) for lk in links
                  if {lk.a.node, lk.b.node} == {a, b}][nth]
        ends = {a: ea, b: eb}
        per_dir: dict[tuple[str, str], dict[str, str]] = {}
        for values in rules:
            for d in ((a, b), (b, a)):
                per_dir.setdefault(d, {}).update(expand(values, topo.profiles))
        for direction, values in link.impair.items():
            for src, dst in ([(a, b), (b, a)] if direction == "both" else [(a, b)] if direction == f"{a}->{b}"
                             else [(b, a)]):
                per_dir.setdefault((src, dst), {}).update(expand(values, topo.profiles))
        for (src, dst), values in per_dir.items():
            out.append(_impairment(ends[src], ends[dst], values))
    return tuple(out)


def _impairment(src: IfacePlan, dst: IfacePlan, values: dict[str, str]) -> ImpairPlan:
    """VALUES as written in the file, in nslab.units' grammar (what `lab impair` parses its options with)."""
    r = resolve(values)
    return ImpairPlan(src.node, src.ifname, dst.node, dst.ifname, r.loss, r.duplicate, r.rate, r.needs_netem,
                      r.netem)
