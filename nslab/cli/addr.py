"""`nslab [-n NS] addr show|add|del` (iproute2's ip address)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from ..errors import UsageError
from ..kernel.rtnl import parse_cidr
from ..names import check_ifname
from ..show import Index, addr_line, brief_addr_line, link_lines, stats_lines
from .common import (
    Words,
    add_show_options,
    dev_arg,
    emit_json,
    no_zone,
    object_parser,
    stats_level,
    target_ns,
    verb_parser,
)
from .link import link_json, netns_names_of


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    verbs = object_parser(sub, "addr", "addresses on devices (ip address)")
    p = verb_parser(verbs, "show", "devices with their addresses (the default verb: 'nslab addr')",
                    aliases=["list", "ls"])
    p.add_argument("dev", nargs="?", type=dev_arg())
    add_show_options(p)
    p.set_defaults(handler=show)
    for verb, text in (("add", "add an address: CIDR dev DEV"), ("del", "remove an address: CIDR dev DEV")):
        p = verb_parser(verbs, verb, text, aliases=["delete"] if verb == "del" else [])
        p.add_argument("cidr")
        p.add_argument("words", nargs=argparse.REMAINDER)
        p.set_defaults(handler=change, add=verb == "add")


def show(args: argparse.Namespace) -> int:
    ns = target_ns(args)
    level = stats_level(args)
    family = {4: "inet", 6: "inet6"}.get(args.family or 0)
    every = ns.rtnl.links(with_addrs=True)
    links = every if args.dev is None else [ns.rtnl.link(args.dev, with_addrs=True)]
    index: Index | None = {lk.ifindex: lk for lk in every}
    if family is not None:
        # as ip -4/-6 addr: only the matching addresses, and only devices that have one
        links = [replace(lk, addr_info=tuple(a for a in lk.addr_info if a.family == family)) for lk in links]
        links = [lk for lk in links if lk.addr_info]
    if family == "inet6":
        # ip -6 reads the devices from the kernel's IPv6 dump, which tells nothing of lower devices and peers
        links = [replace(lk, link_index=None, link_netnsid=None) for lk in links]
        index = None
    if args.json:
        emit_json([link_json(lk, index, level, args.brief, with_addrs=True) for lk in links])
        return 0
    if args.brief:
        for lk in links:
            print(brief_addr_line(lk, index))
        return 0
    netns_names = netns_names_of(ns.rtnl, links)
    for lk in links:
        lines = link_lines(lk, index, netns_names)
        if family is not None:  # ip -4/-6 addr: no link/ line; what it held of the peer ends the first line
            peer = lines[1].partition(" link-netns")[1:] if len(lines) > 1 else ("", "")
            lines = [lines[0] + "".join(peer)]
        print("\n".join(lines))
        for a in lk.addr_info:
            print(addr_line(a))
        if level:
            print("\n".join(stats_lines(lk, level)))
    return 0


def change(args: argparse.Namespace) -> int:
    verb = "add" if args.add else "del"
    parse_cidr(no_zone(args.cidr, "address"))
    w = Words(args.words, f"addr {verb} {args.cidr}")
    dev = None
    while w.more():
        word = w.next()
        if word == "dev":
            dev = w.name("dev", "device", lambda t: check_ifname(t, "device name"))
        else:
            raise w.unknown(word, ["dev"])
    if dev is None:
        raise UsageError(f"addr {verb} {args.cidr}: no device given", f"write 'nslab addr {verb} {args.cidr} dev DEV'")
    ns = target_ns(args)
    if args.add:
        ns.add_address(args.cidr, dev)
    else:
        ns.del_address(args.cidr, dev)
    return 0
