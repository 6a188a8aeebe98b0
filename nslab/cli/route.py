"""`nslab [-n NS] route show|add|del` (iproute2's ip route): IPv4, or IPv6 with -6."""

from __future__ import annotations

import argparse

from ..kernel.rtnl import Rtnl
from ..names import check_ifname
from ..show import route_line
from .common import Words, add_show_options, emit_json, no_zone, object_parser, target_ns, verb_parser


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    verbs = object_parser(sub, "route", "routes of the main table (ip route)")
    p = verb_parser(verbs, "show", "IPv4 routes, or IPv6 ones with -6, as ip route (the default verb: 'nslab route')",
                    aliases=["list", "ls"])
    add_show_options(p)  # -s and -br are taken and change nothing, as in ip
    p.set_defaults(handler=show)
    for verb, text in (("add", "add a route: DST|default [via GW] [dev DEV] [metric N]"),
                       ("del", "delete a route: DST|default [via GW] [dev DEV]")):
        p = verb_parser(verbs, verb, text, aliases=["delete"] if verb == "del" else [])
        p.add_argument("dst")
        p.add_argument("words", nargs=argparse.REMAINDER)
        p.set_defaults(handler=change, add=verb == "add")


def show(args: argparse.Namespace) -> int:
    routes = target_ns(args).routes(args.family or 4)
    if args.json:
        emit_json([r.to_json() for r in routes])
    else:
        for r in routes:
            print(route_line(r))
    return 0


def change(args: argparse.Namespace) -> int:
    verb = "add" if args.add else "del"
    w = Words(args.words, f"route {verb} {args.dst}")
    via = dev = None
    metric = None
    known = ["via", "dev", "metric"] if args.add else ["via", "dev"]
    while w.more():
        word = w.next()
        if word == "via":
            via = w.name("via", "gateway", lambda t: no_zone(t, "gateway"))
        elif word == "dev":
            dev = w.name("dev", "device", lambda t: check_ifname(t, "device name"))
        elif word == "metric" and args.add:
            metric = w.integer("metric", "number", 0, 2**32 - 1)
        else:
            raise w.unknown(word, known)
    no_zone(args.dst, "route destination")
    Rtnl.req_route(args.dst, gateway=via, add=args.add, metric=metric)  # parses and checks, sends nothing
    ns = target_ns(args)
    if args.add:
        ns.add_route(args.dst, via=via, dev=dev, metric=metric)
    else:
        ns.del_route(args.dst, via=via, dev=dev)
    return 0
