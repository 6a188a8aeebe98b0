"""The shared lab fixtures of the kernel tests (everything here needs root; tests/layout.py marks the folder).

- `labs` / `module_labs`: the one lab factory (labkit.LabFactory), for a test or for a module; every lab it
  made is taken down at the end, also when a test failed.
- `ring`: a fresh ring lab for one test, of `RING_ROUTERS` routers (a module may set it; 3 by default).
- `_no_lab_left`: after each module, nothing of any lab made through labkit.new_lab_name() in it may be left
  (namespaces, state record, fault record; lock files too where the module sets LOCK_FILES_ARE_LEAKS);
  leftovers are removed by exact name, and the module fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nslab.lab.lab import Lab

from .labkit import MADE, LabFactory, force_remove, leftovers, ring_lab


@pytest.fixture
def labs() -> Iterator[LabFactory]:
    factory = LabFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def module_labs() -> Iterator[LabFactory]:
    factory = LabFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def ring(request: pytest.FixtureRequest, labs: LabFactory) -> Lab:
    return ring_lab(labs, getattr(request.module, "RING_ROUTERS", 3))


@pytest.fixture(scope="module", autouse=True)
def _no_lab_left(request: pytest.FixtureRequest) -> Iterator[None]:
    before = len(MADE)
    yield
    lock = getattr(request.module, "LOCK_FILES_ARE_LEAKS", False)  # the crash tests' promise
    left = {lab: leftovers(lab, lock) for lab in MADE[before:]}
    left = {k: v for k, v in left.items() if v}
    for lab in left:
        force_remove(lab)
    assert not left, f"LEAK: namespaces or records of test labs survived: {left}"
