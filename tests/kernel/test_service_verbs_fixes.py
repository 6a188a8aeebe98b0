"""`lab service ... restart` whose dependency is stopped says why; `lab logs -f` ends when the lab goes down."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import NSLAB_MAIN, REPO, ROOT_REASON, TESTS, is_root, lab_name, nslab_subprocess

from nslab.lab import nodeview as nv
from nslab.lab.lab import Lab

from .lab_leaks import leftovers

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]


def test_restart_with_a_stopped_dependency_and_logs_follow_after_down(tmp_path: Path) -> None:
    name = lab_name()
    path = tmp_path / "lab.yaml"
    path.write_text(f"""\
name: {name}
nodes:
  h1:
    services:
      - {{name: x, cmd: "echo x-up; exec sleep 1000"}}
  h2:
    services:
      - {{name: app, cmd: "echo app-up; exec sleep 1000", after: [h1/x]}}
links:
  - [h1, h2]
""")
    follow = None
    try:
        up = nslab_subprocess(["lab", "up", str(path)], timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        stop = nslab_subprocess(["lab", "service", name, "h1/x", "stop"], timeout=60)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        again = nslab_subprocess(["lab", "service", name, "h2/app", "restart"], timeout=60)
        assert again.returncode == 1, again.stdout + again.stderr
        assert "dependency h1/x is stopped" in again.stderr, again.stderr

        follow = subprocess.Popen([sys.executable, "-c", NSLAB_MAIN, REPO, TESTS, "lab", "logs", name, "h1/x", "-f"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        time.sleep(1)
        down = nslab_subprocess(["lab", "down", name], timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        out, err = follow.communicate(timeout=60)  # hung forever before
        assert follow.returncode == 0, out + err
        assert "x-up" in out and f"lab {name} is down" in err, out + err
        assert leftovers(name, [f"{name}-h1", f"{name}-h2"]) == []
    finally:
        if follow is not None and follow.poll() is None:
            follow.kill()
            follow.wait()
        Lab.from_file(path).down()
        nv.remove_lab_dir(name)
