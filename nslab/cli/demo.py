"""`nslab demo [--lab]`: the seed walkthrough, narrated, then cleaned up."""

from __future__ import annotations

import argparse

from .common import add_globals


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="the seed post's walkthrough, narrated with real output",
                       description="the seed post's walkthrough (namespace, lo down, server, lo up, "
                       "ifconfig), narrated with real output; --lab runs a small routed lab instead")
    add_globals(p)
    p.add_argument("--lab", action="store_true", help="the small-lab walkthrough")
    p.add_argument("--name", help="name of the demo's namespace or, with --lab, lab (default nslab-demo and "
                                  "nslabdemo, or a free name next to them when taken)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import lab_walkthrough, walkthrough

    if args.lab:
        lab_walkthrough(name=args.name)
    else:
        walkthrough(name=args.name)
    return 0
