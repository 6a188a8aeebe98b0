"""`nslab lab reach LAB [--from NODES] [--to NODES] [--tcp PORT | --udp PORT] [-6] [--timeout S]
[--failed | --matrix | --pingall]`."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from ..lab.lab import Lab
from ..reach import PINGALL_MAX, reach
from .common import emit_json, int_arg, lab_arg, node_list_arg, seconds_arg, verb_parser


def register(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = verb_parser(verbs, "reach", "all-pairs reachability matrix, probed concurrently (exit 1 if a pair fails)")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("--from", dest="sources", metavar="NODES", type=node_list_arg("--from"),
                   help="comma-separated source nodes (default: hosts)")
    p.add_argument("--to", dest="targets", metavar="NODES", type=node_list_arg("--to"),
                   help="comma-separated target nodes (default: hosts)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--tcp", type=int_arg("--tcp", 1, 65535), metavar="PORT",
                      help="ok = a TCP handshake with PORT completes")
    mode.add_argument("--udp", type=int_arg("--udp", 1, 65535), metavar="PORT",
                      help="ok = a datagram to PORT is answered")
    p.add_argument("-6", dest="family", action="store_const", const=6, default=4, help="probe IPv6 addresses")
    p.add_argument("--timeout", type=seconds_arg("--timeout", 0.01, 3600), default=2.0, metavar="S",
                   help="give up on a pair after S s (2)")
    view = p.add_mutually_exclusive_group()
    view.add_argument("--failed", dest="view", action="store_const", const="failed",
                      help="only the pairs that failed, every one with its reason, and the summary (big labs)")
    view.add_argument("--matrix", dest="view", action="store_const", const="matrix",
                      help="the matrix: rows from, columns to ('.' ok, 'X' not, '>' one way only)")
    view.add_argument("--pingall", dest="view", action="store_const", const="pingall",
                      help=f"Mininet's pingall rows (h1 -> h2 h3 X); the default up to {PINGALL_MAX} targets, "
                           "the summary beyond")
    p.set_defaults(view="auto")
    p.set_defaults(handler=run)


def _names(text: str | None, flag: str) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"lab reach: {flag} needs node names", f"e.g. '{flag} h1,h2'")
    return names


def run(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.name)
    proto, port = ("tcp", args.tcp) if args.tcp is not None else ("udp", args.udp) if args.udp is not None \
        else ("icmp", None)
    res = reach(lab, _names(args.sources, "--from"), _names(args.targets, "--to"), timeout=args.timeout,
                proto=proto, port=port, family=args.family)
    if args.json:
        emit_json(res.to_json())
    else:
        print(res.text(args.view))
    return 0 if res.ok else 1
