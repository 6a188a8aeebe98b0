"""`lab validate` through the real CLI in a child process, as user nobody: it must create nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import LAB_DATA, NSLAB_MAIN, REPO, TESTS, lab_name

from nslab.lab import state as st
from nslab.lab.lab import Lab

HERE = Path(LAB_DATA)
def cli(argv: list[str], timeout: float = 60, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    pre = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody and os.geteuid() == 0 \
        and shutil.which("setpriv") else []
    return subprocess.run([*pre, sys.executable, "-c", NSLAB_MAIN, REPO, TESTS, *argv], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


# ---- validate (no root, nothing created) -------------------------------------------------------------------
def _traces(name: str) -> list[str]:
    netns = [n for n in os.listdir("/run/netns") if n.startswith(f"{name}-")] if os.path.isdir("/run/netns") else []
    state = [e for e in os.listdir(st.STATE_DIR) if e.startswith(name)] if os.path.isdir(st.STATE_DIR) else []
    return netns + state


def test_validate_as_nobody_creates_nothing() -> None:
    name = lab_name()
    good = str(HERE / "good" / "campus.yaml")
    res = cli(["lab", "validate", good, "--name", name], as_nobody=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout == (f"{good}: valid: lab {name}, 8 nodes (5 hosts, 1 router, 2 switches, 1 of them implicit "
                          "LAN switch), 8 links, 20 addresses, 10 routes\n")
    res = cli(["--json", "lab", "validate", good, "--name", name], as_nobody=True)
    data = json.loads(res.stdout)
    plan = Lab.from_file(good, name).plan
    assert data == {"file": good, "valid": True, "lab": name, "nodes": 8, "kinds": {"host": 5, "router": 1,
                    "switch": 2}, "implicit_switches": 1, "links": 8, "routes": len(plan.routes), "addresses": 20,
                    "checks": 0}
    for bad, where in (("duplicate_node.yaml", ":6: nodes.h1: duplicate key"), ("bad_cidr.yaml", ":")):
        path = str(HERE / "bad" / bad)
        res = cli(["lab", "validate", path, "--name", name], as_nobody=True)
        assert res.returncode == 2 and res.stderr.startswith(f"nslab: {path}{where}") and "hint:" in res.stderr
        res = cli(["--json", "lab", "validate", path], as_nobody=True)
        data = json.loads(res.stdout)
        assert res.returncode == 2 and data["valid"] is False and data["error"].startswith(path) and data["hint"]
    res = cli(["lab", "validate", "/nonexistent/x.yaml"], as_nobody=True)
    assert res.returncode == 2 and "x.yaml" in res.stderr
    assert _traces(name) == []


