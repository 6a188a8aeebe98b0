"""`nslab lab graph LAB|FILE | --topo KIND,ARGS [--format F] [-o FILE]`: a picture of a lab.

A running lab is drawn with its live state (link states, faults: root, as any kernel read); a topology file or a
built-in topology is drawn from its plan alone, without root and without creating anything.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import UsageError
from ..graph import BINARY_FORMATS, FORMATS, draw, read_live
from ..lab.lab import Lab
from .common import checked, emit_json, file_arg, verb_parser


def register(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = verb_parser(verbs, "graph", "draw a lab: layers, interfaces and addresses in the nodes, faults in colour "
                                    "(a running lab), or a topology file / --topo without root")
    p.add_argument("source", metavar="LAB|FILE", nargs="?", type=checked(_check_source, "LAB|FILE"),
                   help="a running lab (live state), or a topology file (its plan)")
    p.add_argument("--topo", metavar="KIND,ARGS", help="a built-in topology instead: single,N | linear,N | "
                                                       "tree,D,F | ring,N | leafspine,S,L,H")
    p.add_argument("--format", "-f", choices=FORMATS, default="mermaid",
                   help="mermaid (default), dot, svg, png, or html (one self-contained page: pan and zoom)")
    p.add_argument("--plan", action="store_true", help="a running lab's plan only (no kernel read, no root)")
    p.add_argument("-o", "--output", metavar="FILE", type=file_arg("-o/--output"),
                   help="write to FILE instead of standard output")
    p.set_defaults(handler=run)


def _is_lab_name(text: str) -> bool:
    from ..lab.topology import check_lab_name

    try:
        check_lab_name(text)
    except UsageError:
        return False
    return True


def _check_source(text: str) -> None:
    file_arg("LAB|FILE")(text)
    if not _is_lab_name(text) and not os.path.exists(text):
        raise UsageError(f"LAB|FILE {text!r} is neither a lab name nor an existing file",
                         "give the name of a running lab ('nslab lab list') or the path of a topology file")


def load(args: argparse.Namespace) -> tuple[Lab, bool]:
    """The lab to draw and whether it runs (its kernel state is then read)."""
    if (args.source is None) == (args.topo is None):
        raise UsageError("lab graph: give a running lab, a topology file or --topo (one of them)",
                         "e.g. 'nslab lab graph campus.yaml -f svg -o campus.svg'")
    if args.topo is not None:
        return Lab.from_topo_arg(args.topo), False
    from ..lab import state as st

    source: str = args.source
    if _is_lab_name(source):
        rec = st.load(source)
        if rec is not None and rec.status == "up":
            return Lab.attach(source), not args.plan
        if not os.path.isfile(source):
            Lab.attach(source)  # NotFoundError: no lab of that name is up
    return Lab.from_file(source), False


def run(args: argparse.Namespace) -> int:
    if args.format in BINARY_FORMATS and not args.output and (args.json or sys.stdout.isatty()):
        raise UsageError(f"lab graph: {args.format} is binary", f"write it to a file: -o lab.{args.format}")
    lab, running = load(args)
    out = draw(lab.plan, args.format, read_live(lab) if running else None)
    data = out.encode() if isinstance(out, str) else out
    if args.output:
        parent = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(parent):
            raise UsageError(f"lab graph: directory {parent!r} does not exist", "create it, or pick another -o")
        with open(args.output, "wb") as f:
            f.write(data)
        if args.json:
            emit_json({"lab": lab.name, "format": args.format, "live": running, "output": args.output,
                       "bytes": len(data)})
    elif args.json:
        emit_json({"lab": lab.name, "format": args.format, "live": running, "text": out})
    elif isinstance(out, str):
        sys.stdout.write(out)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()
    return 0
