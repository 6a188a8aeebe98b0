"""Entry point: `nslab [--json] [-n NS] OBJECT VERB [ARGS]` (DESIGN.md §3).

Each object module exposes `register(subparsers)`; its handlers take the parsed arguments and return
an exit status. Errors from nslab map to their exit codes here, in one place.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import NslabError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 2 with nslab's message shape and a pointer to --help."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}", f"see '{self.prog} --help'")

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # Python 3.11/3.12 drop a '--' standing where a positional's value goes and hand the handler []:
        # `nslab link set -- -- up` then reached the kernel with a list for a device name.
        value = super()._get_values(action, arg_strings)
        if action.nargs is None and not action.option_strings and value == []:
            self.error(f"argument {action.metavar or action.dest}: missing ('--' ends the options, it is not a value)")
        return value


def build_parser() -> argparse.ArgumentParser:
    from . import addr, demo, ifconfig, lab, link, ns, probe, route

    parser = _Parser(prog="nslab", description="Linux network namespaces, virtual interfaces and labs.")
    add_globals(parser, top=True)
    objects = parser.add_subparsers(dest="object", metavar="OBJECT", parser_class=_Parser)
    objects.required = True
    for module in (ns, link, addr, route, ifconfig, probe, demo, lab):
        module.register(objects)
    return parser


def add_globals(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """--json and -n NS are accepted before the object and, for convenience, after it too."""
    # Sub-parsers must not overwrite what was given before the object, hence SUPPRESS there.
    parser.add_argument(
        "-j", "--json", action="store_true", default=False if top else argparse.SUPPRESS,
        help="machine-readable output (keys follow `ip -j`)",
    )
    from .common import netns_arg  # checked while parsing: -n "" must not mean the root namespace

    parser.add_argument(
        "-n", "--netns", metavar="NS", default=None if top else argparse.SUPPRESS, type=netns_arg,
        help="operate inside namespace NS",
    )


def emit_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=None)
    sys.stdout.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        status: int = args.handler(args)
        return status
    except NslabError as exc:
        print(f"nslab: {exc}", file=sys.stderr)
        return exc.exit_code
    except PermissionError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"nslab: permission denied{where}\n  hint: nslab changes the kernel's networking: run it as root, "
              "for example with sudo", file=sys.stderr)
        return 2
    except OSError as exc:
        # The kernel refused something below the door's own error mapping: say what, without a traceback.
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"nslab: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nslab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


def run() -> None:
    sys.exit(main())
