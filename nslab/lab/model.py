"""The topology as data: nodes, links, pools, checks and the lab's fields (pure: no checks, no files, no kernel).

`nslab.lab.spec.Topology` adds the checked builder API on top (`Topology.new`, `add_node`, `validate`);
the rules are in `checks`, the YAML reader in `loader`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from ..errors import UsageError

if TYPE_CHECKING:
    from .svcspec import ServiceSpec

KINDS = ("host", "router", "switch")
ROUTING = ("auto", "none")
# Every segment of a lab carries IPv6, whose minimum MTU is 1280 (the kernel drops IPv6 from a device below
# it, and refuses its addresses); 65535 is the largest value a veth accepts.
MTU_MIN, MTU_MAX = 1280, 65535
BRIDGE = "br0"  # the bridge inside every switch namespace (plan.BRIDGE): no port of a switch may take it
DEFAULT_POOLS = {"ipv4_lan": "10.0.0.0/16", "ipv4_p2p": "10.255.0.0/16", "ipv6": "fd00:6e73::/48"}

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPIface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


# --- the model --------------------------------------------------------------------------------------------
# Mutable dataclasses so the Python builder API can grow them; `lines` remembers where each field was
# written in the file (empty for topologies built in Python), and is ignored by == and repr.


@dataclass
class StaticRoute:
    """A route the file declares on a node (`routes:`): TO is "default" or a CIDR; VIA an address on one of
    the node's segments, or the name of a node that shares a segment with it (its address there)."""

    to: str
    via: str
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)


# A command of `exec`: an argv list, or a string run by `sh -c`.
Command = list[str] | str


@dataclass
class Node:
    name: str
    kind: str = "host"
    # What runs in the node (issue 12): the raw text of the file; `${...}` is expanded by make_plan.
    env: dict[str, str] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)  # net.* only
    routes: list[StaticRoute] = field(default_factory=list)
    loopback: list[str] = field(default_factory=list)  # CIDRs added on lo
    exec: list[Command] = field(default_factory=list)  # one-shot commands at up, in order
    # What the node carries (nslab.lab.svcspec, docs/nodes.md): files it sees, directories only it sees, services.
    files: dict[str, str] = field(default_factory=dict)
    private: list[str] = field(default_factory=list)
    services: list[ServiceSpec] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Endpoint:
    node: str
    ifname: str | None = None
    ipv4: str | None = None  # CIDR, or a bare address when the link has a `prefix`
    ipv6: str | None = None
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """`"db"` or `"db:eth1"` (node, then an explicit interface name)."""
        node, sep, ifname = text.partition(":")
        return cls(node=node, ifname=ifname if sep else None)


@dataclass
class Link:
    endpoints: list[Endpoint]
    mtu: int | None = None
    prefix: str | None = None  # explicit IPv4 subnet of the segment this link belongs to
    prefix6: str | None = None  # explicit IPv6 subnet
    # Declared impairments, applied at `up`: direction ("both" or "A->B") -> {loss|rate|delay|profile|...: value}
    impair: dict[str, dict[str, str]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    # Its index in the file when links to replicated nodes (`count:`) made the list longer: the implicit switch
    # of a LAN is named after it (lanN), as the file reads. None: its index in `links`.
    origin: int | None = None


@dataclass
class Between:
    """`between:`: impairments on every point-to-point link joining a node of A to a node of B, both
    directions (a link between two regions in one line). A link's own `impair:` wins, key by key."""

    a: list[str]
    b: list[str]
    impair: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Pools:
    ipv4_lan: str = DEFAULT_POOLS["ipv4_lan"]
    ipv4_p2p: str = DEFAULT_POOLS["ipv4_p2p"]
    ipv6: str = DEFAULT_POOLS["ipv6"]
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)


CHECK_KINDS = ("reach", "no_reach", "port_open")
CHECK_RETRIES = {"reach": 3, "no_reach": 1, "port_open": 3}


@dataclass
class Check:
    """An expectation about the running lab (netlab's `validate`): `nslab lab check` and pytest run it."""

    kind: str  # reach | no_reach | port_open
    src: str  # the node the probe starts from
    dst: str  # the node probed
    port: int | None = None  # port_open only
    retries: int | None = None  # None: CHECK_RETRIES[kind]; one try a second
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def tries(self) -> int:
        return self.retries if self.retries is not None else CHECK_RETRIES.get(self.kind, 1)

    def title(self) -> str:
        if self.kind == "port_open":
            return f"port_open {self.src} -> {self.dst}:{self.port}"
        return f"{self.kind} {self.src} -> {self.dst}"


@dataclass
class TopologyData:
    """The fields of a topology, and where each was written (`Topology` is this with its builder API)."""

    name: str
    nodes: dict[str, Node] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    routing: str = "auto"
    pools: Pools = field(default_factory=Pools)
    checks: list[Check] = field(default_factory=list)
    # Named sets of nodes (`groups:`, and each replicated node `db: {count: 3}` -> db: [db1, db2, db3]),
    # for `${group:NAME}`; the file's inheritance is resolved by the loader, only membership is kept.
    groups: dict[str, list[str]] = field(default_factory=dict)
    # The `faults:` schedule as plain data, and the line of each of its fields (nslab.lab.schedule checks it;
    # not part of the plan, nor of the topology a running lab records).
    faults: list[object] = field(default_factory=list, compare=False, repr=False)
    fault_lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)  # the file's own impairment profiles
    between: list[Between] = field(default_factory=list)
    source: str = field(default="<python>", compare=False)
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)


    def add_link(
        self,
        *endpoints: str | Endpoint,
        mtu: int | None = None,
        prefix: str | None = None,
        prefix6: str | None = None,
        impair: dict[str, dict[str, str]] | None = None,
    ) -> Link:
        eps = [Endpoint.parse(e) if isinstance(e, str) else e for e in endpoints]
        link = Link(eps, mtu=mtu, prefix=prefix, prefix6=prefix6, impair=impair or {})
        self.links.append(link)
        return link

    def where(self, path: str, line: int | None) -> str:
        return f"{self.source}:{line}: {path}" if line else f"{self.source}: {path}"

    def fail(self, path: str, message: str, hint: str | None = None, line: int | None = None) -> NoReturn:
        raise UsageError(f"{self.where(path, line)}: {message}", hint)
