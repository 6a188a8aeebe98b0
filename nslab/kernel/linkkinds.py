"""The link kinds nslab creates, one entry each: the CLI's words, `Namespace.add_link`'s keywords and the codec.

An entry says which options a kind takes (`Opt`: the CLI word, the Python keyword, how the value is read and
checked, and where it goes in the request: the kind's IFLA_INFO_DATA or a link attribute of rtnl.LINK_ATTRS),
and how its IFLA_INFO_DATA is encoded. `nslab link add` reads its words from it, `Namespace.add_link` builds
the request from it, and the add_veth/add_bridge/... methods are named shortcuts. Adding a kind is one entry
in KINDS (and its tests).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ExistsError, FeatureMissing, KernelError, NslabError, UsageError
from .netlink import attr, attr_be16, attr_u8, attr_u16, attr_u32
from .rtnl import Request, Rtnl, parse_ip

IFLA_VXLAN_ID, IFLA_VXLAN_GROUP, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL = 1, 2, 3, 4
IFLA_VXLAN_TTL, IFLA_VXLAN_LEARNING, IFLA_VXLAN_PORT = 5, 7, 15
IFLA_VXLAN_GROUP6, IFLA_VXLAN_LOCAL6 = 16, 17
IFLA_MACVLAN_MODE = 1
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
IFLA_VLAN_ID, IFLA_VLAN_PROTOCOL = 1, 5
VLAN_PROTOCOLS = {"802.1Q": 0x8100, "802.1ad": 0x88A8}  # iproute2's names (ll_proto_a2n), any case

# How the CLI reads an option's value: a device name, a namespace name, an IP address (no zone id), an
# integer in [lo, hi], or plain text.
Value = Literal["ifname", "netns", "ip", "int", "text"]


@dataclass(frozen=True)
class Opt:
    word: str  # the CLI word: `peer-netns NS`
    param: str  # the keyword of Namespace.add_link (and of the add_* shortcut): peer_ns
    value: Value = "text"
    what: str = ""  # what the value is, in messages: "peer name"
    lo: int = 0  # value "int": the range, and the unit said when the value is missing
    hi: int = 0
    unit: str = ""
    required: tuple[str, str] | None = None  # (what is missing, the fix) when the option must be given
    check: Callable[[str], object] | None = None  # the codec's own check of a text value (before any kernel call)
    resolve: Literal["ifindex", "netns_fd"] | None = None  # a name that becomes an index or a namespace fd
    data: str | None = None  # the keyword of the kind's data encoder that takes the value
    attr: str | None = None  # or the link attribute (rtnl.LINK_ATTRS) that carries it


@dataclass(frozen=True)
class LinkKind:
    name: str  # IFLA_INFO_KIND
    usage: str  # the words after NAME in `nslab link add --help`
    opts: tuple[Opt, ...] = ()
    data: Callable[..., bytes] | None = None  # the IFLA_INFO_DATA encoder; its keywords come from Opt.data
    # mtu in the create request, so a refused one creates nothing; "after": set by a second request (a tap's
    # door cannot carry it), the device removed again if the kernel refuses it
    mtu: Literal["request", "after"] = "request"
    data_mtu: bool = False  # the data encoder takes the mtu too (a veth's peer gets the same)
    netlink: bool = True  # False: created by another door (tap: TUNSETIFF), options limited to mtu
    defaults: Mapping[str, Any] = field(default_factory=dict)  # data keywords always given
    module: str = ""  # the kernel module that provides the kind, named when the kernel lacks it

    def request(self, name: str, params: Mapping[str, Any]) -> Request:
        """The create request of a device NAME of this kind, from resolved PARAMS (Opt.param -> value: ifindexes
        and fds, not names; None or absent: not given)."""
        data_kw: dict[str, Any] = dict(self.defaults)
        link_kw: dict[str, Any] = {}
        for o in self.opts:
            v = params.get(o.param)
            if v is None:
                continue
            if o.data is not None:
                data_kw[o.data] = v
            if o.attr is not None:
                link_kw[o.attr] = v
        mtu = params.get("mtu")
        if self.mtu == "request" and mtu is not None:
            link_kw["mtu"] = mtu
            if self.data_mtu:
                data_kw["mtu"] = mtu
        data = self.data(**data_kw) if self.data is not None else b""
        return Rtnl.req_add_link(name, self.name, data, **link_kw)


# Every kind takes these (after its own, in the CLI's list of words).
MTU = Opt("mtu", "mtu", "int", lo=68, hi=65535, unit="bytes")
COMMON = (MTU,)


def vxlan_data(vni: int, *, remote: str | None = None, group: str | None = None, local: str | None = None,
               dev: int | None = None, port: int = 4789, ttl: int | None = None, learning: bool = True) -> bytes:
    if not 0 <= vni < 1 << 24:
        raise UsageError(f"invalid VXLAN id {vni}", "use a VNI from 0 to 16777215")
    data = attr_u32(IFLA_VXLAN_ID, vni)
    for text, v4, v6 in ((remote or group, IFLA_VXLAN_GROUP, IFLA_VXLAN_GROUP6),
                         (local, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LOCAL6)):
        if text:
            ip = parse_ip(text, "VXLAN address")
            data += attr(v4 if ip.version == 4 else v6, ip.packed)
    if dev is not None:
        data += attr_u32(IFLA_VXLAN_LINK, dev)
    if ttl is not None:
        data += attr_u8(IFLA_VXLAN_TTL, ttl)
    data += attr_u8(IFLA_VXLAN_LEARNING, 1 if learning else 0)
    data += attr_be16(IFLA_VXLAN_PORT, port)
    return data


def macvlan_mode(mode: str) -> int:
    if mode not in MACVLAN_MODES:
        raise UsageError(f"invalid macvlan mode {mode!r}", "use one of: " + ", ".join(MACVLAN_MODES))
    return MACVLAN_MODES[mode]


def macvlan_data(mode: str) -> bytes:
    return attr_u32(IFLA_MACVLAN_MODE, macvlan_mode(mode))


def vlan_protocol(text: str) -> int:
    for name, number in VLAN_PROTOCOLS.items():
        if text.lower() == name.lower():
            return number
    raise UsageError(f"invalid vlan protocol {text!r}", "use 802.1Q (the default) or 802.1ad (QinQ's outer tag)")


def vlan_data(vid: int, protocol: str | None = None) -> bytes:
    if not 0 <= vid < 4095:
        raise UsageError(f"invalid VLAN id {vid}", "use a VLAN id from 0 to 4094")
    data = attr_u16(IFLA_VLAN_ID, vid)
    if protocol is not None:
        data += attr_be16(IFLA_VLAN_PROTOCOL, vlan_protocol(protocol))
    return data


def _vxlan_ip(text: str) -> object:
    return parse_ip(text, "VXLAN address")


KINDS: dict[str, LinkKind] = {k.name: k for k in (
    LinkKind("veth", "peer PEER [peer-netns NS]", (
        Opt("peer", "peer", "ifname", "peer name", required=("a veth needs a peer name", "add 'peer PEERNAME'"),
            data="peer"),
        Opt("peer-netns", "peer_ns", "netns", resolve="netns_fd", data="netns_fd"),
    ), data=Rtnl.veth_peer, data_mtu=True, module="veth"),
    LinkKind("bridge", "", module="bridge"),
    LinkKind("tap", "", mtu="after", netlink=False, module="tun"),
    LinkKind("vxlan", "id VNI [remote IP|group IP] [local IP] [dev DEV] [dstport P]", (
        Opt("id", "vni", "int", lo=0, hi=(1 << 24) - 1, unit="vni",
            required=("a vxlan needs an id", "add 'id VNI' (0-16777215)"), data="vni"),
        Opt("remote", "remote", "ip", "VXLAN address", check=_vxlan_ip, data="remote"),
        Opt("group", "group", "ip", "VXLAN address", check=_vxlan_ip, data="group"),
        Opt("local", "local", "ip", "VXLAN address", check=_vxlan_ip, data="local"),
        Opt("dev", "dev", "ifname", "device name", resolve="ifindex", data="dev"),
        Opt("dstport", "port", "int", lo=1, hi=65535, unit="port", data="port"),
    ), data=vxlan_data, module="vxlan"),
    LinkKind("macvlan", "link DEV [mode M]", (
        Opt("link", "lower", "ifname", "lower device name",
            required=("a macvlan needs its lower device", "add 'link DEV'"), resolve="ifindex", attr="lower"),
        Opt("mode", "mode", check=macvlan_mode, data="mode"),
    ), data=macvlan_data, defaults={"mode": "bridge"}, module="macvlan"),
    LinkKind("dummy", "", module="dummy"),
    LinkKind("vlan", "link DEV id VID [protocol 802.1Q|802.1ad]", (
        Opt("link", "lower", "ifname", "lower device name",
            required=("a vlan needs its lower device", "add 'link DEV'"), resolve="ifindex", attr="lower"),
        Opt("id", "vid", "int", lo=0, hi=4094, unit="vid", required=("a vlan needs an id", "add 'id VID' (0-4094)"),
            data="vid"),
        Opt("protocol", "protocol", check=vlan_protocol, data="protocol"),
    ), data=vlan_data, module="8021q"),
    # Keys and peers are set through the "wireguard" generic netlink family (wg(8)), which nslab does not drive.
    LinkKind("wireguard", "", module="wireguard"),
)}


UNKNOWN_TYPE = "Unknown device type"  # rtnl_newlink's extended ack when no module provides the kind


def lacks_kind(k: LinkKind, exc: KernelError) -> bool:
    """Whether a create of kind K failed because this kernel has no such kind (EOPNOTSUPP, "Unknown device
    type"), not for another reason given with the same code (a vlan on lo: "VLANs not supported on device")."""
    if exc.errno != errno.EOPNOTSUPP:
        return False
    if exc.message.endswith(UNKNOWN_TYPE):
        return True
    # A kernel that sends no extended ack: the kind is missing if its module is not loaded (the kernel would
    # have loaded it on demand).
    return exc.message.endswith(os.strerror(errno.EOPNOTSUPP)) and bool(k.module) and \
        not os.path.exists(f"/sys/module/{k.module}")


def missing_kind(k: LinkKind, exc: KernelError) -> FeatureMissing:
    return FeatureMissing(
        f"{exc.message}: this kernel has no {k.name} links (module {k.module})",
        f"load the module: 'modprobe {k.module}' as root on the host (a container cannot), or use a kernel "
        "that has it",
    )


def refusal(k: LinkKind, exc: NslabError, params: Mapping[str, Any]) -> NslabError:
    """The error to show for the kernel's refusal EXC of a create of kind K with (unresolved) PARAMS."""
    if isinstance(exc, KernelError) and lacks_kind(k, exc):
        return missing_kind(k, exc)
    if k.name == "vlan" and isinstance(exc, ExistsError) and "VLAN device already exists" in exc.message:
        return ExistsError(exc.message, f"{params.get('lower')} already has a vlan with id {params.get('vid')}: "
                                        "delete that one or use another id")
    return exc


def kind(name: str) -> LinkKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UsageError(f"unknown link kind {name!r}", "use one of: " + ", ".join(KINDS)) from None
