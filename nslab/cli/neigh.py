"""`nslab [-n NS] neigh show [dev DEV] [nud STATE|all]` (iproute2's ip neigh): the neighbour (ARP/NDP) table."""

from __future__ import annotations

import argparse
import socket

from ..kernel.neigh import NUD_NAMES, NUD_NOARP, neighbours
from ..names import check_ifname
from ..show import neigh_line
from .common import Words, add_show_options, emit_json, object_parser, stats_level, target_ns, verb_parser

NUD_WORDS = {name.lower(): bit for bit, name in NUD_NAMES} | {"all": 0xFF, "none": 0}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    verbs = object_parser(sub, "neigh", "the neighbour table: ARP and NDP entries (ip neigh)")
    p = verb_parser(verbs, "show", "neighbour entries, as ip neigh: [dev DEV] [nud STATE|all] "
                    "(the default verb: 'nslab neigh')", aliases=["list", "ls"])
    p.add_argument("words", nargs="*", metavar="dev DEV | nud STATE")
    add_show_options(p, brief=False)
    p.set_defaults(handler=show)


def show(args: argparse.Namespace) -> int:
    w = Words(args.words, "neigh show")
    dev = None
    states: int | None = None
    while w.more():
        word = w.next()
        if word == "dev":
            dev = w.name("dev", "device", lambda t: check_ifname(t, "device name"))
        elif word == "nud":
            text = w.value("nud", "state")
            if text not in NUD_WORDS:
                raise w.unknown(text, list(NUD_WORDS))
            states = (states or 0) | (NUD_WORDS[text] or 0x100)
        else:
            raise w.unknown(word, ["dev", "nud"])
    ns = target_ns(args)
    index = ns.rtnl.index(dev) if dev is not None else None
    fam = {4: socket.AF_INET, 6: socket.AF_INET6}.get(args.family or 0, socket.AF_UNSPEC)
    # ip's default filter: every state but NOARP, and no NONE (state 0) entries (ipneigh.c do_show_or_flush)
    want = 0xFF & ~NUD_NOARP if states is None else states
    rows = [n for n in neighbours(ns.rtnl, fam)
            if (index is None or n.ifindex == index) and n.dst is not None
            and (n.raw_state & want or n.proxy or n.extern_learn or (not n.raw_state and want & 0x100))]
    # With dev DEV, ip leaves the device out of each entry.
    stats = stats_level(args) > 0
    if args.json:
        emit_json([{k: v for k, v in n.to_json(stats).items() if index is None or k != "dev"} for n in rows])
    else:
        for n in rows:
            print(neigh_line(n, with_dev=index is None, stats=stats))
    return 0
