"""The import graph (issue 10): no cycle among nslab's modules (the CLI's and all of them), nothing outside the CLI
imports it, no feature imports the Lab facade.

The graph is read from the source (every `import`, also inside functions), not from what happens to be loaded.
"""

from __future__ import annotations

import ast
import functools
import os
from collections.abc import Iterator

from conftest import REPO

PACKAGE = os.path.join(REPO, "nslab")


def _modules() -> Iterator[tuple[str, str]]:
    for folder, _dirs, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                yield (rel[: -len(".__init__")] if rel.endswith(".__init__") else rel), path


@functools.cache  # read once per run: the tests only read it
def import_graph() -> dict[str, set[str]]:
    """module -> the nslab modules it imports (a `from X import name` of a submodule counts as that module)."""
    mods = dict(_modules())
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        is_pkg = path.endswith("__init__.py")
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("nslab"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = mod.split(".")
                    base = parts[: len(parts) - node.level + (1 if is_pkg else 0)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("nslab"):
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    deps.add(sub if sub in mods else target)
        graph[mod] = {d for d in deps if d in mods and d != mod}
    return graph


def cycles(graph: dict[str, set[str]], within: str) -> list[list[str]]:
    """Every strongly connected group of more than one module among the modules whose name starts with WITHIN."""
    nodes = {m for m in graph if m.startswith(within)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v] & nodes:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "a.w": {"a.x"}}, "a.") == [["a.x", "a.y", "a.z"]]
    assert cycles({"a.x": {"a.y"}, "a.y": set()}, "a.") == []


def test_the_graph_sees_relative_and_function_level_imports() -> None:
    g = import_graph()
    assert "nslab.cli.common" in g["nslab.cli.link"]  # from .common import ...
    assert "nslab.cli.lab" in g["nslab.cli.main"]  # inside build_parser(): from . import lab, ...
    assert "nslab.kernel.rtnl" in g["nslab.namespace"]


def test_no_import_cycle_in_the_cli() -> None:
    assert cycles(import_graph(), "nslab.cli") == []


def test_only_the_cli_imports_the_cli() -> None:
    """nslab.testing used to import the CLI's formatters; `python -m nslab` (nslab.__main__) is the CLI's door."""
    g = import_graph()
    outside = {m: sorted(d for d in deps if d.startswith("nslab.cli")) for m, deps in g.items()
               if not m.startswith("nslab.cli") and m != "nslab.__main__"}
    assert {m: d for m, d in outside.items() if d} == {}


def test_no_import_cycle_in_nslab() -> None:
    """Issue 10: no cycle among all of nslab's modules, imports under TYPE_CHECKING and inside functions
    included (the graph is read from the source)."""
    assert cycles(import_graph(), "nslab") == []


def test_no_feature_imports_the_lab_facade() -> None:
    """Features take a LabView (nslab.lab.view), so that the facade nslab.lab.lab can import them."""
    g = import_graph()
    features = ["nslab.faults", "nslab.reach", "nslab.capture", "nslab.perf", "nslab.graph", "nslab.top",
                "nslab.services", "nslab.checks", "nslab.nodes"]
    assert {f: sorted(g[f] & {"nslab.lab.lab", "nslab"}) for f in features} == {f: [] for f in features}
