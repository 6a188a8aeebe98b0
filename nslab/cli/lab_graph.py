"""`nslab lab graph LAB --format mermaid|dot|svg [-o FILE]`: a picture with the live link states."""

from __future__ import annotations

import argparse
import os

from ..errors import UsageError
from ..graph import FORMATS, graph
from ..lab.lab import Lab
from .common import emit_json, file_arg, lab_arg, verb_parser


def register(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = verb_parser(verbs, "graph", "draw a lab (mermaid, dot or svg): node kinds, interfaces, addresses, link state")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("--format", "-f", choices=FORMATS, default="mermaid", help="output format (mermaid)")
    p.add_argument("-o", "--output", metavar="FILE", type=file_arg("-o/--output"),
                   help="write to FILE instead of standard output")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.name)
    text = graph(lab, args.format)
    if args.output:
        parent = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(parent):
            raise UsageError(f"lab graph: directory {parent!r} does not exist", "create it, or pick another -o")
        with open(args.output, "w") as f:
            f.write(text)
        if args.json:
            emit_json({"lab": lab.name, "format": args.format, "output": args.output, "bytes": len(text)})
    elif args.json:
        emit_json({"lab": lab.name, "format": args.format, "text": text})
    else:
        print(text, end="")
    return 0
