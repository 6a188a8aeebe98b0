"""The nftables tables a namespace holds, read over NETLINK_NETFILTER (no `nft` process).

Only the list of tables: enough for heal and repair to know, per namespace and without trusting any record,
whether nslab's tables are there (`nft list tables` costs a process, ~3 ms; this dump ~0.1 ms).
Rules are still written by `nft -f` (kernel/nft.py): one transaction per namespace.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from ..errors import KernelError
from . import netns
from .netlink import NetlinkError, NetlinkSocket, attr_text, parse_attrs

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETTABLE = 1
NFTA_TABLE_NAME = 1
_NFGENMSG = struct.Struct("=BBH")  # family, version, res_id (big endian, unused here)
FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}


def _socket_in(name: str) -> NetlinkSocket:
    fd = netns.open_fd(name)
    try:
        door = netns.door()

        def inside() -> NetlinkSocket:
            netns.setns(fd)
            try:
                raw = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
                return NetlinkSocket(raw)
            finally:
                door.go_home()

        return door.call(inside)
    finally:
        os.close(fd)


def tables(name: str) -> set[tuple[str, str]]:
    """(family, table) of every nftables table in namespace NAME."""
    sock = _socket_in(name)
    try:
        return read_tables(sock, name)
    finally:
        sock.close()


def read_tables(sock: NetlinkSocket, name: str = "") -> set[tuple[str, str]]:
    """The table dump on SOCK (a NETLINK_NETFILTER socket in namespace NAME), decoded."""
    try:
        msgs = sock.dump((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, _NFGENMSG.pack(socket.AF_UNSPEC, 0, 0))
    except NetlinkError as exc:
        if exc.code in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.ENOENT):
            return set()  # no nf_tables in this kernel: no table either
        raise KernelError(f"cannot list the nftables tables of namespace {name!r}: {exc}", exc.code) from None
    out = set()
    for m in msgs:
        fam = m.body[0]
        name_attr = parse_attrs(m.body, _NFGENMSG.size).get(NFTA_TABLE_NAME)
        if name_attr is not None:
            out.add((FAMILIES.get(fam, str(fam)), attr_text(name_attr)))
    return out
