"""`nslab [-n NS] addr show|add|del` (iproute2's ip address)."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from ..kernel.rtnl import parse_cidr
from ..names import check_ifname
from ..show import addr_line, link_lines
from .common import Words, dev_arg, emit_json, no_zone, object_parser, target_ns, verb_parser


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    verbs = object_parser(sub, "addr", "addresses on devices (ip address)")
    p = verb_parser(verbs, "show", "devices with their addresses", aliases=["list", "ls"])
    p.add_argument("dev", nargs="?", type=dev_arg())
    p.add_argument("-s", "--stats", action="store_true", help="with counters (stats64)")
    p.set_defaults(handler=show)
    for verb, text in (("add", "add an address: CIDR dev DEV"), ("del", "remove an address: CIDR dev DEV")):
        p = verb_parser(verbs, verb, text, aliases=["delete"] if verb == "del" else [])
        p.add_argument("cidr")
        p.add_argument("words", nargs=argparse.REMAINDER)
        p.set_defaults(handler=change, add=verb == "add")


def show(args: argparse.Namespace) -> int:
    ns = target_ns(args)
    links = [ns.rtnl.link(args.dev, with_addrs=True)] if args.dev is not None else ns.rtnl.links(with_addrs=True)
    if args.json:
        emit_json([lk.to_json(with_stats=args.stats, with_addrs=True) for lk in links])
        return 0
    for lk in links:
        print("\n".join(link_lines(lk)))
        for a in lk.addr_info:
            print(addr_line(a))
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
