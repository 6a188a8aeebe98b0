"""From links to interfaces, L2 segments and addresses (pure).

- Links of 3+ endpoints get an implicit switch `lan{N}` (N: 1-based index of the link), one veth per endpoint.
- Interface names default to eth0, eth1, ... per node in link order; explicit names are reserved first.
- An L2 segment is a set of non-switch interfaces joined through switches (chained switches make one
  segment), or a veth between two non-switch nodes. A loop of switches is refused: there is no STP, and a
  bridge loop floods the lab.
- Each segment gets one IPv4 subnet (LANs: a /24 from `ipv4_lan`, larger if the segment needs it;
  point-to-point links: a /30 from `ipv4_p2p`) and one /64 from `ipv6`. Explicit prefixes and addresses win
  and the allocator skips what they use. Within a segment routers come first (node-name order), then the
  other nodes (node-name order): the first router of a segment is always .1 unless an explicit address
  takes it.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections import deque
from dataclasses import dataclass, field

from ..names import natural_key
from .checks import parse_iface, parse_net
from .model import Endpoint, IPNet, TopologyData

IPv4 = ipaddress.IPv4Network
IPv6 = ipaddress.IPv6Network
P2P_PREFIXLEN = 30  # .1 and .2: the classic, readable point-to-point subnet (/31 would halve the use)
LAN_PREFIXLEN = 24
SEG_PREFIXLEN6 = 64  # SLAAC-sized, the only IPv6 subnet size people expect on a LAN


@dataclass(frozen=True, slots=True)
class Addr:
    """An interface address as integers: formatting our own strings is what keeps single,10000 fast."""

    version: int
    ip: int
    prefixlen: int

    @property
    def address(self) -> str:
        return format_ip(self.version, self.ip)

    @property
    def cidr(self) -> str:
        return f"{format_ip(self.version, self.ip)}/{self.prefixlen}"


def format_ip(version: int, ip: int) -> str:
    """Same text as str(ipaddress.ip_address(ip)) (RFC 5952 for IPv6), several times faster."""
    if version == 4:
        return f"{ip >> 24}.{ip >> 16 & 255}.{ip >> 8 & 255}.{ip & 255}"
    groups = [(ip >> shift) & 0xFFFF for shift in range(112, -16, -16)]
    best, best_len, start, run = -1, 0, 0, 0
    for i, g in enumerate(groups):
        if g:
            run = 0
            continue
        if run == 0:
            start = i
        run += 1
        if run > best_len:  # strictly longer: the first of equal runs wins, as RFC 5952 says
            best, best_len = start, run
    hexes = [f"{g:x}" for g in groups]
    if best_len < 2:
        return ":".join(hexes)
    return ":".join(hexes[:best]) + "::" + ":".join(hexes[best + best_len :])


MAX_BRIDGE_PORTS = 1023


@dataclass
class Port:
    """One interface of one node (one end of a veth)."""

    node: str
    kind: str
    ifname: str
    mtu: int | None
    link: int  # index of the link in topo.links
    endpoint: int | None  # index in link.endpoints; None for an implicit switch's port
    ipv4: Addr | None = None
    ipv6: Addr | None = None
    segment: int | None = None


@dataclass
class Segment:
    index: int
    name: str
    p2p: bool
    members: list[Port] = field(default_factory=list)
    links: list[int] = field(default_factory=list)  # links whose veths belong to this segment
    ipv4: IPNet | None = None
    ipv6: IPNet | None = None


@dataclass
class Addressing:
    nodes: list[tuple[str, str]]  # (name, kind), file order, then the implicit switches
    ports: list[Port]
    veths: list[tuple[Port, Port]]
    segments: list[Segment]


def assign(topo: TopologyData) -> Addressing:
    """Expand links into veths, find segments, check L2 rules, give out subnets and addresses."""
    return _Assigner(topo).run()


class _Assigner:
    def __init__(self, topo: TopologyData) -> None:
        self.t = topo
        self.kinds = {name: node.kind for name, node in topo.nodes.items()}
        self.parent: dict[str, str] = {}  # union-find over L2 domains (switch names and p2p tokens)
        self.sw_adj: dict[str, list[str]] = {}

    # -- helpers ----------------------------------------------------------------------------------------
    def line(self, i: int, j: int | None = None, key: str = "") -> int | None:
        link = self.t.links[i]
        if j is None:
            return link.lines.get(key) or link.lines.get("")
        ep = link.endpoints[j]
        return ep.lines.get(key) or ep.lines.get("") or link.lines.get("")

    def path(self, i: int, j: int | None = None) -> str:
        k = self.t.links[i].origin  # its index in the file, when replicas lengthened the list
        k = i if k is None else k
        return f"links[{k}]" if j is None else f"links[{k}].endpoints[{j}]"

    def find(self, x: str) -> str:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while x != root:  # path compression keeps 10000-switch chains linear
            self.parent[x], x = root, self.parent.get(x, x)
        return root

    # -- steps ------------------------------------------------------------------------------------------
    def run(self) -> Addressing:
        ports, veths, nodes = self.expand()
        self.check_port_counts(ports)
        segments = self.segments(veths)
        self.explicit(segments)
        self.allocate(segments)
        return Addressing(nodes, ports, veths, segments)

    def expand(self) -> tuple[list[Port], list[tuple[Port, Port]], list[tuple[str, str]]]:
        t = self.t
        nodes = [(name, node.kind) for name, node in t.nodes.items()]
        reserved: dict[str, set[str]] = {}
        for link in t.links:
            for ep in link.endpoints:
                if ep.ifname is not None:
                    reserved.setdefault(ep.node, set()).add(ep.ifname)
        counter: dict[str, int] = {}
        empty: set[str] = set()

        def next_name(node: str) -> str:
            k, taken = counter.get(node, 0), reserved.get(node, empty)
            while f"eth{k}" in taken:
                k += 1
            counter[node] = k + 1
            return f"eth{k}"

        ports: list[Port] = []
        veths: list[tuple[Port, Port]] = []

        def port(i: int, j: int, ep: Endpoint, mtu: int | None) -> Port:
            p = Port(ep.node, self.kinds[ep.node], ep.ifname or next_name(ep.node), mtu, i, j)
            ports.append(p)
            return p

        for i, link in enumerate(t.links):
            if len(link.endpoints) == 2:
                a = port(i, 0, link.endpoints[0], link.mtu)
                b = port(i, 1, link.endpoints[1], link.mtu)
                veths.append((a, b))
                continue
            sw = f"lan{(i if link.origin is None else link.origin) + 1}"
            self.kinds[sw] = "switch"
            nodes.append((sw, "switch"))
            for j, ep in enumerate(link.endpoints):
                a = port(i, j, ep, link.mtu)
                b = Port(sw, "switch", next_name(sw), link.mtu, i, None)
                ports.append(b)
                veths.append((a, b))
        return ports, veths, nodes

    def check_port_counts(self, ports: list[Port]) -> None:
        """A Linux bridge numbers its ports in 10 bits, port 0 reserved: at most 1023 (BR_MAX_PORTS)."""
        counts: dict[str, int] = {}
        for p in ports:
            if p.kind == "switch":
                counts[p.node] = counts.get(p.node, 0) + 1
        for sw, n in counts.items():
            if n > MAX_BRIDGE_PORTS:
                node = self.t.nodes.get(sw)
                self.t.fail(
                    f"nodes.{sw}" if node else "links",
                    f"switch {sw!r} would have {n} ports; a Linux bridge takes at most {MAX_BRIDGE_PORTS}",
                    "spread the hosts over several switches (e.g. --topo tree,2,100 or leafspine,S,L,H)",
                    node.lines.get("name") if node else None,
                )

    def join_switches(self, a: str, b: str, i: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            loop = [*self.sw_path(a, b), a]
            self.t.fail(
                self.path(i),
                f"this link closes a loop of switches: {' - '.join(loop)}",
                "nslab bridges run no STP, so a loop would flood the lab; remove one link of the "
                "loop, or put a router in it",
                self.line(i),
            )
        self.parent[ra] = rb
        self.sw_adj.setdefault(a, []).append(b)
        self.sw_adj.setdefault(b, []).append(a)

    def sw_path(self, a: str, b: str) -> list[str]:
        prev: dict[str, str] = {a: a}
        queue = deque([a])
        while queue:
            x = queue.popleft()
            for y in self.sw_adj.get(x, []):
                if y not in prev:
                    prev[y] = x
                    queue.append(y)
        out = [b]
        while out[-1] != a:
            out.append(prev[out[-1]])
        return out[::-1]

    def segments(self, veths: list[tuple[Port, Port]]) -> list[Segment]:
        domain: dict[int, str] = {}  # id(port) -> L2 domain element
        link_elem: dict[int, str] = {}
        for v, (a, b) in enumerate(veths):
            a_sw, b_sw = a.kind == "switch", b.kind == "switch"
            if a_sw and b_sw:
                self.join_switches(a.node, b.node, a.link)
                link_elem[a.link] = a.node
            elif a_sw or b_sw:
                sw = a.node if a_sw else b.node
                domain[id(b if a_sw else a)] = sw
                link_elem[a.link] = sw
            else:
                token = f"#veth{v}"  # '#' never starts a node name: no clash
                domain[id(a)] = domain[id(b)] = token
                link_elem[a.link] = token

        segs: list[Segment] = []
        by_root: dict[str, Segment] = {}
        on_seg: dict[tuple[int, str], Port] = {}
        for a, b in veths:
            for p in (a, b):
                if p.kind == "switch":
                    continue
                root = self.find(domain[id(p)])
                seg = by_root.get(root)
                if seg is None:
                    p2p = root.startswith("#")
                    seg = Segment(len(segs), "", p2p)
                    segs.append(seg)
                    by_root[root] = seg
                other = on_seg.get((seg.index, p.node))
                if other is not None:
                    assert p.endpoint is not None
                    self.t.fail(
                        self.path(p.link, p.endpoint),
                        f"node {p.node!r} is already on this L2 segment (through links[{other.link}])",
                        "a node needs one interface per segment; link it to a different switch, "
                        "or remove one of the links",
                        self.line(p.link, p.endpoint),
                    )
                on_seg[(seg.index, p.node)] = p
                p.segment = seg.index
                seg.members.append(p)
        for i, elem in sorted(link_elem.items()):
            seg = by_root.get(self.find(elem))
            if seg is not None:
                seg.links.append(i)
        self.name_segments(segs, by_root)
        return segs

    def name_segments(self, segs: list[Segment], by_root: dict[str, Segment]) -> None:
        # A switched segment is named after its switch (user switches before implicit lanN ones);
        # a point-to-point one after its two nodes.
        switches: dict[str, list[str]] = {}
        for name, kind in self.kinds.items():
            if kind == "switch":
                switches.setdefault(self.find(name), []).append(name)
        bases = []
        for root, seg in by_root.items():
            if seg.p2p:
                bases.append(f"{seg.members[0].node}-{seg.members[1].node}")
            else:
                bases.append(min(switches[root], key=lambda n: (n.startswith("lan"), natural_key(n))))
        for seg, name in zip(by_root.values(), unique_names(bases), strict=True):
            seg.name = name

    def explicit(self, segs: list[Segment]) -> None:
        """Explicit prefixes and addresses: consistent within a segment, unique across the lab."""
        t = self.t
        taken: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}
        subnets: list[tuple[IPNet, str, int | None]] = []
        for seg in segs:
            for version, key, akey in ((4, "prefix", "ipv4"), (6, "prefix6", "ipv6")):
                net: IPNet | None = None
                origin = ""
                for i in seg.links:
                    text = getattr(t.links[i], key)
                    if text is None:
                        continue
                    pnet = parse_net(text, version)
                    if net is not None and pnet != net:
                        t.fail(
                            f"{self.path(i)}.{key}",
                            f"{pnet} differs from {net} given by {origin} for the same L2 segment '{seg.name}'",
                            "links joined by switches share one subnet; give the same prefix or drop one",
                            self.line(i, key=key),
                        )
                    net, origin = pnet, f"{self.path(i)}.{key}"
                for p in seg.members:
                    assert p.endpoint is not None
                    link = t.links[p.link]
                    ep = link.endpoints[p.endpoint]
                    text = getattr(ep, akey)
                    if text is None:
                        continue
                    apath = f"{self.path(p.link, p.endpoint)}.{akey}"
                    aline = self.line(p.link, p.endpoint, akey)
                    iface = parse_iface(text, version, getattr(link, key))
                    if net is None:
                        net, origin = iface.network, apath
                    elif iface.network != net:
                        where = "outside" if iface.ip not in net else "of a different prefix length than"
                        t.fail(
                            apath,
                            f"address {iface} is {where} the subnet {net} of its segment '{seg.name}' (from {origin})",
                            f"give an address inside {net}, written with /{net.prefixlen}",
                            aline,
                        )
                    if iface.ip in taken:
                        t.fail(
                            apath,
                            f"address {iface.ip} is already given to {taken[iface.ip]}",
                            "give each interface a different address",
                            aline,
                        )
                    taken[iface.ip] = apath
                    addr = Addr(version, int(iface.ip), iface.network.prefixlen)
                    if version == 4:
                        p.ipv4 = addr
                    else:
                        p.ipv6 = addr
                if net is not None:
                    if version == 4:
                        seg.ipv4 = net
                    else:
                        seg.ipv6 = net
                    first = seg.links[0] if seg.links else seg.members[0].link
                    subnets.append((net, origin, self.line(first)))
        # Two segments with overlapping subnets would make routes ambiguous.
        subnets.sort(key=lambda s: (s[0].version, int(s[0].network_address), -s[0].prefixlen))
        for (n1, o1, _), (n2, o2, line2) in itertools.pairwise(subnets):
            if n1.version == n2.version and n1.overlaps(n2):
                t.fail(
                    o2,
                    f"subnet {n2} overlaps {n1} ({o1}), which belongs to another L2 segment",
                    "give each segment its own, non-overlapping subnet",
                    line2,
                )

    def allocate(self, segs: list[Segment]) -> None:
        t = self.t
        pools = t.pools
        # Loopback addresses (`loopback:`, checked already) are kept out of the subnets handed out.
        loops = [ipaddress.ip_interface(c).network for n in t.nodes.values() for c in n.loopback]
        reserved4 = [s.ipv4 for s in segs if s.ipv4 is not None] + [n for n in loops if n.version == 4]
        reserved6 = [s.ipv6 for s in segs if s.ipv6 is not None] + [n for n in loops if n.version == 6]
        lan = _Pool(parse_net(pools.ipv4_lan, 4), reserved4, "pools.ipv4_lan")
        p2p = _Pool(parse_net(pools.ipv4_p2p, 4), reserved4, "pools.ipv4_p2p")
        v6 = _Pool(parse_net(pools.ipv6, 6), reserved6, "pools.ipv6")
        for seg in segs:
            first = seg.links[0] if seg.links else seg.members[0].link
            if seg.ipv4 is None:
                if seg.p2p:
                    pool, plen = p2p, P2P_PREFIXLEN
                else:
                    # The smallest subnet, /24 at most, with room for every member (single,10000 -> /18).
                    plen = min(LAN_PREFIXLEN, 32 - (len(seg.members) + 1).bit_length())
                    pool = lan
                seg.ipv4 = pool.take(plen, t, self.path(first), self.line(first))
            if seg.ipv6 is None:
                seg.ipv6 = v6.take(SEG_PREFIXLEN6, t, self.path(first), self.line(first))
            order = sorted(seg.members, key=lambda p: (p.kind != "router", natural_key(p.node)))
            seg_name, count, path, line = seg.name, len(order), self.path(first), self.line(first)
            for net in (seg.ipv4, seg.ipv6):
                addrs = _hand_out(net, [p.ipv4 if net.version == 4 else p.ipv6 for p in order])
                if addrs is None:
                    t.fail(
                        path,
                        f"subnet {net} of segment '{seg_name}' has no room for {count} interfaces",
                        "give the segment a larger prefix",
                        line,
                    )
                for p, addr in zip(order, addrs, strict=True):
                    if net.version == 4:
                        p.ipv4 = addr
                    else:
                        p.ipv6 = addr


def unique_names(bases: list[str], used: set[str] | None = None) -> list[str]:
    """Each base as is, or BASE-2, BASE-3, ... when taken. Linear: a counter per base remembers where the
    search stopped (2000 parallel links between two nodes made the plain retry loop quadratic)."""
    used = set() if used is None else used
    following: dict[str, int] = {}
    out = []
    for base in bases:
        name, k = base, following.get(base, 2)
        if name in used:
            while (name := f"{base}-{k}") in used:
                k += 1
            k += 1
        following[base] = k
        used.add(name)
        out.append(name)
    return out


def _hand_out(net: IPNet, current: list[Addr | None]) -> list[Addr] | None:
    """Fill the gaps in `current` with the lowest free host addresses of `net` (None: not enough room)."""
    base, plen, version = int(net.network_address), net.prefixlen, net.version
    used = {a.ip - base for a in current if a is not None}
    last = net.num_addresses - (2 if version == 4 and plen <= 30 else 1)  # no broadcast below /31
    k = 1 if net.num_addresses > 2 else 0  # /31 and /32 use every address (RFC 3021)
    out: list[Addr] = []
    for a in current:
        if a is None:
            while k in used:
                k += 1
            if k > last:
                return None
            a = Addr(version, base + k, plen)
            k += 1
        out.append(a)
    return out


class _Pool:
    """Hands out aligned subnets from a pool in order, skipping explicitly reserved ones."""

    def __init__(self, pool: IPNet, reserved: list[IPNet], name: str) -> None:
        self.pool, self.name, self.given = pool, name, 0
        self.bits = pool.max_prefixlen
        self.start = int(pool.network_address)
        self.end = self.start + pool.num_addresses
        self.cursor = self.start
        self.reserved = sorted(
            (int(r.network_address), int(r.network_address) + r.num_addresses)
            for r in reserved
            if r.version == pool.version
        )

    def take(self, prefixlen: int, topo: TopologyData, path: str, line: int | None) -> IPNet:
        size = 1 << (self.bits - prefixlen)
        cur = self.cursor
        while True:
            cur = -(-cur // size) * size  # align up
            clash = next((r for r in self.reserved if r[0] < cur + size and cur < r[1]), None)
            if clash is None:
                break
            cur = clash[1]
        if cur + size > self.end or prefixlen < self.pool.prefixlen:
            bigger = max(self.pool.prefixlen - 4, 8 if self.bits == 32 else 16)
            topo.fail(
                path,
                f"no free /{prefixlen} left in {self.name} {self.pool} ({self.given} given out)",
                f"give a larger pool, e.g. {self.name.split('.')[1]}: "
                f"{ipaddress.ip_network((self.start, bigger), strict=False)}, "
                "or explicit prefixes",
                line,
            )
        self.cursor = cur + size
        self.given += 1
        return ipaddress.ip_network((cur, prefixlen))
