"""Built-in topologies for `--topo KIND,ARGS` (Mininet's shapes, plus routed ones). Pure.

single,N             N hosts h1..hN on switch s1
linear,N             switches s1..sN in a chain, host hI on sI
tree,DEPTH,FANOUT    a tree of switches (s1 the root, numbered depth-first), FANOUT^DEPTH hosts at the leaves
ring,N               routers r1..rN in a ring of point-to-point links, host hI on rI (loops: routing picks)
leafspine,S,L,H      S spine routers, L leaf routers each linked to every spine, H hosts per leaf on a LAN
"""

from __future__ import annotations

import difflib
import re

from ..errors import UsageError
from ..names import LAB_NAME_MAX
from .spec import Topology

_DIGITS = re.compile(r"[0-9]+")
MAX_NODES = 100_000  # a guard against typos like tree,10,10 (11 billion nodes), not a kernel limit

# kind -> (argument names, minimum value of each)
SHAPES: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "single": (("N",), (1,)),
    "linear": (("N",), (1,)),
    "tree": (("DEPTH", "FANOUT"), (1, 1)),
    "ring": (("N",), (3,)),
    "leafspine": (("SPINES", "LEAVES", "HOSTS"), (1, 1, 1)),
}


def usage() -> str:
    return "single,N | linear,N | tree,DEPTH,FANOUT | ring,N | leafspine,SPINES,LEAVES,HOSTS"


def parse_topo_arg(arg: str, name: str | None = None) -> Topology:
    """`"tree,2,3"` -> the topology; errors name the argument as the user typed it."""
    kind, *raw = [part.strip() for part in arg.split(",")]
    args: list[int] = []
    shape = SHAPES.get(kind)
    if shape is None:
        close = difflib.get_close_matches(kind, list(SHAPES), n=1)
        raise UsageError(
            f"--topo {arg}: unknown topology {kind!r}",
            (f"did you mean {close[0]!r}? " if close else "") + f"choose one of: {usage()}",
        )
    labels = shape[0]
    if len(raw) != len(labels):  # single,3,4 must not build single,3 and drop the 4
        raise UsageError(
            f"--topo {arg}: {kind} takes {len(labels)} argument(s) ({','.join(labels)}), got {len(raw)}",
            f"write --topo {kind},{','.join(labels)}, e.g. {_example(kind)}",
        )
    for label, text in zip(labels, raw, strict=True):
        # ASCII digits only: int() also takes '٣', '+3', '3_0' and ' 3'.
        if not _DIGITS.fullmatch(text) or len(text) > 9:
            what = "is too large" if _DIGITS.fullmatch(text) else "must be a whole number"
            raise UsageError(
                f"--topo {arg}: {label} {what}, not {text!r}",
                f"write --topo {kind},{','.join(labels)} with decimal digits, e.g. {_example(kind)}",
            )
        args.append(int(text))
    return _build(kind, args, name, f"--topo {arg}")


def topo(kind: str, *args: int, name: str | None = None) -> Topology:
    """The Python spelling: `topo("tree", 2, 3)`."""
    return _build(kind, list(args), name, f"topo({', '.join(map(repr, [kind, *args]))})")


def _example(kind: str) -> str:
    return {
        "single": "single,3",
        "linear": "linear,4",
        "tree": "tree,2,2",
        "ring": "ring,4",
        "leafspine": "leafspine,2,4,2",
    }.get(kind, "single,3")


def _build(kind: str, args: list[int], name: str | None, what: str) -> Topology:
    shape = SHAPES.get(kind)
    if shape is None:
        raise UsageError(f"{what}: unknown topology {kind!r}", f"choose one of: {usage()}")
    labels, minimums = shape
    if len(args) != len(labels):
        raise UsageError(
            f"{what}: {kind} takes {len(labels)} argument(s) ({','.join(labels)}), got {len(args)}",
            f"e.g. {_example(kind)}",
        )
    for label, low, value in zip(labels, minimums, args, strict=True):
        if value < low:
            raise UsageError(f"{what}: {label} must be >= {low}", f"e.g. {_example(kind)}")
    size = _size(kind, args)
    if size > MAX_NODES:
        raise UsageError(f"{what}: would make {size} nodes, more than {MAX_NODES}", "choose smaller arguments")
    if name is None:
        # single3, tree2-3, ring4, ls2-4-2: short, since every namespace name starts with it
        name = ("ls" if kind == "leafspine" else kind) + "-".join(map(str, args))
        if len(name) > LAB_NAME_MAX:
            name = kind[:LAB_NAME_MAX]
    t = Topology.new(name)
    if kind == "single":
        _single(t, *args)
    elif kind == "linear":
        _linear(t, *args)
    elif kind == "tree":
        _tree(t, *args)
    elif kind == "ring":
        _ring(t, *args)
    else:
        _leafspine(t, *args)
    return t


def _size(kind: str, args: list[int]) -> int:
    if kind == "tree":
        depth, fanout = args
        leaves: int = fanout ** min(depth, 64)
        return leaves + (depth if fanout == 1 else (leaves - 1) // (fanout - 1))
    if kind == "leafspine":
        s, leaves, h = args
        return s + leaves + leaves * h + (leaves if h >= 2 else 0)
    return 2 * args[0] if kind != "single" else args[0] + 1


def _single(t: Topology, n: int) -> None:
    t.add_node("s1", "switch")
    for i in range(1, n + 1):
        t.add_node(f"h{i}")
        t.add_link(f"h{i}", "s1")


def _linear(t: Topology, n: int) -> None:
    for i in range(1, n + 1):
        t.add_node(f"h{i}")
        t.add_node(f"s{i}", "switch")
        t.add_link(f"h{i}", f"s{i}")
        if i > 1:
            t.add_link(f"s{i - 1}", f"s{i}")


def _tree(t: Topology, depth: int, fanout: int) -> None:
    # Mininet's TreeTopo: switches numbered in pre-order, hosts left to right, the link to a child added
    # once the child's subtree is done. Iterative: a tree,20000,1 must not hit the recursion limit.
    count = {"s": 0, "h": 0}

    def new(d: int) -> str:
        prefix = "s" if d > 0 else "h"
        count[prefix] += 1
        name = f"{prefix}{count[prefix]}"
        t.add_node(name, "switch" if d > 0 else "host")
        return name

    stack: list[tuple[str, int, int, str | None]] = [(new(depth), depth, fanout, None)]
    while stack:
        node, d, left, parent = stack[-1]
        if d > 0 and left > 0:
            stack[-1] = (node, d, left - 1, parent)
            stack.append((new(d - 1), d - 1, fanout, node))
        else:
            stack.pop()
            if parent is not None:
                t.add_link(parent, node)


def _ring(t: Topology, n: int) -> None:
    for i in range(1, n + 1):
        t.add_node(f"r{i}", "router")
    for i in range(1, n + 1):
        t.add_node(f"h{i}")
        t.add_link(f"h{i}", f"r{i}")
    for i in range(1, n + 1):
        t.add_link(f"r{i}", f"r{i % n + 1}")


def _leafspine(t: Topology, spines: int, leaves: int, hosts: int) -> None:
    for s in range(1, spines + 1):
        t.add_node(f"spine{s}", "router")
    for leaf in range(1, leaves + 1):
        t.add_node(f"leaf{leaf}", "router")
    for leaf in range(1, leaves + 1):
        for s in range(1, spines + 1):
            t.add_link(f"leaf{leaf}", f"spine{s}")
    k = 0
    for leaf in range(1, leaves + 1):
        names = []
        for _ in range(hosts):
            k += 1
            t.add_node(f"h{k}")
            names.append(f"h{k}")
        t.add_link(f"leaf{leaf}", *names)  # 1 host: a p2p link; 2+: a LAN through lanN
