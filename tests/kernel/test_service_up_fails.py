"""`lab up` with a service that exits at once (no `ready`): exit 1, the log tail inline on real lines, and the
lab fully rolled back (no namespaces, no lab directory, no @nslab socket)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT_REASON, is_root, lab_name, nslab_subprocess

from nslab.lab import nodeview as nv
from nslab.lab.lab import Lab

from .lab_leaks import leftovers

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]


@pytest.mark.parametrize("cmd", ['"nslab-no-such-command-x"', '"echo boom-out; exit 1"'])
def test_a_service_that_exits_at_once_fails_up_and_rolls_back(tmp_path: Path, cmd: str) -> None:
    name = lab_name()
    path = tmp_path / "lab.yaml"
    path.write_text(f"""\
name: {name}
nodes:
  h1:
    services:
      - name: a
        cmd: {cmd}
  h2: {{}}
links:
  - [h1, h2]
""")
    try:
        up = nslab_subprocess(["lab", "up", str(path)], timeout=120)
        assert up.returncode == 1, up.stdout + up.stderr
        err = up.stderr
        assert "service h1/a: exited with status" in err and "before it was ready" in err, err
        assert "\\n" not in err, err  # real newlines, not escaped ones
        assert "rolled back" in err, err
        # The log's tail is inline (the log file itself went with the rollback).
        if "boom" in cmd:
            assert "boom-out" in err, err
        else:
            assert "not found" in err, err
        assert not Path(nv.log_path(name, "h1", "a")).exists()
        assert leftovers(name, [f"{name}-h1", f"{name}-h2"]) == []
        assert Lab.running().count(name) == 0
    finally:
        Lab.from_file(path).down()
        nv.remove_lab_dir(name)
