"""`nslab lab link|node|partition|heal|impair`: fault injection verbs of the lab object (see docs/faults.md).

`register(verbs)` adds them to the lab object's verb sub-parsers (the ones `nslab/cli/lab.py` makes).
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import faults as fl
from ..errors import UsageError
from ..lab.lab import Lab
from .common import ascii_arg, dev_arg, int_arg, lab_arg, node_arg, node_list_arg, seconds_arg, verb_parser


def register(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = verb_parser(verbs, "link", "set the link between two nodes down, up, or flap it (both veth ends)")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("a", metavar="A", type=node_arg("A"))
    p.add_argument("b", metavar="B", type=node_arg("B"))
    p.add_argument("action", choices=["down", "up", "flap"])
    p.add_argument("--iface", metavar="IFNAME", type=dev_arg("--iface"),
                   help="A's interface, when A and B share several links")
    p.add_argument("--period", type=seconds_arg("--period", 0.02, 3600), default=2.0, metavar="S",
                   help="flap: one cycle, down then up, in seconds (default 2)")
    p.add_argument("--count", type=int_arg("--count", 0, 100_000), default=3, metavar="N",
                   help="flap: cycles (default 3)")
    p.set_defaults(handler=link)
    p = verb_parser(verbs, "node", "stop a node (interfaces down, processes SIGSTOPped) or start it again")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("node", metavar="NODE", type=node_arg())
    p.add_argument("action", choices=["stop", "start"])
    p.set_defaults(handler=node)
    p = verb_parser(verbs, "partition",
                    "drop traffic between groups of nodes, silently, at the receivers (heal undoes it)")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("groups", nargs="*", metavar="GROUP", type=node_list_arg("GROUP"),
                   help="comma-separated nodes, e.g. h1,h2 h3")
    p.add_argument("--from", dest="src", metavar="A", type=node_list_arg("--from"),
                   help="one-way: A's packets to --to are dropped")
    p.add_argument("--to", dest="dst", metavar="B", type=node_list_arg("--to"),
                   help="one-way: the node that drops A's packets")
    p.add_argument("--grudge", action="append", default=[], metavar="NODE=SRC[,SRC]",
                   help="NODE drops what the SRCs send it (repeatable; Jepsen's grudge)")
    p.set_defaults(handler=partition)
    p = verb_parser(verbs, "heal", "remove every partition of a lab")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.set_defaults(handler=heal)
    p = verb_parser(verbs, "impair", "loss, duplicate and rate on one link, per direction (--clear removes)")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("a", metavar="A", type=node_arg("A"))
    p.add_argument("b", metavar="B", type=node_arg("B"))
    p.add_argument("--dir", default="both", metavar="A->B|B->A|both", type=ascii_arg("--dir"),
                   help="direction (default both)")
    p.add_argument("--iface", metavar="IFNAME", type=dev_arg("--iface"),
                   help="A's interface, when A and B share several links")
    def percent(flag: str) -> Any:
        return ascii_arg(flag, lambda t: fl.parse_percent(t, f"{flag[2:]} percentage"))

    p.add_argument("--loss", metavar="P%", type=percent("--loss"), help="drop P percent of packets (0 removes)")
    p.add_argument("--duplicate", metavar="P%", type=percent("--duplicate"),
                   help="duplicate P percent of packets (0 removes)")
    p.add_argument("--rate", metavar="RATE", type=ascii_arg("--rate", _rate_or_zero),
                   help="limit the rate, tc units: 10mbit, 1gbit, 500kbit (0 removes)")
    p.add_argument("--corrupt", metavar="P%", type=percent("--corrupt"), help="needs netem")
    p.add_argument("--delay", metavar="TIME", type=ascii_arg("--delay", lambda t: fl.parse_time(t)),
                   help="needs netem")
    p.add_argument("--jitter", metavar="TIME", type=ascii_arg("--jitter", lambda t: fl.parse_time(t, "jitter")),
                   help="needs netem")
    p.add_argument("--reorder", metavar="P%", type=percent("--reorder"), help="needs netem")
    p.add_argument("--clear", action="store_true", help="remove this link's impairments (in --dir)")
    p.set_defaults(handler=impair)


def _rate_or_zero(text: str) -> None:
    if text.strip() not in ("0", "0bit"):
        fl.parse_rate(text)


def link(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.name)
    if args.action == "flap":
        fl.flap(lab, args.a, args.b, args.period, args.count, args.iface)
        print(f"lab {args.name}: link {args.a}-{args.b} flapped {args.count} times, now up")
        return 0
    fl.link_state(lab, args.a, args.b, args.action == "up", args.iface)
    print(f"lab {args.name}: link {args.a}-{args.b} {args.action}")
    return 0


def node(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.name)
    if args.action == "stop":
        pids = fl.node_stop(lab, args.node)
        print(f"lab {args.name}: node {args.node} stopped (interfaces down, {len(pids)} processes frozen)")
    else:
        fl.node_start(lab, args.node)
        print(f"lab {args.name}: node {args.node} started")
    return 0


def partition(args: argparse.Namespace) -> int:
    forms = sum([bool(args.groups), bool(args.src or args.dst), bool(args.grudge)])
    if forms != 1:
        raise UsageError("partition: give groups, or --from A --to B, or --grudge NODE=SRC (one form)",
                         "e.g. 'partition LAB h1,h2 h3' or 'partition LAB --from h1 --to h2'")
    groups = fl.parse_groups(args.groups) if args.groups else []
    mapping: dict[str, Any] = fl.parse_grudge_words(args.grudge) if args.grudge else {}
    for node, srcs in mapping.items():
        for name in (node, *srcs):
            node_arg("--grudge")(name)
    lab = Lab.attach(args.name)
    if args.groups:
        fl.partition(lab, groups)
        what = " | ".join(",".join(g) for g in groups)
    elif args.grudge:
        fl.grudge(lab, mapping)
        what = "; ".join(f"{k} drops {','.join(v)}" for k, v in mapping.items())
    else:
        if not (args.src and args.dst):
            raise UsageError("partition: --from and --to go together", "e.g. 'partition LAB --from h1 --to h2'")
        fl.partition_oneway(lab, args.src.split(","), args.dst.split(","))
        what = f"{args.src} -> {args.dst} dropped"
    print(f"lab {args.name}: partition {what}")
    return 0


def heal(args: argparse.Namespace) -> int:
    fl.heal(Lab.attach(args.name))
    print(f"lab {args.name}: healed (no partitions)")
    return 0


def impair(args: argparse.Namespace) -> int:
    fl.parse_direction(args.dir, args.a, args.b)  # checked before the lab is even looked up
    lab = Lab.attach(args.name)
    if args.clear:
        given = [k for k in ("loss", "duplicate", "rate", "corrupt", "delay", "jitter", "reorder") if getattr(args, k)]
        if given:
            raise UsageError(f"impair: --clear removes impairments; it takes no --{given[0]}",
                             "run --clear alone, or set a value to 0 to remove only that impairment")
        fl.clear(lab, args.a, args.b, args.dir, args.iface)
        print(f"lab {args.name}: impairments of {args.a}-{args.b} ({args.dir}) cleared")
        return 0
    fl.impair(lab, args.a, args.b, args.dir, loss=args.loss, rate=args.rate, duplicate=args.duplicate,
              corrupt=args.corrupt, delay=args.delay, jitter=args.jitter, reorder=args.reorder, iface=args.iface)
    print(f"lab {args.name}: {args.a}-{args.b} ({args.dir}) impaired")
    return 0
