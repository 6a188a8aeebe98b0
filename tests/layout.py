"""The test layout, enforced at collection (a pytest plugin, loaded by tests/conftest.py).

- Everything under tests/kernel/ is marked `kernel`: it needs root (real namespaces and their oracles).
- A test under tests/unit/ or tests/system/ that is marked `kernel`, or that touches root-only things (a
  root-only fixture, a skip for want of root, `is_root()` in its module), is a collection error: such a test
  belongs in tests/kernel/. So `-m "not kernel"` needs no root anywhere.
- A test elsewhere (tests/vm/, or a file straight under tests/) that uses a root-only fixture or skips for want
  of root must carry the `kernel` marker, for the same reason.
- Without root, every `kernel` test is skipped with ROOT_REASON (printed with -rs).

The folders are found from the rootdir (ROOTDIR/tests/...), so tests/system/test_layout.py can run this plugin
on a made-up tree.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

ROOT_REASON = "kernel tests need root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)"
ROOTLESS = ("unit", "system")  # tests/unit: pure and fast; tests/system: no root, whole programs
KERNEL = "kernel"
# Fixtures that need root wherever they are defined; the fixtures of tests/kernel/conftest.py are added.
ROOT_FIXTURES = frozenset({"netns_factory"})


def is_root() -> bool:
    return os.geteuid() == 0


def _fixtures_defined_in(path: Path) -> set[str]:
    """Names of the @pytest.fixture functions of a conftest, read from its source (it need not be loaded)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any("fixture" in ast.unparse(d) for d in node.decorator_list):
            names.add(node.name)
    return names


def _folder_of(item: pytest.Item, tests: Path) -> str | None:
    """'unit', 'system', 'kernel'... for an item under tests/FOLDER/, else None."""
    try:
        rel = item.path.relative_to(tests)
    except ValueError:
        return None
    return rel.parts[0] if len(rel.parts) > 1 else None


def _root_needs(item: pytest.Item, root_fixtures: frozenset[str]) -> list[str]:
    """What in ITEM needs root, other than the kernel marker."""
    fixtures: list[str] = getattr(item, "fixturenames", [])  # test functions have them; other items may not
    why = [f"uses the root-only fixture {name!r}" for name in fixtures if name in root_fixtures]
    for mark in item.iter_markers("skipif"):
        if mark.kwargs.get("reason") == ROOT_REASON:
            why.append("skips without root (skipif ... ROOT_REASON)")
    module = getattr(item, "module", None)
    if module is not None and any(value is is_root for value in vars(module).values()):
        why.append("its module asks is_root()")
    return why


@pytest.hookimpl(tryfirst=True)  # before -m deselects and before the VM tier (trylast) sends tests to its guest
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(config.rootpath) / "tests"
    root_fixtures = ROOT_FIXTURES | _fixtures_defined_in(tests / KERNEL / "conftest.py")
    errors = []
    for item in items:
        folder = _folder_of(item, tests)
        if folder == KERNEL:
            item.add_marker(pytest.mark.kernel)
            continue
        needs = _root_needs(item, root_fixtures)
        marked = item.get_closest_marker("kernel") is not None
        if folder in ROOTLESS:
            if marked:
                needs.insert(0, "is marked kernel")
            errors += [f"{item.nodeid}: {why}: tests/{folder} runs without root; move it to tests/kernel/"
                       for why in needs]
        elif needs and not marked:
            errors += [f"{item.nodeid}: {why} but is not marked kernel: mark it (pytest.mark.kernel) or move it to "
                       "tests/kernel/" for why in needs]
    if errors:
        raise pytest.UsageError("the test layout (tests/layout.py):\n  " + "\n  ".join(errors))
    if not is_root():
        skip = pytest.mark.skip(reason=ROOT_REASON)
        for item in items:
            if item.get_closest_marker("kernel") is not None:
                item.add_marker(skip)
