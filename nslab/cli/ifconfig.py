"""`nslab [-n NS] ifconfig [-a] [-s] [DEV [up|down]]`: the classic net-tools view of the seed post."""

from __future__ import annotations

import argparse
import sys

from ..ifconfig import format_all, format_interface, parse_if_inet6
from ..kernel.netns import run_in_netns
from ..namespace import Namespace
from .common import add_globals, dev_arg, emit_json, target_ns


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ifconfig", help="interfaces as net-tools ifconfig shows them",
                       description="interfaces as net-tools ifconfig shows them (only the UP ones without -a); "
                                   "'ifconfig DEV up' / 'ifconfig DEV down' set a device up or down")
    add_globals(p)
    p.add_argument("-a", "--all", action="store_true", help="also interfaces that are down")
    p.add_argument("-s", "--short", action="store_true", help="one line per interface (as netstat -i)")
    p.add_argument("dev", nargs="?", type=dev_arg())
    p.add_argument("state", nargs="?", choices=["up", "down"], metavar="up|down",
                   help="set DEV up or down (prints nothing, as net-tools)")
    p.set_defaults(handler=run)


def _inet6_order(ns: Namespace) -> list[tuple[str, str]] | None:
    """/proc/net/if_inet6 of the namespace, which net-tools prints inet6 lines from, in its order (a hash order
    with a per-namespace seed: only the kernel knows it). None without IPv6."""

    def read() -> str:
        with open("/proc/thread-self/net/if_inet6") as f:  # this thread's namespace, not the process's
            return f.read()

    try:
        return parse_if_inet6(read() if ns.name is None else run_in_netns(ns.name, read))
    except FileNotFoundError:
        return None


def run(args: argparse.Namespace) -> int:
    ns = target_ns(args)
    if args.state is not None:
        handle = ns.link(args.dev)
        handle.up() if args.state == "up" else handle.down()
        if args.json:
            emit_json(ns.rtnl.link(args.dev, with_addrs=True).to_json(with_stats=True, with_addrs=True))
        return 0
    if args.dev is not None:
        links = [ns.rtnl.link(args.dev, with_addrs=True)]
    else:
        links = ns.rtnl.links(with_addrs=True)
    if args.json:
        shown = links if (args.all or args.dev is not None) else [lk for lk in links if lk.up]
        emit_json([lk.to_json(with_stats=True, with_addrs=True) for lk in shown])
        return 0
    order = None if args.short else _inet6_order(ns)
    if args.dev is not None:
        sys.stdout.write(format_interface(links[0], inet6_order=order, short=args.short))
    else:
        sys.stdout.write(format_all(links, show_all=args.all, inet6_order=order, short=args.short))
    return 0
