"""`nslab lab top LAB [--interval S] [--json --once]`: live per-interface rates, errors and drops."""

from __future__ import annotations

import argparse
import shutil
import sys
import time

from ..errors import UsageError
from ..lab.lab import Lab
from ..top import rates, sample, table
from .common import emit_json, lab_arg, seconds_arg, verb_parser

CLEAR = "\x1b[H\x1b[2J"


def register(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = verb_parser(verbs, "top", "live packet/byte rates, errors and drops of every interface of a lab")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("--interval", type=seconds_arg("--interval", 0.05, 3600), default=1.0, metavar="S",
                   help="seconds between readings (1)")
    p.add_argument("--once", action="store_true", help="two readings --interval apart, one report, then exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 0.05 <= args.interval <= 3600:
        raise UsageError(f"lab top: interval {args.interval!r} out of range", "give --interval from 0.05 to 3600")
    lab = Lab.attach(args.name)
    try:
        prev = sample(lab)
        while True:
            time.sleep(args.interval)
            cur = sample(lab)
            r = rates(prev, cur)
            prev = cur
            if args.json:
                emit_json(r)
            else:
                rows = shutil.get_terminal_size((100, 40)).lines - 3
                head = f"lab {lab.name}: every {args.interval:g} s, rates per second (Ctrl-C quits)"
                out = table(r, None if args.once else max(rows, 5))
                sys.stdout.write((out if args.once else CLEAR + head + "\n" + out) + "\n")
            sys.stdout.flush()
            if args.once:
                return 0
    except KeyboardInterrupt:
        # Nothing to stop: every reading opened and closed its own sockets.
        if not args.json:
            sys.stdout.write("\n")
        return 0
