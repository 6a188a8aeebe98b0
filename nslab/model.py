"""Typed records of what the kernel reports: links, addresses, routes, counters.

Field names follow `ip -j` so that `to_json()` output can be compared key by key with iproute2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Stats:
    """One direction's counters, as in `ip -j -s` stats64.rx / stats64.tx."""

    bytes: int = 0
    packets: int = 0
    errors: int = 0
    dropped: int = 0
    # The rest feed the net-tools view: overruns (fifo), frame, carrier, collisions.
    over_errors: int = 0
    fifo_errors: int = 0
    frame_errors: int = 0
    length_errors: int = 0
    crc_errors: int = 0
    missed_errors: int = 0
    carrier_errors: int = 0
    aborted_errors: int = 0
    window_errors: int = 0
    heartbeat_errors: int = 0
    collisions: int = 0
    compressed: int = 0
    multicast: int = 0
    nohandler: int = 0  # rx only: no protocol handler took the packet
    otherhost: int = 0  # rx only: dropped as addressed to another host

    def to_json(self) -> dict[str, int]:
        return {"bytes": self.bytes, "packets": self.packets, "errors": self.errors, "dropped": self.dropped}


@dataclass(frozen=True)
class Stats64:
    rx: Stats = field(default_factory=Stats)
    tx: Stats = field(default_factory=Stats)

    def to_json(self) -> dict[str, Any]:
        return {"rx": self.rx.to_json(), "tx": self.tx.to_json()}


@dataclass(frozen=True)
class Address:
    """An address on an interface (`ip -j addr` addr_info entry)."""

    family: str  # "inet" | "inet6"
    local: str
    prefixlen: int
    scope: str  # "global" | "host" | "link" | "site" | "nowhere" | number as text
    ifindex: int = 0
    address: str | None = None  # peer address for point-to-point (IFA_ADDRESS when it differs from local)
    broadcast: str | None = None
    label: str | None = None
    flags: tuple[str, ...] = ()  # e.g. "permanent", "nodad", "tentative"

    @property
    def cidr(self) -> str:
        return f"{self.local}/{self.prefixlen}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family, "local": self.local, "prefixlen": self.prefixlen}
        if self.broadcast:
            out["broadcast"] = self.broadcast
        out["scope"] = self.scope
        if self.label:
            out["label"] = self.label
        for f in self.flags:
            out[f] = True
        return out


@dataclass(frozen=True)
class Link:
    """An interface (`ip -j link` entry)."""

    ifindex: int
    ifname: str
    flags: tuple[str, ...]  # as ip shows them: BROADCAST, MULTICAST, UP, LOWER_UP, LOOPBACK, ...
    raw_flags: int  # IFF_* bits, for the net-tools view
    mtu: int
    operstate: str
    link_type: str  # "ether" | "loopback" | "none" | ...
    address: str | None = None
    broadcast: str | None = None
    txqlen: int = 0
    kind: str | None = None  # IFLA_INFO_KIND: veth, bridge, vxlan, macvlan, tun, ...
    # The kind's details nslab decodes, in ip -d's order and ip -j -d's linkinfo.info_data names (vlan:
    # protocol, id); empty for the others.
    info_data: tuple[tuple[str, str | int], ...] = ()
    master: str | None = None
    master_index: int | None = None
    link_index: int | None = None  # IFLA_LINK (veth peer index, lower device)
    link_netnsid: int | None = None
    alias: str | None = None
    group: int = 0
    carrier_changes: int | None = None  # IFLA_CARRIER_CHANGES (ip -s -s's transns)
    stats64: Stats64 = field(default_factory=Stats64)
    addr_info: tuple[Address, ...] = ()

    @property
    def up(self) -> bool:
        return "UP" in self.flags

    def to_json(self, with_stats: bool = False, with_addrs: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ifindex": self.ifindex,
            "ifname": self.ifname,
            "flags": list(self.flags),
            "mtu": self.mtu,
            "operstate": self.operstate,
            "link_type": self.link_type,
        }
        if self.master:
            out["master"] = self.master
        if self.address is not None:
            out["address"] = self.address
        if self.broadcast is not None:
            out["broadcast"] = self.broadcast
        out["txqlen"] = self.txqlen
        if self.kind:
            out["kind"] = self.kind
        if self.info_data:
            out["info_data"] = dict(self.info_data)
        if self.link_index is not None:
            out["link_index"] = self.link_index
        if self.link_netnsid is not None:
            out["link_netnsid"] = self.link_netnsid
        if self.alias:
            out["ifalias"] = self.alias
        if with_addrs:
            out["addr_info"] = [a.to_json() for a in self.addr_info]
        if with_stats:
            out["stats64"] = self.stats64.to_json()
        return out


@dataclass(frozen=True)
class Route:
    """A route (`ip -j route` entry)."""

    family: str
    dst: str  # "default" or "a.b.c.d/len" (host routes as a bare address, like ip)
    gateway: str | None = None
    dev: str | None = None
    oif: int | None = None
    protocol: str = "boot"
    scope: str = "global"
    prefsrc: str | None = None
    metric: int | None = None
    table: int = 254
    type: str = "unicast"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dst": self.dst}
        if self.gateway:
            out["gateway"] = self.gateway
        if self.dev:
            out["dev"] = self.dev
        # ip -j leaves out the defaults: protocol boot, scope global.
        if self.protocol != "boot":
            out["protocol"] = self.protocol
        if self.scope != "global":
            out["scope"] = self.scope
        if self.prefsrc:
            out["prefsrc"] = self.prefsrc
        if self.metric is not None:
            out["metric"] = self.metric
        return out


@dataclass(frozen=True)
class Neighbour:
    """A neighbour (ARP/NDP) cache entry (`ip -j neigh` entry)."""

    family: str
    dst: str | None
    ifindex: int
    dev: str | None
    lladdr: str | None = None
    state: tuple[str, ...] = ()  # NUD state names as ip prints them: REACHABLE, STALE, FAILED, ...
    raw_state: int = 0
    router: bool = False
    proxy: bool = False
    extern_learn: bool = False
    offload: bool = False
    protocol: int = 0
    cache: tuple[int, int, int, int] | None = None  # refcnt, used, confirmed, updated (seconds ago)
    probes: int | None = None

    def to_json(self, with_stats: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.dst is not None:
            out["dst"] = self.dst
        if self.dev is not None:
            out["dev"] = self.dev
        if self.lladdr is not None:
            out["lladdr"] = self.lladdr
        for key in ("router", "proxy", "extern_learn", "offload"):
            if getattr(self, key):
                out[key] = None  # ip -j prints these flags as null-valued keys
        if with_stats and self.cache is not None:
            refcnt, used, confirmed, updated = self.cache
            out.update({"refcnt": refcnt} if refcnt else {})
            out.update(used=used, confirmed=confirmed, updated=updated)
        if with_stats and self.probes is not None:
            out["probes"] = self.probes
        if self.raw_state:
            out["state"] = list(self.state)
        return out
