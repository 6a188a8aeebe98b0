"""`nslab [-n NS] ifconfig [-a] [DEV]`: the classic net-tools view of the seed post."""

from __future__ import annotations

import argparse
import sys

from ..ifconfig import format_all, format_interface
from .common import add_globals, dev_arg, emit_json, target_ns


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ifconfig", help="interfaces as net-tools ifconfig shows them",
                       description="interfaces as net-tools ifconfig shows them (only the UP ones without -a)")
    add_globals(p)
    p.add_argument("-a", "--all", action="store_true", help="also interfaces that are down")
    p.add_argument("dev", nargs="?", type=dev_arg())
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    ns = target_ns(args)
    if args.dev is not None:
        links = [ns.rtnl.link(args.dev, with_addrs=True)]
    else:
        links = ns.rtnl.links(with_addrs=True)
    if args.json:
        shown = links if (args.all or args.dev is not None) else [lk for lk in links if lk.up]
        emit_json([lk.to_json(with_stats=True, with_addrs=True) for lk in shown])
        return 0
    sys.stdout.write(format_interface(links[0]) if args.dev is not None else format_all(links, show_all=args.all))
    return 0
