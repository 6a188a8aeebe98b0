"""Programs in a lab's nodes: node names in a command line become addresses (Mininet's `h1 ping h2`), and the
command runs in the node's view (docs/nodes.md): its network namespace, hostname, /etc/hosts, /sys, private
dirs and files, with a pid in the lab's pid namespace. `LabNode.run`/`popen`, services, checks and
nslab.testing use it. A lab brought up without a supervisor (its directory absent: made by apply.up alone)
gets the network namespace only, as `Namespace.run` always does."""

from __future__ import annotations

import errno
import os
import re
import subprocess
from collections.abc import Sequence
from typing import Any

from . import threads
from .kernel.spawn import ParkedThread, finish
from .lab import client
from .lab.plan import Plan
from .lab.view import LabView
from .namespace import Namespace

_WORD = re.compile(r"(?<![\w.-])([a-z][a-z0-9-]*)(?=[:/])")


def resolve(plan: Plan, argv: Sequence[str]) -> list[str]:
    """Replace words that are node names by the node's first IPv4 address (Mininet's `h1 ping h2`)."""
    names = {n.name for n in plan.nodes}
    out = []
    for word in argv:
        if word in names and (addr := plan.primary_ipv4(word)):
            out.append(addr)
        else:
            out.append(_resolve_embedded(word, names, plan))
    return out


def _resolve_embedded(word: str, names: set[str], plan: Plan) -> str:
    """`h2:8080` and `http://h2/x` also resolve: a node name before ':' or '/'."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        addr = plan.primary_ipv4(name) if name in names else None
        return addr or name

    return _WORD.sub(sub, word)


def with_env(lab: LabView, node: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """KWARGS with the node's `env:` (topology file) added to the environment: on top of ours, or under the
    caller's own `env=` (the caller's keys win)."""
    env = lab.plan.node(node).env
    if env:
        given = kwargs.get("env")
        kwargs = {**kwargs, "env": {**os.environ, **env} if given is None else {**env, **given}}
    return kwargs


def _spawn(lab: LabView, node: str, argv: list[str], kwargs: dict[str, Any]) -> subprocess.Popen[Any]:
    netns = lab.plan.node(node).netns
    if not client.has_views(lab.name):
        ns = Namespace.open(netns)
        try:
            return ns.popen(argv, **kwargs)
        finally:
            ns.close()
    # The caller's cwd, when the node sees it (a private /tmp hides the host's); else the node's /.
    here = kwargs.pop("cwd", None)
    here = os.fspath(here) if here is not None else os.getcwd()
    with client.view(lab.name, node) as fds:
        thread = ParkedThread(netns, view=fds)
    try:
        def start() -> subprocess.Popen[Any]:
            cwd = here if os.path.isdir(here) else "/"
            with threads.signals_unblocked():
                return subprocess.Popen(argv, cwd=cwd, **kwargs)

        try:
            return thread.call(start)
        except OSError as exc:
            if exc.errno == errno.ENOMEM:  # a fork into a pid namespace whose init (the supervisor) died
                raise client.SupervisorGone(lab.name) from None
            raise
    finally:
        thread.close()


def run(lab: LabView, node: str, argv: Sequence[str], resolve_names: bool = True,
        **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """Run ARGV in NODE (subprocess.run's keywords); words naming nodes become addresses unless told not to."""
    check = kwargs.pop("check", False)
    timeout = kwargs.pop("timeout", None)
    text_input = kwargs.pop("input", None)
    if kwargs.pop("capture_output", False):
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    if text_input is not None:
        kwargs["stdin"] = subprocess.PIPE
    res = finish(popen(lab, node, argv, resolve_names, **kwargs), text_input, timeout)
    if check:
        res.check_returncode()
    return res


def popen(lab: LabView, node: str, argv: Sequence[str], resolve_names: bool = True,
          **kwargs: Any) -> subprocess.Popen[Any]:
    """Start ARGV in NODE (subprocess.Popen's keywords), node names resolved as in `run`."""
    kwargs = with_env(lab, node, kwargs)
    cmd = resolve(lab.plan, argv) if resolve_names else list(argv)
    return _spawn(lab, node, cmd, kwargs)
