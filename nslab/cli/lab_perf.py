"""`nslab lab perf LAB A B [--udp] [-t S] [-i S] [-R] [-P N] [--rate R] [--json]`: built-in throughput."""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from ..lab.lab import Lab
from ..perf import parse_interval, parse_rate, parse_seconds, parse_streams, perf
from .common import ascii_arg, emit_json, lab_arg, node_arg, verb_parser


def register(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `perf` to the verbs of `nslab lab` (called by nslab.cli.lab.register)."""
    p = verb_parser(verbs, "perf", "throughput from node A to node B, TCP or UDP (built in, no iperf needed; "
                                   "iperf3's -t -i -R -P)")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("a", metavar="A", type=node_arg("A"), help="client node (connects; sends unless -R)")
    p.add_argument("b", metavar="B", type=node_arg("B"), help="server node (its first IPv4 address is used)")
    p.add_argument("--udp", "-u", action="store_true", help="UDP paced to --rate: loss, jitter (RFC 3550), "
                                                             "reordering")
    p.add_argument("-t", "--time", metavar="S", default="3", type=ascii_arg("-t/--time", parse_seconds),
                   help="seconds to measure (default 3)")
    p.add_argument("-i", "--interval", metavar="S", type=ascii_arg("-i/--interval", parse_interval),
                   help="also report every S seconds (0.1 to 60; --json adds them as 'intervals')")
    p.add_argument("-R", "--reverse", action="store_true", help="data flows B -> A (A still connects to B)")
    p.add_argument("-P", "--parallel", metavar="N", default="1", type=ascii_arg("-P/--parallel", parse_streams),
                   help="parallel streams, summed (default 1)")
    p.add_argument("-r", "--rate", metavar="R", type=ascii_arg("-r/--rate", parse_rate),
                   help="UDP target rate per stream in bits/s: 100M, 1G (default 1G)")
    p.set_defaults(handler=perf_cmd)


def perf_cmd(args: argparse.Namespace) -> int:
    seconds = parse_seconds(args.time)
    if args.rate is not None:
        if not args.udp:
            raise UsageError("lab perf: --rate applies to UDP only", "add --udp, or drop --rate")
        parse_rate(args.rate)
    lab = Lab.attach(args.name)
    res = perf(lab, args.a, args.b, udp=args.udp, seconds=seconds, rate=args.rate, interval=args.interval,
               reverse=args.reverse, streams=args.parallel)
    if args.json:
        emit_json(res.to_json())
    else:
        sys.stdout.write(res.report())
    return 0
