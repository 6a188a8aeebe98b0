"""Entry point: `nslab [--json] [-n NS] OBJECT VERB [ARGS]` (the grammar: README, "Commands").

Each object module exposes `register(subparsers)`; its handlers take the parsed arguments and return
an exit status. Errors from nslab map to their exit codes here, in one place.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from ..errors import NslabError, PermissionDenied, UsageError, path_error, privilege_error
from .common import add_globals, emit_json

# add_globals and emit_json live in cli/common.py, below this module (the subcommands import them from there, so
# nothing imports main back); they stay importable from here.
__all__ = ["Interrupted", "add_globals", "build_parser", "emit_json", "main", "run"]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 2 with nslab's message shape and a pointer to --help."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}", f"see '{self.prog} --help'")

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # Python 3.11/3.12 drop a '--' standing where a positional's value goes and hand the handler []:
        # `nslab link set -- -- up` then reached the kernel with a list for a device name.
        dashes = "--" in arg_strings  # a list positional (capture's NODE[:IFACE]...) loses them the same way
        value = super()._get_values(action, arg_strings)
        if not action.option_strings and value == [] and (action.nargs is None or dashes):
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


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: both unwind like Ctrl-C, so every cleanup runs (exit 128 + the signal number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Signals:
    """The CLI's SIGINT and SIGTERM handler. The first signal raises Interrupted; later ones are ignored:
    the process is already on its way out, its cleanup must finish (cleanups are shielded anyway, see
    nslab.shield), and nothing may turn the exit into a traceback. kill -9 remains for the impatient;
    `lab down` and `ns del` remove what it leaves.

    A handler runs wherever the main thread happens to be, also in a weakref callback or a __del__, where
    Python prints and drops any exception ("Exception ignored in ..."). Such a dropped Interrupted reaches
    sys.unraisablehook: it is delivered again, as if the signal had just come, instead of being lost."""

    def __init__(self) -> None:
        self.first: int | None = None
        self.old: dict[int, Any] = {}
        self.old_hook: Any = None

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.first is not None:
            return
        self.first = signum
        raise Interrupted(signum)

    def unraisable(self, info: Any) -> None:
        if not (isinstance(info.exc_value, Interrupted) and self.first is not None and self.first > 0
                and threading.current_thread() is threading.main_thread()):
            (self.old_hook or sys.__unraisablehook__)(info)
            return
        # Raised again when the next Python function starts, outside the callback that dropped it (were
        # that one to drop it too, this runs again). Not here: the hook itself would drop it.
        signum, previous = info.exc_value.signum, sys.gettrace()
        self.first = None

        def deliver(frame: FrameType, event: str, arg: object) -> None:
            sys.settrace(previous)
            self.handler(signum, frame)

        sys.settrace(deliver)

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.old[sig] = signal.signal(sig, self.handler)
        self.old_hook, sys.unraisablehook = sys.unraisablehook, self.unraisable

    def restore(self) -> None:
        for sig, old in self.old.items():
            if old is not None:
                signal.signal(sig, old)
        self.old.clear()
        if self.old_hook is not None:
            sys.unraisablehook, self.old_hook = self.old_hook, None


_process_signals: _Signals | None = None  # set by run(): the handlers stay until the process exits


def _operation(args: argparse.Namespace | None) -> str:
    """`ns add`, `lab up`...: what the user asked for, to start privilege messages with."""
    words = [getattr(args, key, None) for key in ("object", "verb")]
    return " ".join(w for w in words if isinstance(w, str))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. SIGINT and SIGTERM unwind it like Ctrl-C (exit 130 and 143); see docs/architecture.md."""
    sigs = _process_signals
    own = sigs is None and threading.current_thread() is threading.main_thread()
    if own:
        sigs = _Signals()
        sigs.install()
    try:
        return _main(argv, sigs)
    finally:
        if own and sigs is not None:
            sigs.restore()


def _main(argv: Sequence[str] | None, sigs: _Signals | None) -> int:
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        status: int = args.handler(args)
        return status
    except PermissionDenied as exc:
        op = _operation(args)
        print(f"nslab: {op + ': ' if op else ''}{exc}", file=sys.stderr)
        return exc.exit_code
    except NslabError as exc:
        print(f"nslab: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            # A file nslab writes (/run/nslab/...): name it and what would allow it.
            op = _operation(args) or "nslab"
            err = (path_error(op, exc) if exc.filename
                   else privilege_error(op, ("CAP_NET_ADMIN", "CAP_SYS_ADMIN")))
            print(f"nslab: {err}", file=sys.stderr)
            return err.exit_code
        if isinstance(exc, BrokenPipeError):
            return 1
        # The kernel refused something below the door's own error mapping: say what, without a traceback.
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"nslab: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):
            return _interrupted(exc.signum)
        return _interrupted(sigs.first if sigs and sigs.first and sigs.first > 0 else signal.SIGINT)


def _interrupted(signum: int) -> int:
    """The one line and the exit status (128 + signal number, as a shell reports it) of an interrupt."""
    print("nslab: interrupted" if signum == signal.SIGINT else f"nslab: terminated ({signal.Signals(signum).name})",
          file=sys.stderr)
    return 128 + signum


def run() -> None:
    """The console script: the CLI's signal handlers for the whole life of the process."""
    global _process_signals
    if threading.current_thread() is not threading.main_thread():
        sys.exit(main())
    sigs = _process_signals = _Signals()
    sigs.install()
    try:
        code = main()
        sigs.first = sigs.first or -1  # done: from here on a signal changes nothing
    except KeyboardInterrupt:  # one that came as main() returned
        code = _interrupted(sigs.first if sigs.first and sigs.first > 0 else signal.SIGINT)
    # Ignored, not handled, through the interpreter's shutdown: it restores the default action of signals
    # that have Python handlers, and a late Ctrl-C would then kill the process with a signal status.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)
