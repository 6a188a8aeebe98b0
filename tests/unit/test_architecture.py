"""The "may import" rules of docs/architecture.md, checked on the code's own imports (read from the source, also
inside functions and under TYPE_CHECKING: tests/unit/test_cli_imports.py's graph), and a docstring in every
package folder's __init__.py."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from conftest import REPO, TESTS

from .test_cli_imports import import_graph

# The base: plain data, errors, names, units, signals and threads. Everything may import it.
BASE = {"nslab.errors", "nslab.names", "nslab.model", "nslab.shield", "nslab.threads", "nslab.units", "nslab.netem"}
# The planning half of nslab.lab: pure (no root, no kernel, no I/O).
PLANNING = {f"nslab.lab.{m}" for m in ("model", "checks", "spec", "loader", "builtin", "topology", "addressing",
                                       "routing", "plan", "view", "subst", "svcspec", "profiles")}


def _broken(within: set[str], allowed: set[str]) -> dict[str, list[str]]:
    """Modules in WITHIN that import an nslab module outside ALLOWED, with those imports."""
    g = import_graph()
    out = {m: sorted(d for d in g[m] if d not in allowed) for m in sorted(within)}
    return {m: d for m, d in out.items() if d}


def _under(prefix: str) -> set[str]:
    return {m for m in import_graph() if m == prefix or m.startswith(prefix + ".")}


def test_the_base_imports_only_the_base() -> None:
    assert set(import_graph()) >= BASE
    assert _broken(BASE, BASE) == {}


def test_the_kernel_door_imports_only_itself_and_the_base() -> None:
    """nslab.kernel imports nothing from nslab.lab, nslab.cli or the features."""
    assert _broken(_under("nslab.kernel"), _under("nslab.kernel") | BASE) == {}


def test_the_planning_half_of_lab_is_pure() -> None:
    """No kernel, no feature, no CLI under the planning modules: they run without root."""
    assert set(import_graph()) >= PLANNING
    assert _broken(PLANNING, PLANNING | BASE) == {}


def test_the_labs_kernel_work_is_below_the_features() -> None:
    """apply, reconcile, state, events and the node views, supervisor and its client: the planning half, the
    kernel door and the base; no feature."""
    work = {f"nslab.lab.{m}" for m in ("apply", "reconcile", "state", "events",
                                       "nodeview", "supervisor", "client", "system")}
    assert _broken(work, work | PLANNING | _under("nslab.kernel") | BASE) == {}


# The features take a LabView; above them the Lab facade, and above it its users (and the CLI).
FEATURES = {f"nslab.{m}" for m in ("faults", "reach", "capture", "perf", "graph", "top", "services", "checks", "nodes",
                                   "namespace", "probe", "show", "ifconfig")}
FACADE_USERS = {"nslab.demo", "nslab.testing", "nslab.pytest_plugin", "nslab.pytest_checks"}


def test_features_import_no_facade_and_no_cli() -> None:
    """Features: the base, the kernel door, nslab.lab but its facade, each other."""
    assert set(import_graph()) >= FEATURES | FACADE_USERS
    allowed = BASE | _under("nslab.kernel") | (_under("nslab.lab") - {"nslab.lab.lab"}) | FEATURES
    assert _broken(FEATURES, allowed) == {}


def test_lab_imports_nothing_from_the_cli() -> None:
    cli = _under("nslab.cli")
    allowed = set(import_graph()) - cli
    assert _broken(_under("nslab.lab"), allowed) == {}


def test_the_rules_see_a_broken_rule() -> None:
    """The check itself: an import the kernel may not make is reported."""
    g = import_graph()
    assert "nslab.kernel.rtnl" in g["nslab.namespace"]
    assert _broken({"nslab.namespace"}, BASE) != {}  # nslab.namespace is above the kernel door, not in it


# ---- the test folders ----------------------------------------------------------------------------------------
def _test_imports(folder: str) -> dict[str, set[str]]:
    """test file -> the test folders (unit, system, kernel, vm) it imports from (absolute or relative)."""
    out: dict[str, set[str]] = {}
    for path in sorted(Path(TESTS, folder).glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        used = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                top = folder if node.level else (node.module or "").split(".")[0]
                used.add(top)
            elif isinstance(node, ast.Import):
                used |= {a.name.split(".")[0] for a in node.names}
        out[path.name] = used & {"unit", "system", "kernel", "vm"} - {folder}
    return out


@pytest.mark.parametrize(("folder", "may"),
                         [("unit", set()), ("system", {"unit"}), ("kernel", {"unit", "system", "vm"})])
def test_test_folders_import_only_below_them(folder: str, may: set[str]) -> None:
    """tests/unit stands alone; tests/system may use unit's helpers; tests/kernel may use both's and tests/vm's
    feature probes (the `needs` marker's registry)."""
    assert {f: sorted(u - may) for f, u in _test_imports(folder).items() if u - may} == {}


def test_every_package_folder_says_what_it_holds() -> None:
    folders = [os.path.join(REPO, "nslab"), *(d for d, _, files in os.walk(os.path.join(REPO, "nslab"))
                                              if "__init__.py" in files),
               *(os.path.join(TESTS, f) for f in ("unit", "system", "kernel", "vm"))]
    missing = []
    for d in sorted(set(folders)):
        if "__pycache__" in d:
            continue
        init = os.path.join(d, "__init__.py")
        doc = ast.get_docstring(ast.parse(Path(init).read_text(encoding="utf-8"))) if os.path.exists(init) else None
        if not doc or not doc.splitlines()[0].strip():
            missing.append(os.path.relpath(d, REPO))
    assert missing == [], f"package folders without a docstring in __init__.py: {missing}"
    assert len(folders) >= 8


def test_the_vm_slice_names_tests_that_exist() -> None:
    """pyproject's nslab_vm_slice (docs/vm-tier.md) names files and test functions by path: after a move, an
    entry naming nothing would silently drop its tests from the guest."""
    import tomllib

    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        entries = tomllib.load(f)["tool"]["pytest"]["ini_options"]["nslab_vm_slice"]
    assert entries
    stale = []
    for entry in entries:
        path, _, func = entry.partition("::")
        full = os.path.join(REPO, path)
        if not os.path.exists(full):
            stale.append(entry)
        elif func:
            tree = ast.parse(Path(full).read_text(encoding="utf-8"))
            if func.split("[")[0] not in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}:
                stale.append(entry)
    assert stale == []
