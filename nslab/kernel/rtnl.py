"""rtnetlink requests nslab makes, and decoding of what the kernel answers into `nslab.model` records.

`Rtnl` is one NETLINK_ROUTE socket in one namespace. Reads return typed records; changes are built as
`Request`s by pure static methods, then sent one at a time (`do`) or many with few syscalls (`run`, `run_all`).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ExistsError, KernelError, NotFoundError, NslabError, UsageError, privilege_error
from ..model import Address, Link, Route, Stats, Stats64
from ..names import check_ifname
from . import netns
from .netlink import (
    NLM_F_CREATE,
    NLM_F_EXCL,
    Message,
    NetlinkError,
    NetlinkSocket,
    attr,
    attr_str,
    attr_text,
    attr_u32,
    nested,
    parse_attrs,
)

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_DELNEIGH = 29
RTM_GETQDISC = 38
TCA_KIND = 1
TC_H_ROOT = 0xFFFFFFFF
NDA_DST = 1

IFLA_ADDRESS, IFLA_BROADCAST, IFLA_IFNAME, IFLA_MTU, IFLA_LINK = 1, 2, 3, 4, 5
IFLA_MASTER, IFLA_TXQLEN, IFLA_OPERSTATE, IFLA_LINKINFO = 10, 13, 16, 18
IFLA_IFALIAS, IFLA_STATS64, IFLA_GROUP, IFLA_NET_NS_FD = 20, 23, 27, 28
IFLA_EXT_MASK, IFLA_CARRIER_CHANGES, IFLA_LINK_NETNSID = 29, 35, 37
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3

IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 3, 4, 8
IFA_F_NODAD, IFA_F_DADFAILED, IFA_F_TENTATIVE, IFA_F_PERMANENT = 0x02, 0x08, 0x40, 0x80
IFA_F_NOPREFIXROUTE = 0x200

RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
RT_TABLE_MAIN = 254
RTPROT_BOOT, RTPROT_STATIC = 3, 4
# The protocol of every route a lab installs: not one the kernel or a known daemon uses (rt_protos), so a
# route carrying it is recognisably nslab's, and a delete that names it can only remove one of nslab's.
RTPROT_NSLAB = 94
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST = 0, 253, 254

IFF_UP, IFF_RUNNING = 0x1, 0x40
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
_TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info

# ip's print order (ip/ipaddress.c print_link_flags); RUNNING is folded into NO-CARRIER.
_FLAG_NAMES = [
    (0x8, "LOOPBACK"), (0x2, "BROADCAST"), (0x10, "POINTOPOINT"), (0x1000, "MULTICAST"), (0x80, "NOARP"),
    (0x200, "ALLMULTI"), (0x100, "PROMISC"), (0x400, "MASTER"), (0x800, "SLAVE"), (0x4, "DEBUG"),
    (0x8000, "DYNAMIC"), (0x4000, "AUTOMEDIA"), (0x2000, "PORTSEL"), (0x20, "NOTRAILERS"), (0x1, "UP"),
    (0x10000, "LOWER_UP"), (0x20000, "DORMANT"), (0x40000, "ECHO"),
]
_OPERSTATES = ["UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"]
_LINK_TYPES = {1: "ether", 772: "loopback", 65534: "none", 768: "ipip", 776: "sit", 778: "gre", 65535: "void"}
_SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
_PROTOCOLS = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 9: "ra", 16: "dhcp"}
_RTYPES = {1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast", 6: "blackhole",
           7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat"}
_STATS64_FIELDS = (  # struct rtnl_link_stats64, in order
    "rx_packets tx_packets rx_bytes tx_bytes rx_errors tx_errors rx_dropped tx_dropped multicast collisions "
    "rx_length_errors rx_over_errors rx_crc_errors rx_frame_errors rx_fifo_errors rx_missed_errors "
    "tx_aborted_errors tx_carrier_errors tx_fifo_errors tx_heartbeat_errors tx_window_errors "
    "rx_compressed tx_compressed rx_nohandler rx_otherhost_dropped"
).split()


# The link attributes nslab sets, in one table for a create (req_add_link), a change (req_set_link) and a veth's
# peer (veth_peer): keyword -> (IFLA type, encoder). A request carries the ones given.
LINK_ATTRS: dict[str, tuple[int, Callable[[int, Any], bytes]]] = {
    "mtu": (IFLA_MTU, attr_u32),
    "master": (IFLA_MASTER, attr_u32),
    "address": (IFLA_ADDRESS, attr),
    "lower": (IFLA_LINK, attr_u32),
    "netns_fd": (IFLA_NET_NS_FD, attr_u32),
    "new_name": (IFLA_IFNAME, lambda t, v: attr_str(t, check_ifname(v))),
    "alias": (IFLA_IFALIAS, attr_str),
}


def link_attrs(**values: Any) -> bytes:
    """The attributes of LINK_ATTRS whose VALUES are given (not None), encoded in the order given (a lab's
    bring-up builds thousands: one pass, no sorting)."""
    out = b""
    for key, value in values.items():
        if value is not None:
            try:
                kind, enc = LINK_ATTRS[key]
            except KeyError:
                raise TypeError(f"not a link attribute: {key}") from None
            out += enc(kind, value)
    return out


def family_name(family: int) -> str:
    return "inet" if family == socket.AF_INET else "inet6" if family == socket.AF_INET6 else str(family)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    try:
        if len(parts) != 6 or any(len(p) != 2 for p in parts):
            raise ValueError
        raw = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise UsageError(f"invalid MAC address {text!r}", "write it as six hex pairs, e.g. 02:00:00:00:00:01") from None
    if raw[0] & 1:
        raise UsageError(
            f"invalid MAC address {text!r}: it is a multicast address", "clear the lowest bit of the first byte"
        )
    return raw


def _parse_stats64(raw: bytes) -> Stats64:
    n = min(len(raw) // 8, len(_STATS64_FIELDS))
    v = dict(zip(_STATS64_FIELDS, struct.unpack_from(f"={n}Q", raw), strict=False))
    g = v.get
    rx = Stats(
        bytes=g("rx_bytes", 0), packets=g("rx_packets", 0), errors=g("rx_errors", 0), dropped=g("rx_dropped", 0),
        over_errors=g("rx_over_errors", 0), fifo_errors=g("rx_fifo_errors", 0), frame_errors=g("rx_frame_errors", 0),
        length_errors=g("rx_length_errors", 0), crc_errors=g("rx_crc_errors", 0),
        missed_errors=g("rx_missed_errors", 0), compressed=g("rx_compressed", 0), multicast=g("multicast", 0),
        nohandler=g("rx_nohandler", 0), otherhost=g("rx_otherhost_dropped", 0),
    )
    tx = Stats(
        bytes=g("tx_bytes", 0), packets=g("tx_packets", 0), errors=g("tx_errors", 0), dropped=g("tx_dropped", 0),
        fifo_errors=g("tx_fifo_errors", 0), carrier_errors=g("tx_carrier_errors", 0),
        aborted_errors=g("tx_aborted_errors", 0), window_errors=g("tx_window_errors", 0),
        heartbeat_errors=g("tx_heartbeat_errors", 0), collisions=g("collisions", 0),
        compressed=g("tx_compressed", 0),
    )
    return Stats64(rx=rx, tx=tx)


def flag_names(flags: int) -> tuple[str, ...]:
    out = ["NO-CARRIER"] if flags & IFF_UP and not flags & IFF_RUNNING else []
    out += [name for bit, name in _FLAG_NAMES if flags & bit]
    return tuple(out)


_VLAN_PROTOCOLS = {0x8100: "802.1Q", 0x88A8: "802.1ad"}


def _vlan_info(data: dict[int, bytes]) -> tuple[tuple[str, str | int], ...]:
    """A vlan's IFLA_INFO_DATA as ip -d prints it: protocol, then id (IFLA_VLAN_PROTOCOL 5, IFLA_VLAN_ID 1)."""
    out: list[tuple[str, str | int]] = []
    if 5 in data:
        proto = struct.unpack("!H", data[5][:2])[0]
        out.append(("protocol", _VLAN_PROTOCOLS.get(proto, f"0x{proto:04x}")))
    if 1 in data:
        out.append(("id", struct.unpack("=H", data[1][:2])[0]))
    return tuple(out)


def decode_link(msg: Message) -> Link:
    _fam, ltype, index, flags, _chg = _IFINFO.unpack_from(msg.body)
    a = parse_attrs(msg.body, _IFINFO.size)

    def u32(k: int) -> int | None:
        return struct.unpack("=I", a[k][:4])[0] if k in a else None

    kind = None
    info_data: tuple[tuple[str, str | int], ...] = ()
    if IFLA_LINKINFO in a:
        info = parse_attrs(a[IFLA_LINKINFO])
        if IFLA_INFO_KIND in info:
            kind = attr_text(info[IFLA_INFO_KIND])
        if kind == "vlan" and IFLA_INFO_DATA in info:
            info_data = _vlan_info(parse_attrs(info[IFLA_INFO_DATA]))
    operstate = a.get(IFLA_OPERSTATE, b"\0")[0]
    link_index = u32(IFLA_LINK)
    return Link(
        ifindex=index,
        ifname=attr_text(a.get(IFLA_IFNAME, b"")),
        flags=flag_names(flags),
        raw_flags=flags,
        mtu=u32(IFLA_MTU) or 0,
        operstate=_OPERSTATES[operstate] if operstate < len(_OPERSTATES) else str(operstate),
        link_type=_LINK_TYPES.get(ltype, str(ltype)),
        address=_mac(a[IFLA_ADDRESS]) if IFLA_ADDRESS in a else None,
        broadcast=_mac(a[IFLA_BROADCAST]) if IFLA_BROADCAST in a else None,
        txqlen=u32(IFLA_TXQLEN) or 0,
        kind=kind,
        info_data=info_data,
        master_index=u32(IFLA_MASTER),
        link_index=link_index or None,
        link_netnsid=struct.unpack("=i", a[IFLA_LINK_NETNSID][:4])[0] if IFLA_LINK_NETNSID in a else None,
        alias=attr_text(a[IFLA_IFALIAS]) if IFLA_IFALIAS in a else None,
        group=u32(IFLA_GROUP) or 0,
        carrier_changes=u32(IFLA_CARRIER_CHANGES),
        stats64=_parse_stats64(a[IFLA_STATS64]) if IFLA_STATS64 in a else Stats64(),
    )


def decode_addr(msg: Message) -> Address:
    fam, plen, flags8, scope, index = _IFADDR.unpack_from(msg.body)
    a = parse_attrs(msg.body, _IFADDR.size)
    flags = struct.unpack("=I", a[IFA_FLAGS][:4])[0] if IFA_FLAGS in a else flags8
    local_raw = a.get(IFA_LOCAL, a.get(IFA_ADDRESS, b""))
    peer_raw = a.get(IFA_ADDRESS)
    names = []
    for bit, name in ((IFA_F_NODAD, "nodad"), (IFA_F_TENTATIVE, "tentative"), (IFA_F_DADFAILED, "dadfailed"),
                      (IFA_F_NOPREFIXROUTE, "noprefixroute")):
        if flags & bit:
            names.append(name)
    if not flags & IFA_F_PERMANENT:
        names.append("dynamic")
    local = _ip_text(fam, local_raw)
    peer = _ip_text(fam, peer_raw) if peer_raw else None
    return Address(
        family=family_name(fam),
        local=local,
        prefixlen=plen,
        scope=_SCOPES.get(scope, str(scope)),
        ifindex=index,
        address=peer if peer and peer != local else None,
        broadcast=_ip_text(fam, a[IFA_BROADCAST]) if IFA_BROADCAST in a else None,
        label=attr_text(a[IFA_LABEL]) if IFA_LABEL in a else None,
        flags=tuple(names),
    )


def _ip_text(fam: int, raw: bytes) -> str:
    return socket.inet_ntop(fam, raw)


def decode_route(msg: Message, names: dict[int, str]) -> Route:
    fam, dst_len, _src_len, _tos, table, proto, scope, rtype, _fl = _RTMSG.unpack_from(msg.body)
    a = parse_attrs(msg.body, _RTMSG.size)
    if RTA_TABLE in a:
        table = struct.unpack("=I", a[RTA_TABLE][:4])[0]
    if RTA_DST in a:
        dst = _ip_text(fam, a[RTA_DST])
        full = 32 if fam == socket.AF_INET else 128
        dst = dst if dst_len == full else f"{dst}/{dst_len}"
    else:
        dst = "default" if dst_len == 0 else f"0/{dst_len}"
    oif = struct.unpack("=I", a[RTA_OIF][:4])[0] if RTA_OIF in a else None
    return Route(
        family=family_name(fam),
        dst=dst,
        gateway=_ip_text(fam, a[RTA_GATEWAY]) if RTA_GATEWAY in a else None,
        dev=names.get(oif) if oif is not None else None,
        oif=oif,
        protocol=_PROTOCOLS.get(proto, str(proto)),
        scope=_SCOPES.get(scope, str(scope)),
        prefsrc=_ip_text(fam, a[RTA_PREFSRC]) if RTA_PREFSRC in a else None,
        metric=struct.unpack("=I", a[RTA_PRIORITY][:4])[0] if RTA_PRIORITY in a else None,
        table=table,
        type=_RTYPES.get(rtype, str(rtype)),
    )


@dataclass(frozen=True)
class Qdisc:
    ifindex: int
    handle: int  # major << 16 | minor, as tc's "5e1a:" is 0x5e1a0000
    parent: int  # TC_H_ROOT for a root qdisc
    kind: str


def decode_qdisc(msg: Message) -> Qdisc:
    _fam, index, handle, parent, _info = _TCMSG.unpack_from(msg.body)
    a = parse_attrs(msg.body, _TCMSG.size)
    return Qdisc(index, handle, parent, attr_text(a.get(TCA_KIND, b"")))


def parse_cidr(text: str, what: str = "address") -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """'10.0.0.1/24' or 'fd00::1/64'; a bare address means a host prefix, as in ip."""
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise UsageError(
            f"invalid {what} {text!r}",
            "write an address with its prefix length, e.g. 10.0.0.1/24 or fd00::1/64",
        ) from None


def parse_ip(text: str, what: str = "address") -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}", "write an IPv4 or IPv6 address, e.g. 10.0.0.1") from None


def parse_dst(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A route destination; None for 'default' (the family then comes from the gateway)."""
    if text == "default":
        return None
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise UsageError(
            f"invalid route destination {text!r}: {exc}",
            "write a network such as 10.1.0.0/24 (host bits zero), a host address, or 'default'",
        ) from None


@dataclass
class Request:
    """One change request, with the words to use if the kernel refuses it."""

    kind: int
    flags: int
    payload: bytes
    what: str
    subject: str = ""  # the name the user gave, for the error message


def error_for(req: Request, exc: NetlinkError, netns_name: str | None) -> NslabError:
    """Turn a kernel error into the message the user sees: what was attempted, why it failed, the fix."""
    where = f" in namespace {netns_name!r}" if netns_name else ""
    text = f"{req.what}{where}: {exc}"
    if exc.code == errno.EEXIST:
        return ExistsError(text, f"{req.subject or 'it'} already exists; pick another name or delete it first")
    if exc.code in (errno.EPERM, errno.EACCES):
        return privilege_error(f"{req.what}{where}", ("CAP_NET_ADMIN",))
    if exc.code == errno.ENODEV:
        return NotFoundError(text, "check the device name with 'nslab link show'")
    if exc.code == errno.EOPNOTSUPP and req.kind == RTM_NEWLINK and req.flags & NLM_F_CREATE:
        # Namespace.add_link turns "Unknown device type" into FeatureMissing naming the kind's module.
        return KernelError(text, exc.code, "this kernel may lack that link type, or the device does not allow it")
    return KernelError(text, exc.code)


class Rtnl:
    """A NETLINK_ROUTE socket in one network namespace (None: the caller's own)."""

    def __init__(self, sock: NetlinkSocket, netns_name: str | None = None) -> None:
        self.nl = sock
        self.netns_name = netns_name

    @classmethod
    def open(cls, netns: str | None = None) -> Rtnl:
        if netns is None:
            return cls(NetlinkSocket(), None)
        fd = netns_mod.open_fd(netns)
        try:
            d = netns_mod.door()

            def inside() -> NetlinkSocket:
                netns_mod.setns(fd, name=netns)
                try:
                    return NetlinkSocket()
                finally:
                    d.go_home()

            return cls(d.call(inside), netns)
        finally:
            os.close(fd)

    def close(self) -> None:
        self.nl.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reads -------------------------------------------------------------------------------
    def links(self, with_addrs: bool = False) -> list[Link]:
        msgs = self.nl.dump(RTM_GETLINK, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0))
        links = sorted((decode_link(m) for m in msgs), key=lambda lk: lk.ifindex)
        return self._finish(links, with_addrs)

    def link(self, name: str, with_addrs: bool = False) -> Link:
        check_ifname(name)
        payload = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr_str(IFLA_IFNAME, name)
        try:
            msg = self.nl.get(RTM_GETLINK, payload)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                where = f" in namespace {self.netns_name!r}" if self.netns_name else ""
                raise NotFoundError(
                    f"device {name!r} does not exist{where}", "see 'nslab link show' for the names"
                ) from None
            raise KernelError(f"cannot read device {name!r}: {exc}", exc.code) from None
        lk = decode_link(msg)
        return self._finish([lk], with_addrs)[0]

    def index(self, name: str) -> int:
        return self.link(name).ifindex

    def _finish(self, links: list[Link], with_addrs: bool) -> list[Link]:
        from dataclasses import replace

        names = {}
        if any(lk.master_index for lk in links):
            names = {lk.ifindex: lk.ifname for lk in (links if len(links) > 1 else self.links())}
        addrs: dict[int, list[Address]] = {}
        if with_addrs:
            for ad in self.addresses():
                addrs.setdefault(ad.ifindex, []).append(ad)
        return [
            replace(lk, master=names.get(lk.master_index) if lk.master_index else None,
                    addr_info=tuple(addrs.get(lk.ifindex, ())))
            for lk in links
        ]

    def addresses(self, family: int = socket.AF_UNSPEC) -> list[Address]:
        msgs = self.nl.dump(RTM_GETADDR, _IFADDR.pack(family, 0, 0, 0, 0))
        return [decode_addr(m) for m in msgs]

    def routes(self, family: int = socket.AF_UNSPEC, table: int = RT_TABLE_MAIN,
               names: dict[int, str] | None = None) -> list[Route]:
        """Routes of TABLE; NAMES (ifindex -> name, from a links() just made) saves a second links dump."""
        if names is None:
            names = {lk.ifindex: lk.ifname for lk in self.links()}
        out = []
        for fam in ([socket.AF_INET, socket.AF_INET6] if family == socket.AF_UNSPEC else [family]):
            msgs = self.nl.dump(RTM_GETROUTE, _RTMSG.pack(fam, 0, 0, 0, 0, 0, 0, 0, 0))
            out += [r for r in (decode_route(m, names) for m in msgs) if r.table == table]
        return out

    def qdiscs(self) -> list[Qdisc]:
        """Every qdisc of the namespace (`tc qdisc show`), as (ifindex, handle, parent, kind)."""
        msgs = self.nl.dump(RTM_GETQDISC, _TCMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))
        return [decode_qdisc(m) for m in msgs]

    # ---- request builders (pure: return a Request, nothing sent) ----------------------------
    @staticmethod
    def req_set_link(index: int, name: str, *, up: bool | None = None, mtu: int | None = None,
                     master: int | None = None, netns_fd: int | None = None, address: bytes | None = None,
                     new_name: str | None = None, alias: str | None = None) -> Request:
        flags = change = 0
        if up is not None:
            change = IFF_UP
            flags = IFF_UP if up else 0
        attrs = link_attrs(mtu=mtu, master=master, netns_fd=netns_fd, address=address, new_name=new_name,
                           alias=alias)  # master 0 detaches (nomaster)
        payload = _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change) + attrs
        return Request(RTM_NEWLINK, 0, payload, f"cannot change device {name!r}", name)

    @staticmethod
    def req_add_link(name: str, kind: str, data: bytes = b"", *, index: int = 0, mtu: int | None = None,
                     up: bool = False, master: int | None = None, address: bytes | None = None,
                     lower: int | None = None, netns_fd: int | None = None) -> Request:
        check_ifname(name)
        attrs = attr_str(IFLA_IFNAME, name) + link_attrs(mtu=mtu, master=master, address=address, lower=lower,
                                                         netns_fd=netns_fd)
        info = attr_str(IFLA_INFO_KIND, kind)
        if data:
            info += nested(IFLA_INFO_DATA, data)
        attrs += nested(IFLA_LINKINFO, info)
        flags = IFF_UP if up else 0
        payload = _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, IFF_UP if up else 0) + attrs
        # With a chosen ifindex, EEXIST may mean the index is taken, not the name: say both.
        what = f"cannot create {kind} {name!r}" + (f" (ifindex {index})" if index else "")
        subject = f"{name} (or ifindex {index})" if index else name
        return Request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, payload, what, subject)

    @staticmethod
    def veth_peer(peer: str, *, netns_fd: int | None = None, mtu: int | None = None,
                  address: bytes | None = None, index: int = 0) -> bytes:
        """IFLA_INFO_DATA for a veth: the peer, optionally created straight inside another namespace.

        No `up` here: the kernel refuses to open a peer before the pair exists (veth_open: ENOTCONN),
        so the peer is brought up by a second request.
        """
        check_ifname(peer, "peer name")
        attrs = attr_str(IFLA_IFNAME, peer) + link_attrs(mtu=mtu, address=address, netns_fd=netns_fd)
        return nested(VETH_INFO_PEER, _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0) + attrs)

    @staticmethod
    def req_del_link(index: int, name: str) -> Request:
        payload = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0)
        return Request(RTM_DELLINK, 0, payload, f"cannot delete device {name!r}", name)

    @staticmethod
    def req_addr(index: int, dev: str, cidr: str, *, add: bool = True, nodad: bool = True) -> Request:
        iface = parse_cidr(cidr)
        fam = socket.AF_INET if iface.version == 4 else socket.AF_INET6
        ip = iface.ip
        scope = RT_SCOPE_HOST if ip.is_loopback else RT_SCOPE_LINK if ip.is_link_local else RT_SCOPE_UNIVERSE
        flags = IFA_F_NODAD if (nodad and iface.version == 6) else 0
        attrs = attr(IFA_LOCAL, ip.packed) + attr(IFA_ADDRESS, ip.packed)
        net = iface.network
        if iface.version == 4 and net.prefixlen < 31:
            attrs += attr(IFA_BROADCAST, net.broadcast_address.packed)  # as `ip addr add ... brd +`
        if flags:
            attrs += attr_u32(IFA_FLAGS, flags)
        payload = _IFADDR.pack(fam, iface.network.prefixlen, flags & 0xFF, scope, index) + attrs
        verb = "add" if add else "delete"
        return Request(
            RTM_NEWADDR if add else RTM_DELADDR,
            (NLM_F_CREATE | NLM_F_EXCL) if add else 0,
            payload,
            f"cannot {verb} address {cidr} on {dev!r}",
            f"address {cidr}",
        )

    @staticmethod
    def req_route(dst: str, *, gateway: str | None = None, oif: int | None = None, add: bool = True,
                  metric: int | None = None, replace: bool = False, protocol: int | None = None) -> Request:
        """A route add (or replace) or delete. PROTOCOL: the route's rtm_protocol on add (default boot, as
        `ip route add`); on delete the kernel then removes only a route of that protocol."""
        net = parse_dst(dst)
        gw = parse_ip(gateway, "gateway") if gateway else None
        version = net.version if net is not None else gw.version if gw is not None else 4
        if gw is not None and gw.version != version:
            raise UsageError(
                f"gateway {gateway} is not of the same family as {dst}", "use a gateway of the same family"
            )
        fam = socket.AF_INET if version == 4 else socket.AF_INET6
        plen = net.prefixlen if net is not None else 0
        scope = RT_SCOPE_LINK if (gw is None and oif is not None and add) else RT_SCOPE_UNIVERSE
        if not add:
            scope = 255  # RT_SCOPE_NOWHERE: match any scope, as ip route del does
        attrs = attr_u32(RTA_TABLE, RT_TABLE_MAIN)
        if net is not None and plen:
            attrs += attr(RTA_DST, net.network_address.packed)
        if gw is not None:
            attrs += attr(RTA_GATEWAY, gw.packed)
        if oif is not None:
            attrs += attr_u32(RTA_OIF, oif)
        if metric is not None:
            attrs += attr_u32(RTA_PRIORITY, metric)
        proto = protocol if protocol is not None else RTPROT_BOOT if add else 0
        payload = _RTMSG.pack(fam, plen, 0, 0, RT_TABLE_MAIN, proto, scope,
                              RTN_UNICAST if add else 0, 0) + attrs
        if add:
            flags = NLM_F_CREATE | (0x100 if replace else NLM_F_EXCL)
        else:
            flags = 0
        verb = "add" if add else "delete"
        return Request(RTM_NEWROUTE if add else RTM_DELROUTE, flags, payload, f"cannot {verb} route {dst}",
                       f"route {dst}")

    @staticmethod
    def req_del_neigh(index: int, address: str, packed: bytes | None = None) -> Request:
        """Forget one neighbour (ARP/ND) cache entry; the next packet resolves it again. PACKED: ADDRESS as
        bytes, when the caller has it (reach deletes thousands: parsing each costs more than the request)."""
        if packed is None:
            packed = parse_ip(address, "neighbour address").packed
        fam = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
        payload = _NDMSG.pack(fam, index, 0, 0, 0) + attr(NDA_DST, packed)
        return Request(RTM_DELNEIGH, 0, payload, f"cannot delete neighbour {address}", address)

    # ---- sending ------------------------------------------------------------------------------
    def do(self, req: Request) -> None:
        try:
            self.nl.request(req.kind, req.flags, req.payload)
        except NetlinkError as exc:
            raise error_for(req, exc, self.netns_name) from None

    def run(self, reqs: Sequence[Request]) -> list[NslabError | None]:
        """Send many requests at once; one result per request."""
        results = self.nl.batch((r.kind, r.flags, r.payload) for r in reqs)
        return [None if e is None else error_for(r, e, self.netns_name) for r, e in zip(reqs, results, strict=True)]

    def run_all(self, reqs: Iterable[Request]) -> None:
        """Send many requests; raise the first error."""
        reqs = list(reqs)
        for err in self.run(reqs):
            if err is not None:
                raise err


netns_mod = netns
