"""Never touch what nslab did not create: regressions for what a review found (all confirmed as root).

- a namespace re-created by someone else under a lab node's name (same inode number: the kernel reuses
  them) is neither deleted nor are its processes killed by `lab down`;
- a failed grow never deletes a user's device that took a planned interface index;
- lab names never reach file paths unchecked (`lab down ../../x` is bad input);
- the per-lab lock is exclusive even across the unlink on release;
- a record still "creating" under the lock is an interrupted `up`, whatever its pid.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT_REASON, is_root, lab_name, nslab_subprocess

from nslab.errors import NslabError, UsageError
from nslab.lab import state as st
from nslab.lab.lab import Lab

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]


@pytest.fixture
def lab() -> Iterator[Lab]:
    lab = Lab.topo("single", 2, name=lab_name())
    lab.up()
    try:
        yield lab
    finally:
        lab.down()


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def test_a_namespace_recreated_by_someone_else_is_left_alone(lab: Lab) -> None:
    ns = lab["h1"].netns
    ip("netns", "del", ns)
    ip("netns", "add", ns)  # someone else's now, unmarked, likely with the same inode number
    sleeper = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "30"])
    try:
        r = nslab_subprocess(["lab", "down", lab.name])
        assert r.returncode == 0, r.stderr
        assert "left 1 namespaces alone" in r.stderr
        assert os.path.ismount(f"/run/netns/{ns}") and sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_a_failed_grow_leaves_a_users_device_alone(lab: Lab) -> None:
    ns = lab["h1"].netns
    ip("-n", ns, "link", "add", "usera", "type", "veth", "peer", "name", "userb")  # takes index 3 in h1
    lab.add_node("h3")
    lab.add_link("h1", "h3")  # h1's new interface was planned at index 3
    with pytest.raises(NslabError, match="ifindex 3"):
        lab.up()
    names = subprocess.run(["ip", "-n", ns, "-o", "link"], capture_output=True, text=True).stdout
    assert "usera@userb" in names and "userb@usera" in names


def test_lab_names_never_reach_paths(tmp_path: Path) -> None:
    victim = tmp_path / "victim.lock"
    victim.write_text("")
    rel = os.path.relpath(tmp_path / "victim", st.STATE_DIR)
    for bad in (rel, "bad name!", "", "x" * 40):
        r = nslab_subprocess(["lab", "down", bad])
        assert r.returncode == 2, (bad, r)
        assert "invalid lab name" in r.stderr
    assert victim.exists()


def test_the_lab_lock_is_exclusive_across_unlink() -> None:
    name = lab_name()
    inside: list[tuple[str, float, float]] = []
    a_in, a_out = threading.Event(), threading.Event()

    def holder(tag: str, hold: float, before: threading.Event | None = None) -> None:
        if before is not None:
            before.wait()
        with st.locked(name):
            t0 = time.monotonic()
            if tag == "A":
                a_in.set()
            time.sleep(hold)
            inside.append((tag, t0, time.monotonic()))
        if tag == "A":
            a_out.set()

    a = threading.Thread(target=holder, args=("A", 0.3))
    a.start()
    a_in.wait()
    b = threading.Thread(target=holder, args=("B", 0.4))  # waits on A's file, which A unlinks
    b.start()
    time.sleep(0.1)
    c = threading.Thread(target=holder, args=("C", 0.4, a_out))  # comes when A is gone
    c.start()
    for t in (a, b, c):
        t.join()
    spans = sorted((t0, t1, tag) for tag, t0, t1 in inside)
    for (_, end, first), (start, _, second) in itertools.pairwise(spans):
        assert start >= end, f"{first} and {second} were inside the lock together"
    assert not os.path.exists(os.path.join(st.STATE_DIR, f"{name}.lock"))


def test_a_creating_record_is_an_interrupted_up() -> None:
    name = lab_name()
    st.save(st.LabState(lab=name, status="creating", pid=os.getpid()))  # a live pid: ours
    try:
        with pytest.raises(UsageError, match="interrupted while coming up"):
            Lab.topo("single", 2, name=name).up()
    finally:
        st.remove(name)
        st.drop_lock(name)
