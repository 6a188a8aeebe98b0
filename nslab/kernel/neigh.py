"""Read-only rtnetlink dumps `ip neigh` and `ip link`'s link-netns need: the neighbour table, and the names
of the namespaces behind the netnsids a namespace has assigned (as iproute2's get_name_from_nsid)."""

from __future__ import annotations

import os
import socket
import struct

from ..model import Neighbour
from .netlink import Message, NetlinkError, attr_u32, parse_attrs
from .rtnl import Rtnl, _mac, family_name

RTM_GETNEIGH, RTM_GETNSID = 30, 90
NDA_DST, NDA_LLADDR, NDA_CACHEINFO, NDA_PROBES, NDA_PROTOCOL = 1, 2, 3, 4, 12
NETNSA_NSID, NETNSA_FD = 1, 3
NTF_PROXY, NTF_EXT_LEARNED, NTF_OFFLOADED, NTF_ROUTER = 0x08, 0x10, 0x20, 0x80
NUD_NOARP = 0x40
# ip's print order of NUD states (ipneigh.c print_neigh_state)
NUD_NAMES = [(0x01, "INCOMPLETE"), (0x02, "REACHABLE"), (0x04, "STALE"), (0x08, "DELAY"), (0x10, "PROBE"),
             (0x20, "FAILED"), (0x40, "NOARP"), (0x80, "PERMANENT")]
_NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
_RTGEN = struct.Struct("=Bxxx")


def decode_neigh(msg: Message, names: dict[int, str]) -> Neighbour:
    fam, index, state, flags, _type = _NDMSG.unpack_from(msg.body)
    a = parse_attrs(msg.body, _NDMSG.size)
    hz = os.sysconf("SC_CLK_TCK")  # the kernel reports the ages in USER_HZ ticks; ip divides by it
    ci = struct.unpack_from("=4I", a[NDA_CACHEINFO]) if len(a.get(NDA_CACHEINFO, b"")) >= 16 else None
    dst = socket.inet_ntop(fam, a[NDA_DST]) if NDA_DST in a and fam in (socket.AF_INET, socket.AF_INET6) else None
    return Neighbour(
        family=family_name(fam), dst=dst, ifindex=index, dev=names.get(index),
        lladdr=_mac(a[NDA_LLADDR]) if NDA_LLADDR in a else None,
        state=tuple(name for bit, name in NUD_NAMES if state & bit), raw_state=state,
        router=bool(flags & NTF_ROUTER), proxy=bool(flags & NTF_PROXY),
        extern_learn=bool(flags & NTF_EXT_LEARNED), offload=bool(flags & NTF_OFFLOADED),
        protocol=a[NDA_PROTOCOL][0] if NDA_PROTOCOL in a else 0,
        # struct nda_cacheinfo: confirmed, used, updated (ticks ago), refcnt
        cache=(ci[3], ci[1] // hz, ci[0] // hz, ci[2] // hz) if ci else None,
        probes=struct.unpack("=I", a[NDA_PROBES][:4])[0] if NDA_PROBES in a else None,
    )


def neighbours(rtnl: Rtnl, family: int = socket.AF_UNSPEC) -> list[Neighbour]:
    """The neighbour (ARP/NDP) cache, in the kernel's order, every state included (callers filter as ip does)."""
    names = {lk.ifindex: lk.ifname for lk in rtnl.links()}
    msgs = rtnl.nl.dump(RTM_GETNEIGH, _NDMSG.pack(family, 0, 0, 0, 0))
    return [decode_neigh(m, names) for m in msgs]


def nsid_of(rtnl: Rtnl, fd: int) -> int | None:
    """The id rtnl's namespace has for the namespace open on fd, or None if it has none (never assigns one)."""
    try:
        msg = rtnl.nl.get(RTM_GETNSID, _RTGEN.pack(socket.AF_UNSPEC) + attr_u32(NETNSA_FD, fd))
    except NetlinkError:
        return None
    a = parse_attrs(msg.body, _RTGEN.size)
    nsid = struct.unpack("=i", a[NETNSA_NSID][:4])[0] if NETNSA_NSID in a else -1
    return nsid if nsid >= 0 else None


def nsid_names(rtnl: Rtnl, wanted: set[int], run_dir: str = "/run/netns") -> dict[int, str]:
    """netnsid -> name in run_dir, for the ids in wanted (ip prints `link-netns NAME` from the same walk)."""
    out: dict[int, str] = {}
    try:
        entries = sorted(os.listdir(run_dir))
    except OSError:
        return out
    for name in entries:
        if not wanted - set(out):
            break
        try:
            fd = os.open(os.path.join(run_dir, name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            nsid = nsid_of(rtnl, fd)
        finally:
            os.close(fd)
        if nsid in wanted and nsid not in out:
            out[nsid] = name
    return out
