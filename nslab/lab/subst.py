"""`${...}` substitution in the text a topology file hands to programs: `exec` commands, `env` values (and
s19-super's `files`/`services`). Pure: the caller gives a `Context` (made by `Plan.subst_context`).

Only `${NAME}` and `${NAME:ARG}` forms are ours; every other `$` is left as it is, so shell text such as
`$HOME`, `$1` or `$$` passes through to `sh -c` unchanged. `$${` writes a literal `${` (for the shell's own
`${VAR}`). string.Template does not fit: it would take `$HOME` too, and has no `NAME:ARG` form.

| form | value |
|---|---|
| `${node}`, `${lab}` | this node's name, the lab's name |
| `${addr:NODE}`, `${addr6:NODE}` | NODE's first IPv4 / IPv6 address, bare (no /len) |
| `${group:NAME}` | the members of group NAME (or of replicated node NAME), space-separated |
| `${addrs:NAME}`, `${addrs6:NAME}` | their first IPv4 / IPv6 addresses, space-separated |

A third part sets the separator of a list: `${group:etcd:,}` gives `db1,db2,db3`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from ..errors import UsageError

VARIABLES = ("node", "lab", "addr", "addr6", "group", "addrs", "addrs6")
_TOKEN = re.compile(r"\$\$\{|\$\{([^{}]*)\}|\$\{")


class SubstError(UsageError):
    """A `${...}` that names no variable, node or group; the caller adds file, line and field."""


@dataclass(frozen=True)
class Context:
    lab: str
    node: str
    nodes: Collection[str]  # every node of the lab
    groups: Mapping[str, Sequence[str]]  # group (or replicated node) -> member nodes
    address: Callable[[str, int], str | None]  # (node, 4 | 6) -> its first address of that family, bare


def _known(names: Collection[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:12]) + (", ..." if len(names) > 12 else "") if names else "(none)"


def _addr(ctx: Context, node: str, family: int, form: str) -> str:
    if node not in ctx.nodes:
        if node in ctx.groups:
            raise SubstError(f"${{{form}}}: {node!r} is a group, not a node",
                             f"write ${{addrs{'6' if family == 6 else ''}:{node}}} for its members' addresses")
        raise SubstError(f"${{{form}}}: unknown node {node!r}", f"known nodes: {_known(ctx.nodes)}")
    addr = ctx.address(node, family)
    if addr is None:
        raise SubstError(f"${{{form}}}: node {node!r} has no IPv{family} address",
                         "link it to a segment, or name another node")
    return addr


def _members(ctx: Context, name: str, form: str) -> Sequence[str]:
    if name not in ctx.groups:
        hint = f"known groups: {_known(ctx.groups)}"
        if name in ctx.nodes:
            hint = f"{name!r} is a node: write ${{addr:{name}}} for its address, or list it under groups:"
        raise SubstError(f"${{{form}}}: unknown group {name!r}", hint)
    return ctx.groups[name]


def _value(body: str, ctx: Context) -> str:
    name, _, rest = body.partition(":")
    arg, has_sep, sep = rest.partition(":")
    name, arg = name.strip(), arg.strip()  # `${ node }` reads as `${node}`; a separator is kept as written
    if name in ("node", "lab"):
        if rest:
            raise SubstError(f"${{{body}}}: ${{{name}}} takes no argument", f"write ${{{name}}}")
        return ctx.node if name == "node" else ctx.lab
    if name not in VARIABLES:
        raise SubstError(f"unknown variable ${{{body}}}",
                         "variables: ${node}, ${lab}, ${addr:NODE}, ${addr6:NODE}, ${group:NAME}, ${addrs:NAME}, "
                         "${addrs6:NAME}; write $${ for a literal ${ (e.g. a shell variable)")
    if not arg:
        raise SubstError(f"${{{body}}}: ${{{name}:...}} needs a name", f"write e.g. ${{{name}:h1}}")
    if name in ("addr", "addr6"):
        if has_sep:
            raise SubstError(f"${{{body}}}: a single address takes no separator", f"write ${{{name}:{arg}}}")
        return _addr(ctx, arg, 6 if name == "addr6" else 4, body)
    members = _members(ctx, arg, body)
    joiner = sep if has_sep else " "
    if name == "group":
        return joiner.join(members)
    return joiner.join(_addr(ctx, m, 6 if name == "addrs6" else 4, f"{name}:{m}") for m in members)


def expand(text: str, ctx: Context) -> str:
    """TEXT with every `${...}` replaced; SubstError (exit 2) names what is unknown."""
    if "${" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "$${":
            return "${"
        if m.group(1) is None:
            raise SubstError("'${' without its closing '}'", "close it, or write $${ for a literal ${")
        return _value(m.group(1), ctx)

    return _TOKEN.sub(one, text)
