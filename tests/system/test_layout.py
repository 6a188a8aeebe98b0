"""The test layout is enforced at collection (tests/layout.py), checked on made-up trees in child pytest runs:
a test under tests/unit or tests/system that is marked kernel or touches root-only things is a collection
error naming it; everything under tests/kernel is marked kernel (so `-m "not kernel"` leaves it out) and is
skipped without root; a root-needing test elsewhere must carry the marker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import TESTS

INI = """[pytest]
markers =
    kernel: needs root
"""
CONFTEST = '''
import pytest

pytest.register_assert_rewrite("layout")
from layout import ROOT_REASON, is_root  # as the real tests/conftest.py re-exports them

pytest_plugins = ["layout"]


@pytest.fixture
def netns_factory():
    yield None
'''
KERNEL_CONFTEST = '''
import pytest


@pytest.fixture
def lab():
    yield None
'''
# Loaded before the layout plugin's hook runs: makes the child believe it is not root.
NOT_ROOT = "import os\nos.geteuid = lambda: 65534\n"


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in {"pytest.ini": INI, "tests/conftest.py": CONFTEST, **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _pytest(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env_path = f"{TESTS}:{root}"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:nslab",
                           "-p", "no:nslab_checks", *args], cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})


def test_root_needs_outside_tests_kernel_are_collection_errors(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "tests/unit/__init__.py": "",
        "tests/unit/test_a.py": """
            import pytest

            @pytest.mark.kernel
            def test_marked():
                pass

            def test_namespaces(netns_factory):
                pass

            def test_a_lab(lab):
                pass

            def test_pure():
                assert 1 + 1 == 2
            """,
        "tests/unit/test_b.py": """
            from conftest import is_root

            def test_asks():
                assert is_root() in (True, False)
            """,
        "tests/system/__init__.py": "",
        "tests/system/test_c.py": """
            import pytest
            from conftest import ROOT_REASON

            @pytest.mark.skipif(False, reason=ROOT_REASON)
            def test_skips_for_root():
                pass
            """,
        "tests/other/test_d.py": """
            import pytest

            def test_unmarked(netns_factory):
                pass

            @pytest.mark.kernel
            def test_marked_is_fine(netns_factory):
                pass
            """,
        "tests/kernel/__init__.py": "",  # a package, as the real one: its conftest does not shadow tests/conftest.py
        "tests/kernel/conftest.py": KERNEL_CONFTEST,
    })
    res = _pytest(tmp_path, "--collect-only", "-m", "not kernel")
    out = (res.stdout + res.stderr).partition("ERROR: the test layout")[2]
    assert res.returncode == 4 and out, res.stdout + res.stderr  # a usage error, before any test runs
    for line in ("tests/unit/test_a.py::test_marked: is marked kernel",
                 "tests/unit/test_a.py::test_namespaces: uses the root-only fixture 'netns_factory'",
                 "tests/unit/test_a.py::test_a_lab: uses the root-only fixture 'lab'",
                 "tests/unit/test_b.py::test_asks: its module asks is_root()",
                 "tests/system/test_c.py::test_skips_for_root: skips without root",
                 "tests/other/test_d.py::test_unmarked: uses the root-only fixture 'netns_factory' but is not marked"):
        assert line in out, (line, out)
    assert "test_pure" not in out and "test_marked_is_fine" not in out, out


def test_tests_kernel_is_marked_kernel_and_skipped_without_root(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "tests/unit/__init__.py": "",
        "tests/unit/test_pure.py": "def test_pure():\n    assert True\n",
        "tests/kernel/__init__.py": "",
        "tests/kernel/conftest.py": KERNEL_CONFTEST,
        "tests/kernel/test_k.py": "def test_k(lab, netns_factory):\n    assert lab is None\n",
        "not_root.py": NOT_ROOT,
    })
    res = _pytest(tmp_path, "-m", "not kernel")
    assert res.returncode == 0 and "1 passed, 1 deselected" in res.stdout, res.stdout + res.stderr
    res = _pytest(tmp_path, "-m", "kernel", "-p", "not_root", "-rs")
    assert res.returncode == 0 and "1 skipped, 1 deselected" in res.stdout, res.stdout + res.stderr
    assert "kernel tests need root" in res.stdout
    res = _pytest(tmp_path, "-m", "kernel")  # as root, where the made-up kernel test just runs
    if "1 passed" not in res.stdout:
        assert "1 skipped" in res.stdout and "kernel tests need root" in _pytest(tmp_path, "-rs").stdout
