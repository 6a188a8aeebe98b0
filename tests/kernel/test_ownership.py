"""Never touch what nslab did not create: regressions for what a review found (all confirmed as root).

- a namespace re-created by someone else under a lab node's name (same inode number: the kernel reuses
  them) is neither deleted nor are its processes killed by `lab down`;
- a failed grow never deletes a user's device that took a planned interface index, nor one with the planned
  name, kind and index: only what the kernel acknowledged creating for this grow is deleted;
- `node start` and `lab down` send SIGCONT only to a recorded pid that is still the process stopped (start
  time) and still in the node's namespace;
- lab names never reach file paths unchecked (`lab down ../../x` is bad input);
- the per-lab lock is exclusive even across the unlink on release;
- a record still "creating" under the lock is an interrupted `up`, whatever its pid.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT_REASON, NetnsFactory, is_root, lab_name, nslab_subprocess

from nslab.errors import NslabError, UsageError
from nslab.lab import state as st
from nslab.lab.lab import Lab

from .labkit import LabFactory

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]


@pytest.fixture
def lab(labs: LabFactory) -> Lab:
    return labs.topo("single", 2)


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


def test_a_failed_grow_leaves_a_users_veth_with_the_planned_name_kind_and_index(
        lab: Lab, netns_factory: NetnsFactory) -> None:
    """Ownership is proven when a device is made (the kernel's ack of this grow's request), never read back
    later: the user's veth has the planned name, kind AND ifindex, and its peer lives in the user's namespace."""
    ns = lab["h1"].netns
    theirs = netns_factory.reserve()
    ip("netns", "add", theirs)
    ip("-n", ns, "link", "add", "eth1", "index", "3", "type", "veth", "peer", "name", "upeer", "netns", theirs)
    lab.add_node("h3")
    lab.add_link("h1", "h3")  # h1's new interface is planned as eth1, a veth, at index 3
    with pytest.raises(NslabError):
        lab.up()
    mine = json.loads(subprocess.run(["ip", "-n", ns, "-j", "-d", "link", "show", "eth1"], capture_output=True,
                                     text=True, check=True).stdout)[0]
    assert mine["ifindex"] == 3 and mine["linkinfo"]["info_kind"] == "veth"
    assert subprocess.run(["ip", "-n", theirs, "link", "show", "upeer"], capture_output=True).returncode == 0
    rec = st.load(lab.name)
    assert rec is not None and rec.status == "up" and "h3" not in rec.netns


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _stopped_outsider() -> subprocess.Popen[bytes]:
    """A process of the root namespace, SIGSTOPped by the test (what a reused pid could be)."""
    p = subprocess.Popen(["sleep", "60"])
    os.kill(p.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 2
    while _state(p.pid) != "T" and time.monotonic() < deadline:
        time.sleep(0.01)
    return p


def test_node_start_resumes_only_the_processes_it_stopped(lab: Lab) -> None:
    from nslab import faults as fl

    inside = lab["h1"].popen(["sleep", "60"], resolve=False)
    outside = _stopped_outsider()
    try:
        assert inside.pid in fl.node_stop(lab, "h1") and _state(inside.pid) == "T"
        start = fl.start_time(inside.pid)
        assert start is not None
        # The record as pid reuse would leave it: a pid now held by a process outside the node, and the
        # stopped process's pid with another start time.
        state = fl.load_state(lab.name)
        state.procs["h1"] = [(outside.pid, fl.start_time(outside.pid) or 0), (inside.pid, start + 1)]
        fl.save_state(state)
        fl.node_start(lab, "h1")
        assert _state(outside.pid) == "T", "SIGCONT reached a process outside the node"
        assert _state(inside.pid) == "T", "SIGCONT reached a pid whose start time differs from the record"
        # The record right: resumed.
        fl.node_stop(lab, "h1")
        fl.node_start(lab, "h1")
        assert _state(inside.pid) in ("S", "R")
    finally:
        for p in (inside, outside):
            p.kill()
            p.wait()


def test_lab_down_resumes_only_the_processes_it_stopped(lab: Lab) -> None:
    from nslab import faults as fl

    outside = _stopped_outsider()
    try:
        fl.node_stop(lab, "h2")
        state = fl.load_state(lab.name)
        state.procs["h2"] = [(outside.pid, fl.start_time(outside.pid) or 0)]
        fl.save_state(state)
        r = nslab_subprocess(["lab", "down", lab.name])
        assert r.returncode == 0, r.stderr
        assert _state(outside.pid) == "T", "lab down sent SIGCONT to a process that is not in the lab"
    finally:
        outside.kill()
        outside.wait()
