"""`make_plan`: a Topology in, an immutable, deterministic Plan out (names, addresses, routes, the impairments the
file declares): everything the kernel must end up holding once the lab is up. Pure."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

from ..errors import NotFoundError
from . import subst
from .addressing import Addressing, Port, assign
from .checks import Checker
from .model import IPNet, TopologyData
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
    # What the file declares for the node (issue 12), `${...}` expanded; static routes are in Plan.routes.
    env: dict[str, str] = field(default_factory=dict, hash=False)  # for every program nslab starts in it
    sysctls: tuple[tuple[str, str], ...] = ()  # net.* (key, value), in file order
    loopback: tuple[str, ...] = ()  # CIDRs on lo
    exec: tuple[tuple[str, ...], ...] = ()  # argv of each one-shot command at up (a string: sh -c TEXT)


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
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()  # group (or replicated node) -> members, for ${group:}

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

    def first_address(self, node: str, family: int) -> str | None:
        """NODE's first address of FAMILY on a segment, bare (what `${addr:NODE}` gives)."""
        for cidr in self.addresses_of(node):
            if (":" in cidr) == (family == 6):
                return cidr.split("/", 1)[0]
        return None

    def subst_context(self, node: str) -> subst.Context:
        """What `${...}` means in NODE's text (subst.expand); services and files use it too."""
        return subst.Context(self.lab, node, self._nodes, dict(self.groups), self.first_address)

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
    static = _static_routes(topo, addr)
    taken = {(r.node, ":" in r.via, r.dst) for r in static}  # a declared route wins over the computed one
    auto = [r for r in compute_routes(addr) if (r.node, ":" in r.via, r.dst) not in taken] \
        if topo.routing == "auto" else []
    _check_loopback(topo, addr)
    _check_disable_ipv6(topo, addr)
    groups = tuple((g, tuple(m)) for g, m in topo.groups.items())
    plan = Plan(lab, nodes, links, (*auto, *static), segments, _declared_impairments(topo, links), groups)
    return _with_settings(topo, plan)


# ---- issue 12: the nodes' own settings (static routes, loopback, sysctls, env, exec) -------------------------
IFACE_SYSCTL = ("net.ipv4.conf.", "net.ipv6.conf.", "net.ipv4.neigh.", "net.ipv6.neigh.", "net.mpls.conf.")


def sysctl_device(key: str) -> str | None:
    """The interface a sysctl is about (net.ipv4.conf.eth0.rp_filter -> eth0); None for the namespace's own
    keys, `all`, `default` and `lo`, which exist from the namespace's birth."""
    for prefix in IFACE_SYSCTL:
        if key.startswith(prefix):
            dev = key[len(prefix):].split(".", 1)[0]
            return None if dev in ("all", "default", "lo") else dev
    return None


def _check_disable_ipv6(topo: TopologyData, addr: Addressing) -> None:
    """disable_ipv6 on a node that nslab gives IPv6 addresses: the kernel would refuse them at `up`."""
    for name, node in topo.nodes.items():
        for key, value in node.sysctls.items():
            if not (key.startswith("net.ipv6.conf.") and key.endswith(".disable_ipv6")) or str(value).strip() == "0":
                continue
            dev = key[len("net.ipv6.conf."):-len(".disable_ipv6")]
            v6 = [p.ifname for p in addr.ports if p.node == name and p.ipv6 is not None
                  and (dev in ("all", "default") or p.ifname == dev)]
            if dev in ("all", "default", "lo") and any(":" in str(c) for c in node.loopback):
                v6.append("lo")
            if v6:
                topo.fail(f"nodes.{name}.sysctls.{key}",
                          f"{key}={value} turns IPv6 off, but nslab gives {name} IPv6 addresses "
                          f"(on {', '.join(v6)}), which the kernel would refuse",
                          "drop the sysctl: nslab gives every segment an IPv6 subnet (pools.ipv6), and up would fail",
                          node.lines.get(f"sysctls.{key}") or node.lines.get("sysctls") or node.lines.get(""))


def _subnets(addr: Addressing, ports: list[Port]) -> str:
    nets = [f"{net} ({p.ifname})" for p in ports if p.segment is not None
            for net in (addr.segments[p.segment].ipv4, addr.segments[p.segment].ipv6) if net is not None]
    return ", ".join(nets) or "none: it has no links"


def _static_routes(topo: TopologyData, addr: Addressing) -> list[RoutePlan]:
    """The nodes' `routes:` (each field checked already), each on the interface whose segment holds its next
    hop: a next hop that no segment of the node reaches is refused here."""
    ports: dict[str, list[Port]] = {}
    for p in addr.ports:
        if p.segment is not None:
            ports.setdefault(p.node, []).append(p)
    out: list[RoutePlan] = []
    seen: dict[tuple[str, bool, str], str] = {}
    for name, node in topo.nodes.items():
        mine = ports.get(name, [])
        for j, r in enumerate(node.routes):
            path, line = f"nodes.{name}.routes[{j}]", r.lines.get("via") or r.lines.get("")
            dst_net = None if r.to == "default" else ipaddress.ip_network(r.to)
            hops: list[tuple[str, str]] = []  # (next hop, our interface)
            if r.via in topo.nodes:  # a neighbour node: its address on the first segment we share
                theirs = {p.segment: p for p in ports.get(r.via, [])}
                shared = [(p, theirs[p.segment]) for p in mine if p.segment in theirs]
                if not shared and topo.nodes[r.via].kind == "switch":
                    topo.fail(f"{path}.via", f"node {r.via!r} is a switch, which has no address to route via",
                              f"route via a router or host on {r.via}'s segment (its name or its address)", line)
                if not shared:
                    topo.fail(f"{path}.via", f"node {r.via!r} shares no segment with {name!r}",
                              f"route via a neighbour, or give an address; {name}'s subnets: "
                              f"{_subnets(addr, mine)}", line)
                me, gw = shared[0]
                for fam in ((4, 6) if dst_net is None else (dst_net.version,)):
                    a = gw.ipv4 if fam == 4 else gw.ipv6
                    if a is not None:
                        hops.append((a.address, me.ifname))
            else:
                via = ipaddress.ip_address(r.via)
                hit = None
                for p in mine:
                    seg = addr.segments[p.segment] if p.segment is not None else None
                    net = None if seg is None else seg.ipv4 if via.version == 4 else seg.ipv6
                    if net is not None and via in net:
                        hit = p
                        break
                if hit is None:
                    topo.fail(f"{path}.via", f"next hop {via} is on no segment of node {name!r}",
                              f"give an address inside one of its subnets: {_subnets(addr, mine)}", line)
                own = hit.ipv4 if via.version == 4 else hit.ipv6
                if own is not None and own.address == str(via):
                    topo.fail(f"{path}.via", f"next hop {via} is {name}'s own address on {hit.ifname}",
                              "give the address of the next router on that segment", line)
                hops.append((str(via), hit.ifname))
            for gw_ip, dev in hops:
                dst = "default" if dst_net is None or dst_net.prefixlen == 0 else str(dst_net)
                key = (name, ":" in gw_ip, dst)
                if key in seen:
                    topo.fail(path, f"a second route to {dst} (IPv{6 if key[1] else 4}) on {name!r} "
                                    f"(the first: {seen[key]})", "give each destination one route",
                              r.lines.get(""))
                seen[key] = path
                out.append(RoutePlan(name, dst, gw_ip, dev, static=True))
    return out


def _check_loopback(topo: TopologyData, addr: Addressing) -> None:
    """Loopback addresses are unique and outside every segment's subnet (the allocator skips them)."""
    nets: list[tuple[IPNet, str]] = [(n, f"segment '{s.name}'") for s in addr.segments
                                     for n in (s.ipv4, s.ipv6) if n is not None]
    for name, node in topo.nodes.items():
        for j, cidr in enumerate(node.loopback):
            net = ipaddress.ip_interface(cidr).network
            path, line = f"nodes.{name}.loopback[{j}]", node.lines.get(f"loopback[{j}]") or node.lines.get("")
            clash = next((what for n, what in nets if n.version == net.version and n.overlaps(net)), None)
            if clash is not None:
                topo.fail(path, f"{cidr} overlaps {clash}",
                          "give each loopback address a subnet of its own, outside the links' subnets", line)
            nets.append((net, path))


def _with_settings(topo: TopologyData, plan: Plan) -> Plan:
    """The plan's nodes with their env, sysctls, loopback and exec, `${...}` expanded (unknown: exit 2)."""
    nodes = []
    for n in plan.nodes:
        spec = topo.nodes.get(n.name)
        if spec is None or not (spec.env or spec.sysctls or spec.loopback or spec.exec):
            nodes.append(n)
            continue
        ctx = plan.subst_context(n.name)
        path, lines = f"nodes.{n.name}", spec.lines

        def expand(text: str, where: str, ctx: subst.Context = ctx, path: str = path,
                   lines: dict[str, int] = lines) -> str:
            try:
                return subst.expand(text, ctx)
            except subst.SubstError as exc:
                topo.fail(f"{path}.{where}", exc.message, exc.hint, lines.get(where) or lines.get(""))

        ifnames = {i.ifname for i in plan.interfaces_of(n.name)}
        for key in spec.sysctls:
            dev = sysctl_device(key)
            if dev is not None and dev not in ifnames:
                topo.fail(f"{path}.sysctls.{key}", f"node {n.name!r} has no interface {dev!r}",
                          f"its interfaces: {', '.join(sorted(ifnames)) or 'none'} (and all, default, lo)",
                          lines.get(f"sysctls.{key}") or lines.get(""))
        env = {k: expand(v, f"env.{k}") for k, v in spec.env.items()}
        exec_ = tuple(
            ("sh", "-c", expand(c, f"exec[{j}]")) if isinstance(c, str)
            else tuple(expand(w, f"exec[{j}]") for w in c)
            for j, c in enumerate(spec.exec))
        loopback = tuple(str(ipaddress.ip_interface(c)) for c in spec.loopback)
        nodes.append(replace(n, env=env, sysctls=tuple(spec.sysctls.items()), loopback=loopback, exec=exec_))
    return replace(plan, nodes=tuple(nodes))


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
