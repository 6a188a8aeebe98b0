"""Programs in a lab's nodes: node names in a command line become addresses (Mininet's `h1 ping h2`), and the
command runs in the node's namespace. `LabNode.run`/`popen`, services, checks and nslab.testing use it."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from typing import Any

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


def run(lab: LabView, node: str, argv: Sequence[str], resolve_names: bool = True,
        **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """Run ARGV in NODE (subprocess.run's keywords); words naming nodes become addresses unless told not to."""
    kwargs = with_env(lab, node, kwargs)
    cmd = resolve(lab.plan, argv) if resolve_names else list(argv)
    ns = Namespace.open(lab.plan.node(node).netns)
    try:
        return ns.run(cmd, **kwargs)
    finally:
        ns.close()


def popen(lab: LabView, node: str, argv: Sequence[str], resolve_names: bool = True,
          **kwargs: Any) -> subprocess.Popen[Any]:
    """Start ARGV in NODE (subprocess.Popen's keywords), node names resolved as in `run`."""
    kwargs = with_env(lab, node, kwargs)
    cmd = resolve(lab.plan, argv) if resolve_names else list(argv)
    ns = Namespace.open(lab.plan.node(node).netns)
    try:
        return ns.popen(cmd, **kwargs)
    finally:
        ns.close()
