"""`nslab lab capture LAB NODE[:IFACE] [-w FILE.pcap] [--count N] [--filter EXPR]`."""

from __future__ import annotations

import argparse
import sys

from ..capture import capture, parse_target
from ..kernel import netns
from ..lab.lab import Lab
from .common import checked, file_arg, int_arg, lab_arg, node_arg, verb_parser


def register(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `capture` to the verbs of `nslab lab` (called by nslab.cli.lab.register)."""
    p = verb_parser(verbs, "capture", "capture packets on a node's interface (any end of a link, switch ports "
                                      "included): live lines, or a pcap file with -w")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("target", metavar="NODE[:IFACE]", type=checked(_check_target, "NODE[:IFACE]"),
                   help="default interface: the node's first lab interface")
    p.add_argument("-w", "--write", metavar="FILE.pcap", type=file_arg("-w/--write"),
                   help="write packets to a pcap file instead of showing them")
    p.add_argument("-c", "--count", metavar="N", type=int_arg("--count", 1, 10**12),
                   help="stop after N packets (default: until Ctrl-C)")
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
    node, iface = parse_target(args.target)
    lab = Lab.attach(args.name)
    cap = capture(lab, node, iface, count=count, filter=args.filter, write=args.write)
    live = args.write is None
    try:
        # A process of the node's namespace while it captures, so that `lab down` ends it.
        with netns.entered(cap.netns):
            cap.start()  # the line below is printed once packets are being captured
            print(f"capturing on {cap.node}:{cap.iface} of lab {lab.name}"
                  + (f", writing {args.write}" if args.write else "")
                  + (f", filter {args.filter!r}" if args.filter else "") + " (Ctrl-C stops)", file=sys.stderr)
            if live:
                for pkt in cap:
                    print(pkt.line(), flush=True)
            else:
                cap.wait()
    except KeyboardInterrupt:
        pass
    finally:
        cap.stop()
    print(cap.summary(), file=sys.stderr)
    if cap.error is not None:
        raise cap.error
    return 0
