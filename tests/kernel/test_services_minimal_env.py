"""A service's output reaches its log while it runs, from a process started with a minimal environment
(`env -i PATH=...`, as cron, a CI job or the VM tier's guest start things): nothing of the developer's shell, no
PYTHONUNBUFFERED. The lab, the service and the log are made in that child; the oracle is the log file itself.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO, lab_name

pytestmark = pytest.mark.kernel

MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Runs in the minimal environment: a lab, a Python service that prints 3 lines then sleeps for a minute (a
# buffered stdout would reach the file only at exit), the log watched while it runs; everything taken down.
CHILD = r"""
import os, sys, time
from nslab.lab.lab import Lab
from nslab.services import forget, remove_logs, start
print("env", sorted(os.environ))
lab = Lab.from_topo_arg("single,2", name=sys.argv[1])
lab.up()
try:
    code = "import time\nfor i in range(3):\n    print('line', i)\n    time.sleep(0.2)\ntime.sleep(60)"
    svc = start(lab, "h1", "printer", [sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while "line 2" not in svc.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("running" if svc.running else "ended", repr(svc.log_tail()))
    svc.stop()
finally:
    forget(lab.name)
    lab.down()
    remove_logs(lab.name)
"""


def test_python_service_logs_while_running_in_a_minimal_environment() -> None:
    name = lab_name()
    res = subprocess.run(["env", "-i", f"PATH={MINIMAL_PATH}", sys.executable, "-c", CHILD, name],
                         capture_output=True, text=True, timeout=180, cwd=REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("env ['") and "PYTHONUNBUFFERED" not in lines[0], lines[0]  # the child's own env
    (last,) = [line for line in lines if line.startswith(("running ", "ended "))]
    assert last.startswith("running "), res.stdout  # seen while the service still ran, not at its exit
    for i in range(3):
        assert f"\\nline {i}" in last, res.stdout  # the repr of the log: its own lines, not the command's text
    assert not [n for n in os.listdir("/run/netns") if n.startswith(name + "-")]
