"""`lab list` of a lab whose supervisor was killed says "degraded"; `lab status` of a lab whose `up` was cut
off (recorded "creating") says to run `nslab lab down NAME`."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from conftest import ROOT_REASON, is_root, lab_name, nslab_subprocess

from nslab.lab import client
from nslab.lab import nodeview as nv
from nslab.lab import state as st
from nslab.lab.lab import Lab

from .lab_leaks import leftovers

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]


def _row(name: str) -> list[str]:
    out = nslab_subprocess(["lab", "list"], timeout=60)
    assert out.returncode == 0, out.stderr
    return next(line.split() for line in out.stdout.splitlines() if line.split()[:1] == [name])


def test_list_says_degraded_when_the_supervisor_is_gone(tmp_path: Path) -> None:
    name = lab_name()
    path = tmp_path / "lab.yaml"
    path.write_text(f"""\
name: {name}
nodes:
  h1:
    services:
      - {{name: x, cmd: "exec sleep 1000"}}
  h2: {{}}
links:
  - [h1, h2]
""")
    lab = Lab.from_file(path)
    try:
        lab.up()
        assert _row(name)[1] == "up"
        with client.Client.connect(name) as c:
            os.kill(c.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while _row(name)[1] != "degraded" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _row(name)[1] == "degraded"
    finally:
        lab.down()
        nv.remove_lab_dir(name)
    assert leftovers(name, [f"{name}-h1", f"{name}-h2"]) == []


def test_status_of_a_cut_off_up_says_to_run_down() -> None:
    name = lab_name()
    st.save(st.LabState(lab=name, status="creating", pid=os.getpid(), source=None,
                        created=time.time(), created_mono=time.monotonic()))
    try:
        out = nslab_subprocess(["lab", "status", name], timeout=60)
        assert out.returncode == 2, out.stdout + out.stderr
        assert f"nslab lab down {name}" in out.stderr and "'creating'" in out.stderr, out.stderr
        assert "no lab named" not in out.stderr
    finally:
        down = nslab_subprocess(["lab", "down", name], timeout=60)
        assert down.returncode == 0, down.stdout + down.stderr
    assert st.load(name) is None
