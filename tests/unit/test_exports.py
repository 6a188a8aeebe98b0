"""Every module path the documentation names exists, and every module of the package imports (trio's
test_exports idea; the import-cycle test is tests/unit/test_cli_imports.py).

Names are read from README.md and docs/*.md: dotted names (`nslab.lab.topology`, `nslab.testing.wait_until`),
file paths (`nslab/kernel/rtnl.py`, `nslab/lab/{model,checks}.py`) and `from nslab.X import a, b` lines. A
dotted name resolves to a module, or to an attribute of the longest module that prefixes it.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
import re
from types import ModuleType

import pytest
from conftest import REPO

DOCS = sorted([os.path.join(REPO, "README.md"), *glob.glob(os.path.join(REPO, "docs", "*.md"))])
DOTTED = re.compile(r"(?<![\w./-])nslab(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(r"(?<![\w./-])nslab/((?:[a-z_]+/)*)(?:\{([\w,]+)\}|([a-z_]+))\.py\b")
FROM = re.compile(r"^\s*from (nslab(?:\.\w+)*) import ([\w, ]+?)\s*(?:#.*)?$", re.M)


def documented() -> dict[str, list[str]]:
    """dotted name -> the documents that name it."""
    out: dict[str, list[str]] = {}
    for doc in DOCS:
        with open(doc, encoding="utf-8") as f:
            text = f.read()
        names = set(DOTTED.findall(text))
        for folder, braced, single in PATH.findall(text):
            for stem in braced.split(",") if braced else [single]:
                names.add("nslab." + (folder.replace("/", ".") + stem if stem != "__init__" else folder.rstrip("/")))
        for module, imported in FROM.findall(text):
            names |= {f"{module}.{n.strip()}" for n in imported.split(",") if n.strip()}
        for n in names:
            out.setdefault(n.rstrip("."), []).append(os.path.relpath(doc, REPO))
    return out


def resolve(dotted: str) -> object:
    """The module DOTTED, or the attribute it names under the longest importable module prefix. nslab.__main__
    runs the CLI when imported: it is found, not imported."""
    if dotted == "nslab.__main__":
        spec = importlib.util.find_spec(dotted)
        if spec is None:
            raise ModuleNotFoundError(dotted)
        return spec
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if exc.name is not None and ".".join(parts[:cut]).startswith(exc.name) and exc.name.startswith("nslab"):
                continue  # this prefix is no module: try a shorter one
            raise
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def package_modules() -> list[str]:
    """Every module of the package, from the files (nslab.__main__ runs the CLI when imported: left out)."""
    out = []
    for folder, _dirs, files in os.walk(os.path.join(REPO, "nslab")):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), REPO)[:-3].replace(os.sep, ".")
                out.append(rel.removesuffix(".__init__"))
    return sorted(m for m in out if m != "nslab.__main__")


DOCUMENTED = documented()


def test_the_documents_name_modules() -> None:
    """The reader below sees all three forms (else the test over them proves little)."""
    assert "nslab.lab.topology" in DOCUMENTED  # dotted
    assert "nslab.kernel.rtnl" in DOCUMENTED and "nslab.lab.checks" in DOCUMENTED  # a path, a braced path
    assert "nslab.testing.wait_until" in DOCUMENTED  # from ... import
    assert len(DOCUMENTED) >= 30, sorted(DOCUMENTED)


@pytest.mark.parametrize("dotted", sorted(DOCUMENTED))
def test_every_documented_name_exists(dotted: str) -> None:
    try:
        resolve(dotted)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{dotted} (named in {', '.join(DOCUMENTED[dotted])}) does not exist: {exc!r}")


def test_resolve_refuses_what_does_not_exist() -> None:
    assert isinstance(resolve("nslab.lab.view"), ModuleType)
    assert callable(resolve("nslab.testing.wait_until"))
    for bad in ("nslab.nosuch", "nslab.lab.nosuch", "nslab.testing.nosuch"):
        with pytest.raises((ImportError, AttributeError)):
            resolve(bad)


@pytest.mark.parametrize("module", package_modules())
def test_every_module_imports(module: str) -> None:
    assert isinstance(importlib.import_module(module), ModuleType)
