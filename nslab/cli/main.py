"""Entry point: `nslab [--json] [-n NS] OBJECT VERB [ARGS]` (the grammar: README, "Commands").

Each object module exposes `register(subparsers)`; its handlers take the parsed arguments and return
an exit status. Errors from nslab map to their exit codes here, in one place.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from ..errors import NslabError, PermissionDenied, UsageError, path_error, privilege_error
from .common import add_globals, add_show_options, emit_json

# add_globals and emit_json live in cli/common.py, below this module (the subcommands import them from there, so
# nothing imports main back); they stay importable from here.
__all__ = ["Interrupted", "add_globals", "build_parser", "emit_json", "main", "run"]


# iproute2's abbreviations (lib/utils.c matches(): a word is taken for the first name in ip's own order that
# it is a prefix of), restricted to what nslab has: (ip's spelling, nslab's name), in ip's order. `ip l` is
# link, `ip a` address, `ip r` route, `ip n` neighbour, `ip link s` set, `ip addr s` show. Words no ip name
# takes fall back to a unique prefix of nslab's own names (`nslab la` is lab, `nslab d` demo).
IP_OBJECTS = [("address", "addr"), ("route", "route"), ("neighbor", "neigh"), ("neighbour", "neigh"),
              ("link", "link"), ("netns", "ns")]
IP_VERBS = {
    "link": [("add", "add"), ("set", "set"), ("delete", "del"), ("show", "show"), ("lst", "show"),
             ("list", "show")],
    "addr": [("add", "add"), ("delete", "del"), ("list", "show"), ("show", "show"), ("lst", "show")],
    "route": [("add", "add"), ("delete", "del"), ("list", "show"), ("show", "show"), ("lst", "show")],
    "neigh": [("show", "show"), ("lst", "show"), ("list", "show")],
    "ns": [("list", "list"), ("show", "list"), ("lst", "list"), ("add", "add"), ("delete", "del"),
           ("pids", "pids"), ("exec", "exec")],
}
# A bare object shows, as in ip: `nslab link` is `nslab link show`, `nslab ns` is `nslab ns list`.
DEFAULT_VERBS = {"link": "show", "addr": "show", "route": "show", "neigh": "show", "ns": "list"}


class _NoVerb(Exception):
    """Raised by an object's parser when no verb was given and the object has a default one."""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 2 with nslab's message shape and a pointer to --help; object and verb
    words are taken abbreviated as ip takes them; a bare object runs its default verb."""

    abbrevs: list[tuple[str, str]] | None = None  # None: names only as spelt (no abbreviations)
    default_verb: str | None = None

    def error(self, message: str) -> Any:
        if self.default_verb is not None and message == "the following arguments are required: VERB":
            raise _NoVerb
        where = self.prog.removeprefix("nslab").strip()  # main prints "nslab: " once
        raise UsageError(f"{where}: {message}" if where else message, f"see '{self.prog} --help'")

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        try:
            return super().parse_known_args(args, namespace)
        except _NoVerb:
            assert self.default_verb is not None and args is not None
            return super().parse_known_args([self.default_verb, *args], namespace)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        if isinstance(action, argparse._SubParsersAction) and arg_strings and self.abbrevs is not None:
            arg_strings = [resolve_word(arg_strings[0], self.abbrevs, list(action.choices)), *arg_strings[1:]]
        # Python 3.11/3.12 drop a '--' standing where a positional's value goes and hand the handler []:
        # `nslab link set -- -- up` then reached the kernel with a list for a device name.
        dashes = "--" in arg_strings  # a list positional (capture's NODE[:IFACE]...) loses them the same way
        value = super()._get_values(action, arg_strings)
        if not action.option_strings and value == [] and (action.nargs is None or dashes):
            self.error(f"argument {action.metavar or action.dest}: missing ('--' ends the options, it is not a value)")
        return value


def resolve_word(word: str, ip_order: Sequence[tuple[str, str]], names: Sequence[str]) -> str:
    """The name WORD stands for: itself if it is one, else the first of ip's spellings it is a prefix of (if
    nslab has that one), else the one nslab name it is a prefix of. Unresolved, WORD comes back unchanged
    (argparse then says it is not a choice)."""
    if word in names or not word:
        return word
    for spelling, name in ip_order:
        if spelling.startswith(word) and name in names:
            return name
    own = [n for n in names if n.startswith(word)]
    return own[0] if len(own) == 1 else word


# Objects that take -n (it is accepted everywhere, before or after the object) but have no use for it: refused,
# never ignored (a user who wrote it meant something).
NO_NETNS = {
    "lab": "a lab's nodes are named by LAB NODE (e.g. 'nslab lab exec LAB h1 -- CMD'); drop -n",
    "ns": "ns verbs take the namespace's name as their argument (e.g. 'nslab ns exec NS -- CMD'); drop -n",
    "demo": "the demo makes its own namespace and lab (--name picks the name); drop -n",
}


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from . import addr, demo, ifconfig, lab, link, neigh, ns, probe, route

    parser = _Parser(prog="nslab", description="Linux network namespaces, virtual interfaces and labs.")
    parser.add_argument("-V", "--version", action="version", version=f"nslab {__version__}")
    add_globals(parser, top=True)
    add_show_options(parser, top=True)
    parser.abbrevs = IP_OBJECTS
    objects = parser.add_subparsers(dest="object", metavar="OBJECT", parser_class=_Parser)
    objects.required = True
    for module in (ns, link, addr, route, neigh, ifconfig, probe, demo, lab):
        module.register(objects)
    for name, sub in objects.choices.items():
        if isinstance(sub, _Parser) and name in IP_VERBS:
            sub.abbrevs, sub.default_verb = IP_VERBS[name], DEFAULT_VERBS.get(name)
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


# Objects whose commands act in the namespace -n names: a hint naming one of them keeps the -n of the command.
_IN_NETNS = re.compile(r"'nslab (?=(?:link|addr|route|neigh|ifconfig|probe)\b(?![^']*--help'))")


def _netns_of(argv: Sequence[str] | None, args: argparse.Namespace | None) -> str | None:
    """The -n NS of the command (read from argv when parsing failed before it was stored)."""
    if args is not None:
        name = getattr(args, "netns", None)
        return name if isinstance(name, str) else None
    words = list(sys.argv[1:] if argv is None else argv)
    for i, word in enumerate(words):
        if word == "--":
            break
        if word in ("-n", "--netns") and i + 1 < len(words):
            return words[i + 1] or None
        if word.startswith("--netns="):
            return word.partition("=")[2] or None
    return None


def _message(exc: NslabError, netns: str | None) -> str:
    text = str(exc)
    if netns is not None and exc.hint:
        # 'nslab link show' run as written would look in the root namespace, not in NS
        text = _IN_NETNS.sub(lambda m: f"'nslab -n {shlex.quote(netns)} ", text)
    return text


def _quiet_stdout() -> None:
    """The reader of our stdout went away (`nslab ... | head -1`): later writes, and the flush at exit, go
    to /dev/null instead of raising BrokenPipeError again (Python's documented remedy)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


BROKEN_PIPE = 128 + signal.SIGPIPE  # what a shell reports for ip killed by SIGPIPE in the same pipeline


def _main(argv: Sequence[str] | None, sigs: _Signals | None) -> int:
    args: argparse.Namespace | None = None
    try:
        if list(sys.argv[1:] if argv is None else argv) in (["-V"], ["--version"]):
            # as `ip -V`: answered before the parser (and every command module it imports) is built
            from .. import __version__

            print(f"nslab {__version__}")
            return 0
        args = build_parser().parse_args(argv)
        if getattr(args, "netns", None) is not None and args.object in NO_NETNS:
            raise UsageError(f"-n {args.netns}: '{args.object}' does not operate inside a namespace",
                             NO_NETNS[args.object])
        status: int = args.handler(args)
        return status
    except PermissionDenied as exc:
        op = _operation(args)
        print(f"nslab: {op + ': ' if op else ''}{_message(exc, _netns_of(argv, args))}", file=sys.stderr)
        return exc.exit_code
    except NslabError as exc:
        print(f"nslab: {_message(exc, _netns_of(argv, args))}", file=sys.stderr)
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
            _quiet_stdout()
            return BROKEN_PIPE
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
    code: int | str | None
    try:
        code = main()
        sigs.first = sigs.first or -1  # done: from here on a signal changes nothing
    except KeyboardInterrupt:  # one that came as main() returned
        code = _interrupted(sigs.first if sigs.first and sigs.first > 0 else signal.SIGINT)
    except SystemExit as exc:  # --help and --version print, then exit inside argparse
        code = exc.code
    try:
        sys.stdout.flush()  # here, not at shutdown, where a closed pipe would print a traceback
    except BrokenPipeError:
        _quiet_stdout()
        code = BROKEN_PIPE
    # Ignored, not handled, through the interpreter's shutdown: it restores the default action of signals
    # that have Python handlers, and a late Ctrl-C would then kill the process with a signal status.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)
