"""`nslab lab capture LAB [NODE[:IFACE] ...] [--link A B] [-w FILE|-] [--count N] [--filter EXPR]`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO

from ..capture import capture, link_points, parse_target
from ..errors import UsageError
from ..kernel import netns
from ..lab.lab import Lab
from .common import checked, file_arg, int_arg, lab_arg, node_arg, verb_parser


def register(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `capture` to the verbs of `nslab lab` (called by nslab.cli.lab.register)."""
    p = verb_parser(verbs, "capture", "capture packets on nodes' interfaces (any end of a link, switch ports "
                                      "included, several at once): live lines, or a pcap/pcapng file with -w")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("targets", metavar="NODE[:IFACE]", nargs="*", type=checked(_check_target, "NODE[:IFACE]"),
                   help="where to capture (default interface: the node's first lab interface); several go to one "
                        "pcapng file, one interface record each")
    p.add_argument("--link", metavar=("A", "B"), nargs=2, action="append", type=node_arg("--link"), default=[],
                   help="both ends of the link A-B (repeatable)")
    p.add_argument("-w", "--write", metavar="FILE", type=file_arg("-w/--write"),
                   help="write packets to FILE instead of showing them ('-': standard output, e.g. "
                        "| tshark -r -); pcapng for several interfaces or a .pcapng name, else pcap")
    p.add_argument("-c", "--count", metavar="N", type=int_arg("--count", 1, 10**12),
                   help="stop after N packets, all interfaces together (default: until Ctrl-C)")
    p.add_argument("-f", "--filter", metavar="EXPR", help="pcap-filter expression, as for tcpdump: 'icmp', "
                                                          "'tcp port 80', ...")
    p.set_defaults(handler=capture_cmd)


def _check_target(text: str) -> None:
    from ..names import check_ifname

    node, iface = parse_target(text)
    node_arg("NODE")(node)
    if iface is not None:
        check_ifname(iface)


def capture_cmd(args: argparse.Namespace) -> int:
    count: int | None = args.count
    if not args.targets and not args.link:
        raise UsageError("lab capture: nothing to capture on",
                         f"name a NODE[:IFACE] or a link: 'nslab lab capture {args.name} h1' or '--link h1 s1'")
    lab = Lab.attach(args.name)
    points: list[str] = list(args.targets)
    for a, b in args.link:
        points += link_points(lab, a, b)
    to_stdout = args.write == "-"
    out: str | IO[bytes] | None = sys.stdout.buffer if to_stdout else args.write
    if to_stdout and sys.stdout.isatty():
        raise UsageError("lab capture: -w - writes binary pcap to a terminal",
                         "pipe it into a reader ('| tshark -r -') or write a file")
    node, iface = parse_target(points[0])
    cap = capture(lab, node, iface, count=count, filter=args.filter, write=out, more=points[1:])
    cap.flush_each = to_stdout
    live = args.write is None
    several = len(cap.points) > 1
    try:
        # A process of the (first) node's namespace while it captures, so that `lab down` ends it.
        with netns.entered(cap.netns):
            cap.start()  # the line below is printed once packets are being captured
            print(f"capturing on {', '.join(p.name for p in cap.points)} of lab {lab.name}"
                  + (f", writing {'standard output' if to_stdout else args.write}"
                     f" ({'pcapng' if cap.pcapng else 'pcap'})" if args.write else "")
                  + (f", filter {args.filter!r}" if args.filter else "") + " (Ctrl-C stops)", file=sys.stderr)
            if live:
                for pkt in cap:
                    print(f"{pkt.node}:{pkt.iface} {pkt.line()}" if several else pkt.line(), flush=True)
            else:
                cap.wait()
    except KeyboardInterrupt:
        pass
    finally:
        cap.stop()
    print(cap.summary(), file=sys.stderr)
    if isinstance(cap.error, BrokenPipeError) and to_stdout:
        # The reader of the pipe went away (tshark -c N, head): the end, not a failure; nothing more to flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    if cap.error is not None:
        raise cap.error
    return 0
