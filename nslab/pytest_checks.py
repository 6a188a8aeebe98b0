"""pytest collects the `checks:` of topology files named `*.lab.yaml` (or `.lab.yml`) as test items.

For each such file the lab comes up once, under a fresh name (so parallel runs and a lab already up
from the same file never collide), before its first check, and goes down after its last, also when a
check fails or the run is interrupted. Each check is one item, reported with the file and line.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .checks import CheckResult, run_check
from .errors import NslabError, PermissionDenied, lab_privilege_problem
from .lab.lab import Lab
from .lab.loader import load_file
from .lab.model import Check
from .lab.spec import Topology


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.name.endswith((".lab.yaml", ".lab.yml")):
        return LabFile.from_parent(parent, path=file_path)
    return None


class CheckFailed(Exception):
    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.line())
        self.result = result


class LabFile(pytest.File):
    topology: Topology | None = None
    lab: Lab | None = None

    def collect(self) -> Iterator[pytest.Item]:
        try:
            self.topology = load_file(self.path)
        except NslabError as exc:
            raise self.CollectError(f"nslab: {exc}") from None
        for i, check in enumerate(self.topology.checks):
            line = check.lines.get("", 0)
            yield CheckItem.from_parent(self, name=f"{check.title()} [line {line}]", check=check, index=i)

    def setup(self) -> None:
        assert self.topology is not None
        reason = lab_privilege_problem()
        if reason is not None:  # every check of the file is skipped, with the reason
            pytest.skip(reason)
        # A fresh lab name: 't' + 6 hex digits fits the 12-character limit and never collides.
        self.topology.name = "t" + secrets.token_hex(3)
        self.lab = Lab(self.topology, str(self.path))
        try:
            self.lab.up()
        except (PermissionDenied, PermissionError) as exc:
            self._down_quietly()
            pytest.skip(f"nslab: cannot bring up {self.path.name} here: {exc}")
        except NslabError as exc:
            self.lab.down()
            pytest.fail(f"nslab: cannot bring up {self.path.name}: {exc}", pytrace=False)

    def _down_quietly(self) -> None:
        if self.lab is not None:
            with contextlib.suppress(NslabError, OSError):
                self.lab.down()
            self.lab = None

    def teardown(self) -> None:
        if self.lab is not None:
            self.lab.down()
            self.lab = None


class CheckItem(pytest.Item):
    def __init__(self, *, check: Check, index: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.index = index

    def runtest(self) -> None:
        parent = self.parent
        assert isinstance(parent, LabFile) and parent.lab is not None
        result = run_check(parent.lab, self.check)
        if not result.ok:
            raise CheckFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CheckFailed):
            return f"{self.path.name}:{self.check.lines.get('', 0)}: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, max(0, self.check.lines.get("", 1) - 1), self.name
