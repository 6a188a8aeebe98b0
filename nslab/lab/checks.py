"""The rules of a topology (shared by files, the built-in shapes and the Python API): every field, and
the addresses and subnets a lab interface may take. Pure. Each failure is a UsageError naming the field,
with the file's line when it came from one. What only planning finds (L2 loops, address clashes, pool
room) is in `addressing`.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Sequence

from ..errors import UsageError
from ..names import (
    IMPLICIT_SWITCH_RE,
    LAB_NAME_MAX,
    LAB_NAME_RE,
    NODE_NAME_MAX,
    NODE_NAME_RE,
    check_ifname,
    check_utf8,
    natural_key,
)
from .model import (
    BRIDGE,
    CHECK_KINDS,
    DEFAULT_POOLS,
    KINDS,
    MTU_MAX,
    MTU_MIN,
    ROUTING,
    Check,
    IPIface,
    IPNet,
    Link,
    Node,
    TopologyData,
)


def known(names: Iterable[str], limit: int = 12) -> str:
    names = sorted(names, key=natural_key)
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def closest(word: str, choices: Sequence[str]) -> str | None:
    match = difflib.get_close_matches(word, choices, n=1)
    return match[0] if match else None


# Ranges an interface of a lab cannot use: the kernel refuses some (IPv6 unspecified, loopback, multicast), the
# others it takes but never routes as a lab expects (IPv4 loopback, multicast, class E) or makes its own
# (IPv6 link-local: every interface has one; a route to fe80::/64 names no interface).
_REFUSED_RANGES: tuple[tuple[IPNet, str, str], ...] = tuple(
    (ipaddress.ip_network(net), what, why) for net, what, why in (
        ("0.0.0.0/8", "'this network' range", ""), ("127.0.0.0/8", "loopback range", ""),
        ("224.0.0.0/4", "multicast range", ""),
        ("240.0.0.0/4", "reserved range", " (with the broadcast 255.255.255.255)"),
        ("::/128", "unspecified address", ""), ("::1/128", "loopback address", ""),
        ("::ffff:0:0/96", "IPv4-mapped range", ""),
        ("fe80::/10", "link-local range", " (each interface makes its own fe80:: address)"),
        ("ff00::/8", "multicast range", ""),
    )
)


def _refused_range(net: IPNet) -> str | None:
    for special, what, why in _REFUSED_RANGES:
        if special.version == net.version and net.overlaps(special):
            return f"{what} {special}{why}"
    return None


def _literal(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"expected {what} string, got {text!r}")
    try:
        check_utf8(text, repr(text))
    except UsageError as exc:
        raise ValueError(exc.message) from None
    if "%" in text:
        raise ValueError(f"{text!r} has a zone id ('%...'): a lab address is global, a zone id names an interface "
                         "of one machine")
    return text


def parse_net(text: object, version: int) -> IPNet:
    """A subnet in CIDR form, of the given IP version; ValueError says why not."""
    text = _literal(text, "a CIDR")
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            fixed = ipaddress.ip_network(text, strict=False)
            raise ValueError(f"{text!r} has host bits set (did you mean {fixed}?)") from None
        raise ValueError(f"{text!r} is not a valid CIDR subnet") from None
    if net.version != version:
        raise ValueError(f"{text!r} is IPv{net.version}, expected an IPv{version} subnet")
    special = _refused_range(net)
    if special:
        raise ValueError(f"{text!r} overlaps the {special}, which lab interfaces cannot use")
    return net


class Checker:
    def __init__(self, topo: TopologyData) -> None:
        self.t = topo

    def all(self) -> None:
        t = self.t
        self.lab()
        if t.routing not in ROUTING:
            t.fail(
                "routing",
                f"must be 'auto' or 'none', not {t.routing!r}",
                "use routing: auto (default routes and router routes) or routing: none",
                t.lines.get("routing"),
            )
        self.pools()
        if not t.nodes:
            t.fail(
                "nodes",
                "no nodes declared",
                "declare at least one node, e.g. nodes: {h1: {}}",
                t.lines.get("nodes"),
            )
        for key, node in t.nodes.items():
            self.node(key, node)
        ifnames: dict[tuple[str, str], str] = {}
        for i, link in enumerate(t.links):
            self.link(i, link, ifnames)
        for i, check in enumerate(t.checks):
            self.check(i, check)
        self.profiles()
        for i, link in enumerate(t.links):
            if link.impair:
                self.impair(i, link)
        for i in range(len(t.between)):
            self.between(i)

    def profiles(self) -> None:
        import re

        from .profiles import PROFILE_NAME_RE, resolve

        t = self.t
        for name, values in t.profiles.items():
            line = t.lines.get(f"profiles.{name}", t.lines.get("profiles"))
            if not re.fullmatch(PROFILE_NAME_RE, name):
                t.fail(f"profiles.{name}", f"invalid profile name {name!r}",
                       "lower-case letters, digits and '-', starting with a letter (at most 32)", line)
            if "profile" in values:
                t.fail(f"profiles.{name}.profile", "a profile cannot name another profile",
                       "list the impairment values themselves", line)
            try:
                resolve(values, t.profiles)
            except UsageError as exc:
                t.fail(f"profiles.{name}", exc.message, exc.hint, line)

    def between(self, i: int) -> None:
        from .profiles import resolve

        t = self.t
        rule = t.between[i]
        path, line = f"between[{i}]", rule.lines.get("")
        for side, nodes in (("a", rule.a), ("b", rule.b)):
            if not nodes:
                t.fail(f"{path}.{side}", "no nodes", "list the nodes of one side, e.g. a: [eu-r1, eu-h1]", line)
            for n in nodes:
                if n not in t.nodes:
                    t.fail(f"{path}.{side}", f"unknown node {n!r}",
                           f"use a node declared under nodes:; known nodes: {known(t.nodes)}",
                           rule.lines.get(side, line))
        both = sorted(set(rule.a) & set(rule.b))
        if both:
            t.fail(path, f"node {both[0]!r} is on both sides", "put each node on one side", line)
        joined = [lk for lk in t.links if len(lk.endpoints) == 2 and (
            (lk.endpoints[0].node in rule.a and lk.endpoints[1].node in rule.b)
            or (lk.endpoints[0].node in rule.b and lk.endpoints[1].node in rule.a))]
        if not joined:
            t.fail(path, "no point-to-point link joins a node of a to a node of b",
                   "impairments act on links: name the nodes at the two ends of the links between the regions "
                   "(on a LAN, the host and its switch)", line)
        if not rule.impair:
            t.fail(path, "no impairment given", "e.g. {a: [eu1], b: [us1], delay: 40ms} or profile: intercontinental",
                   line)
        try:
            resolve(rule.impair, t.profiles)
        except UsageError as exc:
            t.fail(path, exc.message, exc.hint, line)

    def impair(self, i: int, link: Link) -> None:
        t, path, line = self.t, f"{_link_path(i, link)}.impair", link.lines.get("impair", link.lines.get(""))
        if len(link.endpoints) != 2:
            t.fail(path, "impairments act on a link between two nodes, not on a LAN segment",
                   "declare them on the point-to-point links, e.g. between a host and its switch", line)
        a, b = link.endpoints[0].node, link.endpoints[1].node
        for direction, values in link.impair.items():
            if direction != "both" and direction not in (f"{a}->{b}", f"{b}->{a}"):
                t.fail(f"{path}.{direction}", f"direction {direction!r} is not along this link",
                       f"write {a}->{b} or {b}->{a}", line)
            from .profiles import resolve

            for kind, value in values.items():  # each value alone first, so the error names its key
                try:
                    resolve({kind: value}, t.profiles, combination=False)
                except UsageError as exc:
                    t.fail(f"{path}.{direction}.{kind}" if direction != "both" else f"{path}.{kind}",
                           exc.message, exc.hint, line)
            both = link.impair.get("both", {}) if direction != "both" else {}
            try:
                resolve({**both, **values}, t.profiles)
            except UsageError as exc:
                t.fail(f"{path}.{direction}" if direction != "both" else path, exc.message, exc.hint, line)

    def check(self, i: int, c: Check) -> None:
        t, path = self.t, f"checks[{i}]"
        line = c.lines.get("")
        if c.kind not in CHECK_KINDS:
            close = closest(c.kind, CHECK_KINDS)
            t.fail(path, f"unknown check {c.kind!r}",
                   (f"did you mean {close!r}? " if close else "") + f"checks are: {', '.join(CHECK_KINDS)}", line)
        for role, name in (("from", c.src), ("to", c.dst)):
            if name not in t.nodes:
                group = t.groups.get(name)
                t.fail(f"{path}.{c.kind}", f"unknown node {name!r} ({role})",
                       f"{name!r} is a group or replicated node: name one of its members, e.g. {group[0]}"
                       if group else f"use a node declared under nodes:; known nodes: {known(t.nodes)}",
                       c.lines.get(role, line))
        if c.kind == "port_open":
            if c.port is None or not 1 <= c.port <= 65535:
                t.fail(f"{path}.port_open.port", f"port must be 1..65535, got {c.port!r}",
                       "write port_open: {from: h1, to: web, port: 80}", c.lines.get("port", line))
        elif c.port is not None:
            t.fail(f"{path}.{c.kind}", "only port_open takes a port", "drop the port, or use port_open", line)
        elif c.src == c.dst:
            t.fail(f"{path}.{c.kind}", f"a node probing itself ({c.src!r}) says nothing about the network",
                   "name two different nodes", line)
        if c.retries is not None and not 1 <= c.retries <= 600:
            t.fail(f"{path}.retries", f"retries must be 1..600, got {c.retries}",
                   "give the number of one-second tries, e.g. retries: 5", c.lines.get("retries", line))

    def lab(self) -> None:
        t, name = self.t, self.t.name
        line = t.lines.get("name")
        if not isinstance(name, str) or not name:
            t.fail("name", "the lab name is empty", "give the lab a short name, e.g. name: campus", line)
        if len(name) > LAB_NAME_MAX or not LAB_NAME_RE.fullmatch(name):
            t.fail(
                "name",
                f"invalid lab name {name!r}",
                f"use 1..{LAB_NAME_MAX} characters from a-z, 0-9 and '-', starting with a letter "
                f"(it prefixes every namespace name)",
                line,
            )

    def pools(self) -> None:
        t, pools = self.t, self.t.pools
        nets: dict[str, IPNet] = {}
        for key, version, longest in (("ipv4_lan", 4, 24), ("ipv4_p2p", 4, 30), ("ipv6", 6, 64)):
            line = pools.lines.get(key)
            try:
                net = parse_net(getattr(pools, key), version)
            except ValueError as exc:
                t.fail(
                    f"pools.{key}",
                    str(exc),
                    f"give an IPv{version} subnet such as {DEFAULT_POOLS[key]}",
                    line,
                )
            if net.prefixlen > longest:
                t.fail(
                    f"pools.{key}",
                    f"pool {net} is smaller than one subnet (/{longest})",
                    f"give a pool of prefix length /{longest} or shorter, e.g. {DEFAULT_POOLS[key]}",
                    line,
                )
            nets[key] = net
        lan, p2p = nets["ipv4_lan"], nets["ipv4_p2p"]
        if isinstance(lan, ipaddress.IPv4Network) and isinstance(p2p, ipaddress.IPv4Network) and lan.overlaps(p2p):
            t.fail(
                "pools.ipv4_p2p",
                f"pool {p2p} overlaps pools.ipv4_lan {lan}",
                "give the two IPv4 pools disjoint ranges, e.g. 10.0.0.0/16 and 10.255.0.0/16",
                pools.lines.get("ipv4_p2p") or pools.lines.get("ipv4_lan"),
            )

    def node(self, key: str, node: Node) -> None:
        t = self.t
        path = f"nodes.{key}"
        line = node.lines.get("")
        if not isinstance(key, str) or len(key) > NODE_NAME_MAX or not NODE_NAME_RE.fullmatch(key):
            t.fail(
                path,
                f"invalid node name {key!r}",
                f"use 1..{NODE_NAME_MAX} characters from a-z, 0-9 and '-', starting with a letter "
                f"(the namespace is '{t.name}-<node>')",
                line,
            )
        if isinstance(key, str) and key in HOSTS_NAMES:
            t.fail(
                path,
                f"node name {key!r} is reserved",
                f"{', '.join(HOSTS_NAMES)} are names /etc/hosts gives the loopback, and nslab writes the nodes' "
                "names there and rewrites them in commands; rename the node",
                line,
            )
        if IMPLICIT_SWITCH_RE.fullmatch(key):
            t.fail(
                path,
                f"node name {key!r} is reserved",
                "names lan1, lan2, ... belong to the switches nslab adds for links of 3+ endpoints; rename the node",
                line,
            )
        if node.name != key:
            t.fail(path, f"node is filed under {key!r} but named {node.name!r}", "make the two agree", line)
        if node.kind not in KINDS:
            close = closest(str(node.kind), KINDS)
            t.fail(
                f"{path}.kind",
                f"unknown kind {node.kind!r}",
                (f"did you mean {close!r}? " if close else "") + "kind is one of: host, router, switch",
                node.lines.get("kind", line),
            )
        self.node_settings(path, node)

    # ---- issue 12: what a node carries (env, sysctls, routes, loopback, exec) --------------------------------
    def node_settings(self, path: str, node: Node) -> None:
        t, line = self.t, node.lines.get("")

        def at(key: str) -> int | None:
            return node.lines.get(key) or node.lines.get(key.split(".")[0].split("[")[0]) or line

        for key, value in node.env.items():
            if not isinstance(key, str) or not ENV_NAME_RE.fullmatch(key):
                t.fail(f"{path}.env", f"invalid environment variable name {key!r}",
                       "use letters, digits and '_', not starting with a digit, e.g. ETCD_NAME", at(f"env.{key}"))
            _text(t, f"{path}.env.{key}", value, at(f"env.{key}"), "an environment value")
        for key, value in node.sysctls.items():
            kline = at(f"sysctls.{key}")
            if not isinstance(key, str) or not key.startswith("net."):
                t.fail(f"{path}.sysctls.{key}", "only net.* sysctls can be set on a node",
                       "a node has its own network namespace, and only net.* keys belong to it; kernel.*, vm.*, "
                       "fs.* ... would change the whole machine", kline)
            if not SYSCTL_RE.fullmatch(key):
                t.fail(f"{path}.sysctls.{key}", f"invalid sysctl name {key!r}",
                       "write it as sysctl(8) does, dot-separated: net.ipv4.conf.all.rp_filter", kline)
            if node.kind == "router" and isinstance(key, str) and FORWARDING_RE.fullmatch(key):
                t.fail(f"{path}.sysctls.{key}", f"{key} is nslab's on a router: it keeps forwarding on "
                       "(ip_forward, conf.all/default/<interface>.forwarding of IPv4 and IPv6 all switch it)",
                       "drop it, or make the node a host (kind: host) to decide forwarding yourself", kline)
            if isinstance(key, str) and key in MACHINE_SYSCTLS:
                t.fail(f"{path}.sysctls.{key}", f"{key} is the machine's, not the node's: the kernel keeps it "
                       "read-only inside a network namespace",
                       "drop it, and set it on the host (sysctl -w) if the lab needs it", kline)
            _text(t, f"{path}.sysctls.{key}", value, kline, "a sysctl value")
            if "\n" in value or len(value) > 256:
                t.fail(f"{path}.sysctls.{key}", "a sysctl value is one short line",
                       "give the value as sysctl -w would take it", kline)
        if node.kind == "switch" and (node.routes or node.loopback):
            what = "routes" if node.routes else "loopback"
            t.fail(f"{path}.{what}", f"switch {node.name!r} carries no addresses, so no {what}",
                   "give routes and loopback addresses to hosts and routers", at(what))
        for j, r in enumerate(node.routes):
            rpath, rline = f"{path}.routes[{j}]", r.lines.get("", at("routes"))
            family = None
            if r.to != "default":
                try:
                    net = ipaddress.ip_network(_literal(r.to, "a CIDR"), strict=True)
                except ValueError as exc:
                    msg = str(exc)
                    if "host bits set" in msg and isinstance(r.to, str):
                        msg = f"{r.to!r} has host bits set (did you mean {ipaddress.ip_network(r.to, strict=False)}?)"
                    elif "CIDR string" not in msg and "zone id" not in msg:
                        msg = f"{r.to!r} is not 'default' nor a CIDR subnet"
                    t.fail(f"{rpath}.to", msg, "write to: default, to: 10.9.0.0/16 or to: fd00:9::/64",
                           r.lines.get("to", rline))
                family = net.version
            if isinstance(r.via, str) and NODE_NAME_RE.fullmatch(r.via):
                if r.via not in t.nodes:
                    t.fail(f"{rpath}.via", f"unknown node {r.via!r}",
                           f"give an address, or a node that shares a segment with {node.name!r}; "
                           f"known nodes: {known(t.nodes)}", r.lines.get("via", rline))
                if r.via == node.name:
                    t.fail(f"{rpath}.via", "a node cannot route via itself", "name its next hop",
                           r.lines.get("via", rline))
                continue
            try:
                via = ipaddress.ip_address(_literal(r.via, "an address"))
            except ValueError as exc:
                msg = str(exc) if "zone id" in str(exc) else f"{r.via!r} is not an address nor a node name"
                t.fail(f"{rpath}.via", msg, "write via: 10.0.1.254, via: fd00::1 or via: r1 (a neighbour node)",
                       r.lines.get("via", rline))
            special = _refused_range(ipaddress.ip_network(via))
            if special:
                t.fail(f"{rpath}.via", f"{r.via!r} is in the {special}, which no lab interface holds",
                       "give the next hop's address on a segment of this node", r.lines.get("via", rline))
            if family is not None and via.version != family:
                t.fail(f"{rpath}.via", f"{r.via!r} is IPv{via.version}, the destination {r.to} IPv{family}",
                       "give a next hop of the destination's family", r.lines.get("via", rline))
        for j, cidr in enumerate(node.loopback):
            lpath, lline = f"{path}.loopback[{j}]", at(f"loopback[{j}]")
            try:
                text = _literal(cidr, "a CIDR")
                if "/" not in text:
                    raise ValueError(f"{text!r} has no prefix length")
                iface = ipaddress.ip_interface(text)
            except ValueError as exc:
                msg = str(exc) if "prefix length" in str(exc) or "zone id" in str(exc) else \
                    f"{cidr!r} is not an address in CIDR form"
                t.fail(lpath, msg, "write loopback: [10.0.0.1/32, fd00::1/128]", lline)
            special = _refused_range(ipaddress.ip_network(iface.ip))
            if special:
                t.fail(lpath, f"{cidr!r} is in the {special}, which a lab address cannot use",
                       "give a global address, e.g. 10.10.0.1/32 or fd00:10::1/128", lline)
        for j, cmd in enumerate(node.exec):
            cpath, cline = f"{path}.exec[{j}]", at(f"exec[{j}]")
            words = [cmd] if isinstance(cmd, str) else cmd
            if not isinstance(cmd, str | list) or not words or (isinstance(cmd, str) and not cmd.strip()):
                t.fail(cpath, "an empty command", "write a command line, or an argv list like [ip, -br, addr]", cline)
            for w in words:
                _text(t, cpath, w, cline, "a command")

    def link(self, i: int, link: Link, ifnames: dict[tuple[str, str], str]) -> None:
        t = self.t
        path = _link_path(i, link)
        line = link.lines.get("")
        if len(link.endpoints) < 2:
            t.fail(
                path,
                f"a link needs at least 2 endpoints, this one has {len(link.endpoints)}",
                "list two nodes for a point-to-point link, or three or more for a LAN",
                line,
            )
        if link.mtu is not None and (
            isinstance(link.mtu, bool) or not isinstance(link.mtu, int) or not MTU_MIN <= link.mtu <= MTU_MAX
        ):
            t.fail(
                f"{path}.mtu",
                f"mtu {link.mtu!r} is not an integer in {MTU_MIN}..{MTU_MAX}",
                f"every lab link carries IPv6, whose minimum MTU is {MTU_MIN}; give a whole number of bytes, "
                "e.g. mtu: 1500 or mtu: 9000",
                link.lines.get("mtu", line),
            )
        for key, version in (("prefix", 4), ("prefix6", 6)):
            value = getattr(link, key)
            if value is not None:
                try:
                    parse_net(value, version)
                except ValueError as exc:
                    t.fail(
                        f"{path}.{key}",
                        str(exc),
                        f"give an IPv{version} subnet, e.g. {key}: "
                        + ("10.9.0.0/24" if version == 4 else "fd00:9::/64"),
                        link.lines.get(key, line),
                    )
        seen: dict[str, int] = {}
        for j, ep in enumerate(link.endpoints):
            epath = f"{path}.endpoints[{j}]"
            eline = ep.lines.get("", line)
            if ep.node not in t.nodes:
                close = closest(ep.node, list(t.nodes))
                t.fail(
                    epath,
                    f"unknown node {ep.node!r}",
                    (f"did you mean {close!r}? " if close else "")
                    + f"declare it under nodes: or fix the spelling; known nodes: {known(t.nodes)}",
                    ep.lines.get("node", eline),
                )
            if ep.node in seen:
                t.fail(
                    epath,
                    f"node {ep.node!r} appears twice in this link (also endpoints[{seen[ep.node]}])",
                    "a link joins different nodes; remove the repeated endpoint",
                    eline,
                )
            seen[ep.node] = j
            kind = t.nodes[ep.node].kind
            if ep.ifname is not None:
                iline = ep.lines.get("ifname", eline)
                try:
                    check_ifname(ep.ifname)
                except UsageError as exc:
                    t.fail(f"{epath}.ifname", exc.message, exc.hint, iline)
                if ep.ifname == "lo":
                    t.fail(f"{epath}.ifname", "'lo' is the loopback device every namespace already has",
                           "choose another interface name, e.g. eth1", iline)
                if ep.ifname == BRIDGE and kind == "switch":
                    t.fail(f"{epath}.ifname", f"{BRIDGE!r} is the bridge of switch {ep.node!r} itself, not a port",
                           "choose another name for the port, e.g. eth1", iline)
                other = ifnames.get((ep.node, ep.ifname))
                if other is not None:
                    t.fail(
                        f"{epath}.ifname",
                        f"node {ep.node!r} already has an interface {ep.ifname!r} ({other})",
                        "give each interface of a node a unique name",
                        iline,
                    )
                ifnames[(ep.node, ep.ifname)] = epath
            for key, version in (("ipv4", 4), ("ipv6", 6)):
                value = getattr(ep, key)
                if value is None:
                    continue
                aline = ep.lines.get(key, eline)
                if kind == "switch":
                    t.fail(
                        f"{epath}.{key}",
                        f"switch {ep.node!r} cannot have an address on its port",
                        "a switch port is a bridge port and carries no address; remove it, or make the "
                        "node a router or host",
                        aline,
                    )
                try:
                    parse_iface(value, version, getattr(link, "prefix" if version == 4 else "prefix6"))
                except ValueError as exc:
                    t.fail(
                        f"{epath}.{key}",
                        str(exc),
                        "write an address with its prefix length, e.g. "
                        + ("10.1.2.3/24" if version == 4 else "fd00::5/64"),
                        aline,
                    )


def _link_path(i: int, link: Link) -> str:
    """links[N] as the file counts: a link repeated for replicas keeps its place (Link.origin)."""
    return f"links[{i if link.origin is None else link.origin}]"


ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SYSCTL_RE = re.compile(r"net(\.[A-Za-z0-9_-]+)+")
ROUTER_SYSCTLS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")  # reconcile.FORWARDING
# Every key that switches a router's forwarding (docs/topology.md): ip_forward and conf.all.forwarding are one
# switch in IPv4 (writing either sets the other and every interface's); conf.<if>.forwarding decides whether
# packets received on that interface are forwarded; conf.default.forwarding is what nslab's interfaces, made
# after the sysctls, start with. IPv6's conf.*.forwarding turns the interface into a host (RA, ND router flag).
FORWARDING_RE = re.compile(r"net\.ipv4\.ip_forward|net\.ipv[46]\.conf\.[^.]+\.forwarding")
# net.* keys that exist in a network namespace but belong to the machine (read-only there; measured on 6.18
# with `unshare -n sysctl -w KEY=<its value>`): refused at load rather than failing `up`.
MACHINE_SYSCTLS = frozenset({
    "net.core.rmem_max", "net.core.wmem_max", "net.core.rmem_default", "net.core.wmem_default",
    "net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_buckets",
    "net.ipv4.tcp_available_congestion_control",
})
# Names /etc/hosts gives the loopback: a node called so would break the hosts file and the name rewriting.
HOSTS_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def _text(t: TopologyData, path: str, value: object, line: int | None, what: str) -> None:
    """Text a program will get: a string, valid UTF-8, without NUL (which no argv or environment holds)."""
    if not isinstance(value, str):
        t.fail(path, f"{what} must be text, got {value!r}", "write it as a string", line)
    try:
        check_utf8(value, repr(value))
    except UsageError as exc:
        t.fail(path, exc.message, exc.hint, line)
    if "\x00" in value:
        t.fail(path, f"{what} holds a NUL character", "remove it: no program argument or variable can hold one", line)


def parse_iface(text: object, version: int, prefix: str | None) -> IPIface:
    """An address with its prefix length; a bare address takes the link's `prefix` length."""
    text = _literal(text, "an address")
    if "/" not in text and prefix is not None:
        text = f"{text}/{prefix.split('/')[1]}"
    if "/" not in text:
        raise ValueError(f"address {text!r} has no prefix length and the link has no prefix")
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid IPv{version} address in CIDR form") from None
    if iface.version != version:
        raise ValueError(f"{text!r} is IPv{iface.version}, expected IPv{version}")
    net = iface.network
    special = _refused_range(ipaddress.ip_network(iface.ip))
    if special:
        raise ValueError(f"{text!r} is in the {special}, which lab interfaces cannot use")
    if version == 4 and net.prefixlen <= 30 and iface.ip in (net.network_address, net.broadcast_address):
        raise ValueError(
            f"{text!r} is the {'network' if iface.ip == net.network_address else 'broadcast'} "
            f"address of {net}, not a host address"
        )
    return iface
