"""`nslab ns add|del|list|exec|shell|pids` (iproute2's ip netns)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from ..errors import NotFoundError, UsageError
from ..kernel import netns
from ..names import check_netns_name
from ..namespace import Namespace, kill_pids
from .common import emit_json, object_parser, verb_parser


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    verbs = object_parser(sub, "ns", "network namespaces (ip netns)")
    p = verb_parser(verbs, "add", "create a namespace; like a fresh machine, its lo is down")
    p.add_argument("name")
    p.set_defaults(handler=add)
    p = verb_parser(verbs, "del", "delete namespaces, killing their processes first", aliases=["delete"])
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--no-kill", action="store_true", help="do not kill processes running in it")
    p.set_defaults(handler=delete)
    p = verb_parser(verbs, "list", "list namespaces (also those made by ip netns)", aliases=["show", "ls"])
    p.set_defaults(handler=list_)
    p = verb_parser(verbs, "exec", "run a program in a namespace, with its own /sys and /etc/netns files")
    p.add_argument("name")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")
    p.set_defaults(handler=exec_)
    p = verb_parser(verbs, "shell", "an interactive shell in a namespace; the prompt names it")
    p.add_argument("name")
    p.set_defaults(handler=shell)
    p = verb_parser(verbs, "pids", "processes running in a namespace")
    p.add_argument("name")
    p.set_defaults(handler=pids)


def add(args: argparse.Namespace) -> int:
    Namespace.create(args.name).close()
    return 0


def delete(args: argparse.Namespace) -> int:
    for name in args.names:  # check them all first: nothing half-done on a typo
        check_netns_name(name)
        if not netns.exists(name) and not netns.stale(name):
            raise NotFoundError(f"namespace {name!r} does not exist", "see 'nslab ns list' for the names")
    for name in args.names:
        if netns.stale(name):
            # What a create or delete killed half-way leaves (`ip netns del` removes it too).
            netns.delete(name)
            print(f"ns del: removed {netns.path(name)}, a leftover file with no namespace mounted on it",
                  file=sys.stderr)
            continue
        if not args.no_kill:
            kill_pids(netns.pids(name))
        netns.delete(name)
    return 0


def list_(args: argparse.Namespace) -> int:
    names = netns.list_names()
    if args.json:
        emit_json([{"name": n} for n in names])
    else:
        for n in names:
            print(n)
    return 0


def pids(args: argparse.Namespace) -> int:
    check_netns_name(args.name)
    if not netns.exists(args.name):
        raise NotFoundError(f"namespace {args.name!r} does not exist", "see 'nslab ns list' for the names")
    found = netns.pids(args.name)
    if args.json:
        emit_json(found)
    else:
        for p in found:
            print(p)
    return 0


def _command(cmd: list[str]) -> list[str]:
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("ns exec: no command given", "write 'nslab ns exec NAME -- CMD [ARG...]'")
    return cmd


def _exec_in(name: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
    from ..kernel.spawn import enter_full

    check_netns_name(name)
    if not netns.exists(name):
        raise NotFoundError(f"namespace {name!r} does not exist", "see 'nslab ns list' for the names")
    if shutil.which(cmd[0]) is None:
        raise UsageError(f"ns exec: command {cmd[0]!r} not found", "check the spelling or give a full path")
    enter_full(name)
    sys.stdout.flush()
    os.execvpe(cmd[0], cmd, env if env is not None else dict(os.environ))


def exec_(args: argparse.Namespace) -> int:
    return _exec_in(args.name, _command(args.cmd))


BASHRC = r"""[ -f ~/.bashrc ] && . ~/.bashrc
PS1="(netns:$NSLAB_NETNS) ${PS1:-\u@\h:\w\$ }"
"""


def shell(args: argparse.Namespace) -> int:
    env = dict(os.environ, NSLAB_NETNS=args.name)
    sh = os.environ.get("SHELL") or "/bin/bash"
    if os.path.basename(sh) == "bash" or (sh == "/bin/bash"):
        # bash re-sets PS1 from ~/.bashrc, so the prompt prefix goes in an rc file read after it.
        rc = "/run/nslab/bashrc"
        os.makedirs(os.path.dirname(rc), exist_ok=True)
        with open(rc, "w") as f:
            f.write(BASHRC)
        return _exec_in(args.name, [sh, "--rcfile", rc, "-i"], env)
    env["PS1"] = f"(netns:{args.name}) $ "
    return _exec_in(args.name, [sh, "-i"], env)
