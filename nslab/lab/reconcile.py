"""The lab's one reconcile engine: what each node's kernel must hold, what it holds, the difference, and
applying it with undo (DESIGN.md §7).

- desired: the Plan (interfaces up, switch ports in their bridge, planned addresses and routes) plus what the
  active faults change (ends held down, nslab's nft tables, nslab's rate limits). Pure.
- observe: one read of each node's kernel (links, addresses, main-table routes, qdiscs, nft tables).
- diff: pure: the changes that bring the observed state to the desired one, and notes on what is left alone.
- apply: the changes in order (links, addresses, routes, nft, rates); a failure undoes the ones made.

Only nslab's own objects are ever changed: routes that carry nslab's protocol (rtnl.RTPROT_NSLAB, set on every
route a lab installs, so a route without it is the user's, and a delete naming it cannot remove another), the
addresses of the plan (never deleted: a lab's addresses only ever need adding back), the plan's interfaces,
nft tables named `nslab`, qdiscs with handle 5e1a:. A user's route on a planned destination is reported and
left alone. Every verb that must give the plan back uses it: link up, the end of flap, node start, heal,
impair --clear, and `lab up` on a running lab (repair).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import NotFoundError, NslabError
from ..kernel import sysctl
from ..kernel.netns import run_in_netns
from ..kernel.rtnl import IFF_UP, RTPROT_NSLAB, Request, Rtnl

if TYPE_CHECKING:
    from ..netem import Netem
    from .plan import Plan

End = tuple[str, str]  # (node, ifname)
NSLAB_PROTO = str(RTPROT_NSLAB)  # how the route decoder names the protocol (as `ip -j route` does)
TC_HANDLE = 0x5E1A0000  # tc.HANDLE "5e1a:" as the kernel holds it
NFT_TABLES = frozenset({("inet", "nslab"), ("netdev", "nslab")})
FORWARDING = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")  # what a router needs on (apply._sysctls)


# ---- the desired state ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Faults:
    """What the active faults change in the desired state (nslab.faults renders it from its record)."""

    down: frozenset[End] = frozenset()  # link ends held administratively down
    nft: Mapping[str, str] = field(default_factory=dict)  # node -> its nft script, for nodes that hold tables
    rates: Mapping[End, int] = field(default_factory=dict)  # sending end -> bit/s
    netem: Mapping[End, Netem] = field(default_factory=dict)  # sending end -> its netem qdisc

    @property
    def shaped(self) -> set[End]:
        """The sending ends that hold one of nslab's qdiscs (a rate, netem, or both)."""
        return set(self.rates) | set(self.netem)


@dataclass(frozen=True)
class WantRoute:
    family: int  # 4 or 6
    dst: str  # normalised network ("0.0.0.0/0" for default)
    via: str
    dev: str

    @property
    def metric(self) -> int:
        return 0 if self.family == 4 else 1024  # the kernel's default for a route added without one

    def text(self) -> str:
        return f"{_dst_text(self.dst)} via {self.via} dev {self.dev}"


@dataclass(frozen=True)
class WantIface:
    ifname: str
    up: bool
    master: str | None
    addresses: tuple[str, ...]  # normalised CIDRs
    mtu: int


@dataclass(frozen=True)
class WantNode:
    name: str
    netns: str
    bridge: str | None
    ifaces: tuple[WantIface, ...]
    routes: tuple[WantRoute, ...]
    nft: str | None  # the script that rewrites nslab's tables, when the node must hold some
    rates: Mapping[str, int]  # ifname -> bit/s
    forwarding: bool = False  # a router: IPv4 and IPv6 forwarding on
    sysctls: tuple[tuple[str, str], ...] = ()  # the file's `sysctls:` (issue 12)
    loopback: tuple[str, ...] = ()  # the file's `loopback:` addresses, normalised CIDRs on lo
    netem: Mapping[str, Netem] = field(default_factory=dict)  # ifname -> netem qdisc


def _cidr(text: str) -> str:
    return str(ipaddress.ip_interface(text))


def _net(dst: str, family: int) -> str:
    if dst == "default":
        return "0.0.0.0/0" if family == 4 else "::/0"
    return str(ipaddress.ip_network(dst, strict=False))


def _dst_text(dst: str) -> str:
    return "default" if dst.endswith("/0") else dst


def desired(plan: Plan, faults: Faults, nodes: Iterable[str] | None = None) -> dict[str, WantNode]:
    """The desired state of NODES (default: all) of PLAN under FAULTS. Pure."""
    names = [n.name for n in plan.nodes] if nodes is None else list(dict.fromkeys(nodes))
    wanted = set(names)
    routes: dict[str, list[WantRoute]] = {}
    for r in plan.routes:
        if r.node in wanted:
            fam = ipaddress.ip_address(r.via).version
            routes.setdefault(r.node, []).append(WantRoute(fam, _net(r.dst, fam), r.via, r.dev))
    out = {}
    for name in names:
        node = plan.node(name)
        ifaces = tuple(
            WantIface(i.ifname, (name, i.ifname) not in faults.down, i.master, tuple(_cidr(a) for a in i.addresses),
                      i.mtu or 1500)
            for i in plan.interfaces_of(name))
        rates = {ifname: bits for (n, ifname), bits in faults.rates.items() if n == name}
        netem = {ifname: q for (n, ifname), q in faults.netem.items() if n == name}
        out[name] = WantNode(name, node.netns, node.bridge, ifaces, tuple(routes.get(name, ())),
                             faults.nft.get(name), rates, node.forwarding, node.sysctls,
                             tuple(_cidr(a) for a in node.loopback), netem)
    return out


def affected(plan: Plan, touched: Iterable[str]) -> set[str]:
    """TOUCHED plus the nodes whose planned routes go through an address of a touched node."""
    start = set(touched)
    # The plan writes addresses and gateways in ipaddress's canonical text: compared as strings, unparsed.
    owner = {a.split("/", 1)[0]: n.name for n in plan.nodes for a in plan.addresses_of(n.name)}
    return start | {r.node for r in plan.routes if owner.get(r.via) in start}


# ---- what the kernel holds ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeenLink:
    ifindex: int
    kind: str | None
    up: bool
    master: str | None
    mtu: int = 0  # 0: not read


@dataclass(frozen=True)
class SeenRoute:
    family: int
    dst: str  # normalised network
    gateway: str | None
    dev: str | None
    oif: int | None
    protocol: str
    metric: int

    @property
    def ours(self) -> bool:
        return self.protocol == NSLAB_PROTO

    def text(self) -> str:
        parts = [_dst_text(self.dst)] + (["via", self.gateway] if self.gateway else []) + (
            ["dev", self.dev] if self.dev else [])
        return " ".join(parts)


@dataclass(frozen=True)
class SeenNode:
    links: Mapping[str, SeenLink] = field(default_factory=dict)
    addresses: Mapping[str, frozenset[str]] = field(default_factory=dict)  # ifname -> CIDRs
    routes: tuple[SeenRoute, ...] = ()
    nft: bool = False  # nslab's nft tables are there
    shaped: frozenset[str] = frozenset()  # ifnames whose root qdisc is nslab's
    shape: Mapping[str, tuple[str, bool]] = field(default_factory=dict)  # ifname -> (its kind, tbf under it)
    gone: bool = False  # the namespace does not exist
    forwarding: tuple[str, str] | None = None  # net.ipv4.ip_forward, net.ipv6.conf.all.forwarding; None: not read
    sysctls: Mapping[str, str | None] = field(default_factory=dict)  # the plan's keys read; None: unreadable


def observe(netns: Mapping[str, str], nodes: Iterable[str],
            want: Mapping[str, WantNode] | None = None) -> dict[str, SeenNode]:
    """One read of each node's kernel state. Given WANT, only what the diff can use is decoded: addresses of
    interfaces that have planned ones, routes of nodes that have planned routes (a switch of 1000 ports
    holds 1000 link-local addresses and routes, none of them the plan's)."""
    from ..kernel import nfnl, tc

    out = {}
    for node in nodes:
        w = want.get(node) if want is not None else None
        try:
            r = Rtnl.open(netns[node])
        except NotFoundError:
            out[node] = SeenNode(gone=True)
            continue
        with r:
            links = r.links()
            names = {lk.ifindex: lk.ifname for lk in links}
            with_addrs = None if w is None else {i.ifname for i in w.ifaces if i.addresses} | (
                {"lo"} if w.loopback else set())
            addrs: dict[str, set[str]] = {}
            if with_addrs is None or with_addrs:
                for a in r.addresses():
                    name = names.get(a.ifindex)
                    if name is not None and (with_addrs is None or name in with_addrs):
                        addrs.setdefault(name, set()).add(_cidr(f"{a.local}/{a.prefixlen}"))
            routes = []
            for rt in r.routes(names=names) if w is None or w.routes else ():
                if rt.type != "unicast":
                    continue
                fam = 4 if rt.family == "inet" else 6
                routes.append(SeenRoute(fam, _net(rt.dst, fam), rt.gateway, rt.dev, rt.oif, rt.protocol,
                                        rt.metric or 0))
            shape = tc.shapes(r.qdiscs(), names)
        fwd = None
        if w is not None and w.forwarding:  # read where the plan needs it on: one setns per router
            fwd = run_in_netns(netns[node], lambda: (sysctl.read(FORWARDING[0]), sysctl.read(FORWARDING[1])))
        sysctls = run_in_netns(netns[node], functools.partial(_read_sysctls, [k for k, _ in w.sysctls])) \
            if w is not None and w.sysctls else {}
        out[node] = SeenNode(
            links={lk.ifname: SeenLink(lk.ifindex, lk.kind, bool(lk.raw_flags & IFF_UP), lk.master, lk.mtu)
                   for lk in links},
            addresses={k: frozenset(v) for k, v in addrs.items()},
            routes=tuple(routes),
            nft=bool(nfnl.tables(netns[node]) & NFT_TABLES),
            shaped=frozenset(shape),
            shape=shape,
            forwarding=fwd,
            sysctls=sysctls,
        )
    return out


def _read_sysctls(keys: Sequence[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key in keys:
        try:
            out[key] = sysctl.read(key)
        except OSError:  # an interface's key, with the interface gone
            out[key] = None
    return out


def _same_value(a: str, b: str) -> bool:
    """The kernel gives back multi-value sysctls tab-separated (ping_group_range: '0\t2147483647')."""
    return a.split() == b.split()


# ---- the difference (pure) ----------------------------------------------------------------------------------
# Kinds of change, in the order they are applied: a route needs its device up and its address there first.
PHASES = (("link-down", "link-up", "master", "mtu", "forwarding", "sysctl"), ("address",),
          ("route-del", "route-replace", "route-add"), ("nft",), ("unrate", "rate"))


@dataclass(frozen=True)
class Change:
    node: str
    kind: str  # one of PHASES
    ifname: str = ""
    ifindex: int = 0
    cidr: str = ""
    route: WantRoute | None = None
    old: SeenRoute | None = None
    master: int = 0  # the bridge's ifindex
    old_master: int = 0
    old_mtu: int = 0  # what `mtu` puts back on undo
    rate: int = 0
    mtu: int = 1500
    script: str = ""
    undo_script: str = ""  # what `nft` puts back on undo ("" = remove nslab's tables)
    undo_rate: int = 0  # what `rate`/`unrate` put back on undo (0 = none)
    key: str = ""  # `sysctl`: the key, the plan's value, and the value found (what undo puts back)
    value: str = ""
    old_value: str = ""
    netem: Netem | None = None  # `rate`: the netem qdisc of the end (with or without a rate)
    undo_netem: Netem | None = None  # what `rate`/`unrate` put back on undo

    def line(self, done: bool = True) -> str:
        """What a person reads: the node and what was done (DONE) or what differs (not done yet)."""
        k, dev = self.kind, self.ifname
        if k in ("link-up", "link-down"):
            what = f"{dev} set {k[5:]}" if done else f"{dev} is {'down' if k == 'link-up' else 'up'} " \
                f"({'the plan has it up' if k == 'link-up' else 'a fault holds it down'})"
        elif k == "master":
            what = f"{dev} put back into its bridge" if done else f"{dev} is not in its bridge"
        elif k == "mtu":
            what = (f"{dev} mtu set back to {self.mtu} (was {self.old_mtu})" if done
                    else f"{dev} has mtu {self.old_mtu}, the plan {self.mtu}")
        elif k == "forwarding":
            what = ("forwarding turned back on" if done
                    else f"forwarding is off (ip_forward={self.script[0]}, ipv6 forwarding={self.script[2]}), "
                         "the plan has a router")
        elif k == "sysctl":
            was = " ".join(self.old_value.split())  # the kernel separates values with tabs
            what = (f"sysctl {self.key} set back to {self.value} (was {was})" if done
                    else f"sysctl {self.key} is {was}, the plan {self.value}")
        elif k == "address":
            what = f"address {self.cidr} on {dev} " + ("restored" if done else "is missing")
        elif k == "route-add" and self.route is not None:
            what = f"route {self.route.text()} " + ("restored" if done else "is missing")
        elif k == "route-replace" and self.route is not None and self.old is not None:
            what = (f"route {self.route.text()} corrected (was {self.old.text()})" if done
                    else f"route {self.route.text()} is {self.old.text()} instead")
        elif k == "route-del" and self.old is not None:
            what = f"route {self.old.text()} " + ("removed (nslab's, not in the plan)" if done
                                                  else "is nslab's but not in the plan")
        elif k == "nft":
            tables = "{" in self.script
            what = (("nslab's nftables rules rewritten" if tables else "nslab's nftables rules removed") if done
                    else ("nslab's nftables rules are missing or stale" if tables
                          else "nslab's nftables rules are there, with no fault that needs them"))
        elif k == "rate":
            shape = " and ".join(([f"netem ({self.netem.text()})"] if self.netem else [])
                                 + ([f"rate limit {self.rate}bit"] if self.rate else []))
            what = f"{shape} on {dev} " + ("set" if done else "is missing or stale")
        else:
            what = f"nslab's qdisc on {dev} " + ("removed" if done else "is there, with no fault that needs it")
        return f"{self.node}: {what}"


@dataclass(frozen=True)
class Note:
    """Something that differs from the plan and that this engine does not change."""

    node: str
    text: str
    fatal: bool = False  # True: the lab cannot be its plan until it is taken down and up again

    def line(self) -> str:
        return f"{self.node}: {self.text}"


def diff_node(want: WantNode, seen: SeenNode, reset_script: str, force_nft: bool = False,
              force_rates: Iterable[str] = ()) -> tuple[list[Change], list[Note]]:
    """The changes that bring SEEN to WANT for one node, and what stays as it is. Pure.

    force_nft / force_rates: nslab's rules or rate limits there must be rewritten even if present (their
    content changed: the kernel is read for their presence only)."""
    node = want.name
    if seen.gone:
        return [], [Note(node, f"namespace {want.netns} is gone (take the lab down and up again)", True)]
    changes: list[Change] = []
    notes: list[Note] = []
    bridge_index = 0
    if want.bridge is not None:
        br = seen.links.get(want.bridge)
        if br is None or br.kind != "bridge":
            notes.append(Note(node, f"bridge {want.bridge} is missing (take the lab down and up again)", True))
        else:
            bridge_index = br.ifindex
            if not br.up:
                changes.append(Change(node, "link-up", want.bridge, br.ifindex))
    if want.forwarding and seen.forwarding is not None and seen.forwarding != ("1", "1"):
        changes.append(Change(node, "forwarding", script=" ".join(seen.forwarding)))  # the old values, for undo
    for key, value in want.sysctls:
        if key not in seen.sysctls:
            continue  # not read
        found = seen.sysctls[key]
        if found is None:
            notes.append(Note(node, f"sysctl {key} cannot be read (is its interface gone?)"))
        elif not _same_value(found, value):
            changes.append(Change(node, "sysctl", key=key, value=value, old_value=found))
    if want.loopback:
        lo = seen.links.get("lo")
        have_lo = seen.addresses.get("lo", frozenset())
        for cidr in want.loopback:
            if lo is not None and cidr not in have_lo:
                changes.append(Change(node, "address", "lo", lo.ifindex, cidr=cidr))
    up_devs = set()
    for iface in want.ifaces:
        lk = seen.links.get(iface.ifname)
        if lk is None:
            notes.append(Note(node, f"interface {iface.ifname} is missing (take the lab down and up again)", True))
            continue
        if lk.kind != "veth":
            notes.append(Note(node, f"{iface.ifname} is a {lk.kind or 'device'} nslab did not make: left alone", True))
            continue
        if lk.up != iface.up:
            changes.append(Change(node, "link-up" if iface.up else "link-down", iface.ifname, lk.ifindex))
        if lk.mtu and lk.mtu != iface.mtu:
            changes.append(Change(node, "mtu", iface.ifname, lk.ifindex, mtu=iface.mtu, old_mtu=lk.mtu))
        if iface.master is not None and lk.master != iface.master and bridge_index:
            old = seen.links[lk.master].ifindex if lk.master is not None and lk.master in seen.links else 0
            changes.append(Change(node, "master", iface.ifname, lk.ifindex, master=bridge_index, old_master=old))
        if not iface.up:
            continue  # the kernel drops a down device's routes and IPv6 addresses; they come back with it
        up_devs.add(iface.ifname)
        have = seen.addresses.get(iface.ifname, frozenset())
        for cidr in iface.addresses:
            if cidr not in have:
                changes.append(Change(node, "address", iface.ifname, lk.ifindex, cidr=cidr))
    # Routes: matched by the kernel's own key (family, destination, metric) in the main table.
    matched: set[SeenRoute] = set()
    for w in want.routes:
        if w.dev not in up_devs:
            continue  # no route through a device that is down can exist (the kernel refuses and removes them)
        same = [r for r in seen.routes if r.family == w.family and r.dst == w.dst and r.metric == w.metric]
        ours = [r for r in same if r.ours]
        exact = [r for r in ours if r.gateway == w.via and r.dev == w.dev]
        index = seen.links[w.dev].ifindex
        if exact:
            matched.add(exact[0])
        elif ours:
            matched.add(ours[0])
            changes.append(Change(node, "route-replace", w.dev, index, route=w, old=ours[0]))
        elif same:
            other = same[0]
            notes.append(Note(node, f"route {w.text()}: the destination is held by a route nslab did not make "
                                    f"({other.text()}, proto {other.protocol}): left alone"))
        else:
            changes.append(Change(node, "route-add", w.dev, index, route=w))
    planned_devs = {i.ifname for i in want.ifaces}
    for r in seen.routes:
        # nslab's routes that the plan does not hold (a failed grow's, a changed plan's): removed, but only on the
        # plan's interfaces, and never a second next hop of a matched route (ECMP) unless it is nslab's too.
        if r.ours and r not in matched and r.dev in planned_devs and r.dev in up_devs:
            changes.append(Change(node, "route-del", r.dev or "", r.oif or 0, old=r))
    # Faults: nslab's nft tables and rate limits.
    if want.nft is not None:
        if force_nft or not seen.nft:
            changes.append(Change(node, "nft", script=want.nft))
    elif seen.nft or force_nft:
        changes.append(Change(node, "nft", script=reset_script))
    forced = set(force_rates)
    mtu = {i.ifname: i.mtu for i in want.ifaces}
    for ifname in sorted(set(want.rates) | set(want.netem)):
        bits, q = want.rates.get(ifname, 0), want.netem.get(ifname)
        got = seen.shape.get(ifname)  # the kind of qdisc there and whether a tbf is under it (read, not assumed)
        wrong = got is not None and got != (("netem", bool(bits)) if q is not None else ("tbf", False))
        if ifname in forced or ifname not in seen.shaped or wrong:
            changes.append(Change(node, "rate", ifname, rate=bits, mtu=mtu.get(ifname, 1500), netem=q))
    for ifname in sorted(seen.shaped - set(want.rates) - set(want.netem)):
        changes.append(Change(node, "unrate", ifname))
    return changes, notes


@dataclass
class Report:
    changes: list[Change] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.changes or self.notes)

    @property
    def fatal(self) -> list[Note]:
        return [n for n in self.notes if n.fatal]

    def lines(self, done: bool = False) -> list[str]:
        """Changes as made (DONE) or as differences, then the notes."""
        return [c.line(done) for c in self.changes] + [n.line() for n in self.notes]


def diff(want: Mapping[str, WantNode], seen: Mapping[str, SeenNode], reset_script: str,
         force_nft: Iterable[str] = (), force_rates: Iterable[End] = ()) -> Report:
    """Every node's changes and notes, in node order. Pure."""
    fn = set(force_nft)
    fr: dict[str, set[str]] = {}
    for n, ifname in force_rates:
        fr.setdefault(n, set()).add(ifname)
    rep = Report()
    for name, w in want.items():
        ch, no = diff_node(w, seen[name], reset_script, name in fn, fr.get(name, ()))
        rep.changes += ch
        rep.notes += no
    return rep


# ---- applying, with undo ------------------------------------------------------------------------------------------
def _request(c: Change, undo: bool = False) -> Request | None:
    """The rtnetlink request that makes change C (or, with undo, takes it back); None for nft/tc changes."""
    k = c.kind
    if undo:
        k = {"link-up": "link-down", "link-down": "link-up", "address": "address-del", "route-add": "route-del-new",
             "route-replace": "route-replace-old", "route-del": "route-add-old", "master": "master-old"}.get(k, k)
    if k in ("link-up", "link-down"):
        return Rtnl.req_set_link(c.ifindex, c.ifname, up=k == "link-up")
    if k == "mtu":
        return Rtnl.req_set_link(c.ifindex, c.ifname, mtu=c.old_mtu if undo else c.mtu)
    if k in ("master", "master-old"):
        return Rtnl.req_set_link(c.ifindex, c.ifname, master=c.master if k == "master" else c.old_master)
    if k in ("address", "address-del"):
        return Rtnl.req_addr(c.ifindex, c.ifname, c.cidr, add=k == "address")
    if k in ("route-add", "route-replace") and c.route is not None:
        return Rtnl.req_route(_dst_text(c.route.dst), gateway=c.route.via, oif=c.ifindex, protocol=RTPROT_NSLAB,
                              replace=k == "route-replace")
    if k == "route-del-new" and c.route is not None:
        return Rtnl.req_route(_dst_text(c.route.dst), gateway=c.route.via, oif=c.ifindex, add=False,
                              protocol=RTPROT_NSLAB)
    if k in ("route-replace-old", "route-add-old", "route-del") and c.old is not None:
        gw, oif = c.old.gateway, c.old.oif
        if k == "route-del":
            return Rtnl.req_route(_dst_text(c.old.dst), gateway=gw, oif=oif, add=False, protocol=RTPROT_NSLAB,
                                  metric=c.old.metric or None)
        return Rtnl.req_route(_dst_text(c.old.dst), gateway=gw, oif=oif, protocol=RTPROT_NSLAB,
                              metric=c.old.metric or None, replace=k == "route-replace-old")
    return None


def _do_other(netns: str, c: Change, undo: bool = False) -> None:
    """nft and tc changes (through the `nft` and `tc` programs: one transaction each)."""
    from ..kernel import nft, tc

    if c.kind == "nft":
        nft.apply(netns, c.undo_script if undo else c.script)
    elif c.kind == "forwarding":
        values = c.script.split() if undo else ["1", "1"]

        def write() -> None:
            for key, value in zip(FORWARDING, values, strict=True):
                sysctl.write(key, value)

        run_in_netns(netns, write)
    elif c.kind == "sysctl":
        run_in_netns(netns, functools.partial(sysctl.write, c.key, c.old_value if undo else c.value))
    elif c.kind in ("rate", "unrate"):
        if undo:
            bits, q, before = c.undo_rate, c.undo_netem, c.netem
            if not bits and q is None and c.kind == "unrate":
                return  # nothing recorded to put back
        else:
            bits, q, before = (c.rate, c.netem, c.undo_netem) if c.kind == "rate" else (0, None, c.undo_netem)
        tc.set_shape(netns, c.ifname, bits, q, c.mtu, before)


def apply(netns: Mapping[str, str], changes: Sequence[Change]) -> None:
    """Make CHANGES, phase by phase, one batch per node and phase; on any failure take back those made
    (newest first) and re-raise."""
    from ..shield import run_cleanup

    socks: dict[str, Rtnl] = {}
    done: list[Change] = []

    def sock(node: str) -> Rtnl:
        if node not in socks:
            socks[node] = Rtnl.open(netns[node])
        return socks[node]

    try:
        for phase in PHASES:
            todo = [c for kind in phase for c in changes if c.kind == kind]
            by_node: dict[str, list[Change]] = {}
            for c in todo:
                by_node.setdefault(c.node, []).append(c)
            for node, items in by_node.items():
                rt = [c for c in items if _request(c) is not None]
                if rt:
                    results = sock(node).run([r for c in rt if (r := _request(c)) is not None])
                    first: NslabError | None = None
                    for c, err in zip(rt, results, strict=True):
                        if err is None:
                            done.append(c)
                        elif first is None:
                            first = err
                    if first is not None:
                        raise first
                for c in items:
                    if _request(c) is None:
                        if c.kind in ("rate", "unrate"):
                            done.append(c)  # netem and the tbf under it are two steps: undo even a half one
                        _do_other(netns[node], c)
                        if c.kind not in ("rate", "unrate"):
                            done.append(c)
    except BaseException:

        def undo() -> None:
            for c in reversed(done):
                with contextlib.suppress(Exception):
                    req = _request(c, undo=True)
                    if req is not None:
                        sock(c.node).run([req])
                    else:
                        _do_other(netns[c.node], c, undo=True)

        run_cleanup(undo)  # a Ctrl-C must not leave half of the undo
        raise
    finally:
        for s in socks.values():
            s.close()


def reconcile(plan: Plan, faults: Faults, nodes: Iterable[str] | None = None, *, previous: Faults | None = None,
              force_nft: Iterable[str] = (), force_rates: Iterable[End] = (), dry_run: bool = False,
              before_apply: Callable[[Report], None] | None = None) -> Report:
    """Bring NODES (default: all) of a lab to PLAN under FAULTS: observe, diff, apply with undo. Returns what
    was changed and what was left alone. PREVIOUS: the fault state being left (what an undo puts back)."""
    from ..kernel.nft import reset_script

    want = desired(plan, faults, nodes)
    netns = {n.name: n.netns for n in plan.nodes}
    seen = observe(netns, want, want)
    reset = reset_script()
    rep = diff(want, seen, reset, force_nft, force_rates)
    prev = previous or faults
    rep.changes = [replace(c, undo_script=prev.nft.get(c.node, reset), undo_rate=prev.rates.get((c.node, c.ifname), 0),
                           undo_netem=prev.netem.get((c.node, c.ifname)))
                   if c.kind in ("nft", "rate", "unrate") else c for c in rep.changes]
    if before_apply is not None:
        before_apply(rep)
    if not dry_run and rep.changes:
        apply(netns, rep.changes)
    return rep
