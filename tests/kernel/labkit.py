"""What the kernel tests of labs share (the fixtures built on it are in tests/kernel/conftest.py).

- `new_lab_name()`: the one name maker: a fresh test lab name (conftest.lab_name: t + this process's tag + 3
  hex digits), remembered in MADE for the leak check.
- `entries`, `mounted`, `ip_netns_list`, `state_files`: what is left of a lab, read without nslab (the
  /run/netns directory, /proc/self/mountinfo, `ip netns list`, the files under /run/nslab/labs).
- `held_namespaces`: the (dev, inode) of a lab's namespaces, held open while a check runs.
- `force_remove`: the last resort after `down`, by exact name, for test lab names only.
- `running(lab)`: a lab up for a `with` block, down after it.
- `LabFactory`: makes labs with fresh names and takes every one down at the end, also when a test failed.
- Recipes of labs several files share: `ring_lab`, `capture_lab`, `perf_lab`.
The /proc walk (`pids_in`) is in tests/conftest.py, with the namespace factory that uses it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from conftest import NETNS_DIR, lab_name

from nslab import faults as fl
from nslab.lab import state as st
from nslab.lab.lab import Lab, down_by_name
from nslab.services import log_dir

MADE: list[str] = []  # every lab name new_lab_name() gave in this process
TEST_LAB = re.compile(r"t[0-9a-f]{6}")


def new_lab_name() -> str:
    name = lab_name()
    MADE.append(name)
    return name


def entries(lab: str) -> list[str]:
    """Everything under /run/netns named for LAB (namespaces, and stale files that are no mount)."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(f"{lab}-"))
    except FileNotFoundError:
        return []


def mounted(lab: str) -> list[str]:
    """Mount points of LAB's namespaces, from /proc/self/mountinfo (field 5 is the mount point)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted(p for p in points if p.startswith(f"{NETNS_DIR}/{lab}-"))


def ip_netns_list(lab: str) -> list[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return sorted(e["name"] for e in json.loads(out or "[]") if e["name"].startswith(f"{lab}-"))


def state_files(lab: str, lock: bool = False) -> list[str]:
    """LAB's state record (and its .tmp); with lock=True its lock file too."""
    want = {f"{lab}.json", f"{lab}.json.tmp"} | ({f"{lab}.lock"} if lock else set())
    try:
        return sorted(f for f in os.listdir(st.STATE_DIR) if f in want)
    except FileNotFoundError:
        return []


@contextmanager
def held_namespaces(lab: str) -> Iterator[set[tuple[int, int]]]:
    """(st_dev, st_ino) of LAB's mounted namespaces, each kept alive by an fd of ours until the block ends:
    so no namespace made meanwhile (by anyone on the machine) can carry one of these numbers, and a match
    is one of LAB's, never a namespace that reused a freed inode number."""
    fds: list[int] = []
    ids = set()
    try:
        for n in entries(lab):
            path = os.path.join(NETNS_DIR, n)
            if not os.path.ismount(path):
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            fds.append(fd)
            s = os.fstat(fd)
            if os.path.ismount(path) and os.path.samestat(s, os.stat(path)):
                ids.add((s.st_dev, s.st_ino))
        yield ids
    finally:
        for fd in fds:
            os.close(fd)


def force_remove(lab: str) -> None:
    """Last resort after `down`: delete what is left of LAB by exact name (our random lab names only)."""
    assert TEST_LAB.fullmatch(lab), lab
    for n in entries(lab):
        subprocess.run(["ip", "netns", "del", n], capture_output=True)
        if os.path.lexists(os.path.join(NETNS_DIR, n)):
            os.unlink(os.path.join(NETNS_DIR, n))
    st.remove(lab)
    lock = os.path.join(st.STATE_DIR, f"{lab}.lock")
    if os.path.lexists(lock) and not st.busy(lab):
        os.unlink(lock)


def leftovers(lab: str, lock: bool = False) -> list[str]:
    """What of LAB is still there: namespaces, state record (and lock file, with lock=True), fault record,
    service logs."""
    faults = os.path.join(fl.FAULT_DIR, f"{lab}.json")
    logs = str(log_dir(lab))
    return entries(lab) + state_files(lab, lock) + [p for p in (faults, logs) if os.path.exists(p)]


@contextmanager
def running(lab: Lab) -> Iterator[Lab]:
    """LAB up for the block and down after it (its faults forgotten first), also when the block fails."""
    if lab.name not in MADE:
        MADE.append(lab.name)
    try:
        lab.up()
        yield lab
    finally:
        fl.forget(lab.name)
        lab.down()
        st.remove(lab.name)


class LabFactory:
    """Makes labs with fresh names; `close()` takes every one down as `lab down NAME` does (from the record, so
    a lab a child process brought up goes too); what is still there then is removed by exact name and
    reported."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def name(self) -> str:
        n = new_lab_name()
        self.names.append(n)
        return n

    def topo(self, kind: str, *args: int, up: bool = True) -> Lab:
        return self.add(Lab.topo(kind, *args, name=self.name()), up)

    def add(self, lab: Lab, up: bool = True) -> Lab:
        if lab.name not in self.names:
            self.names.append(lab.name)
        if up:
            lab.up()
        return lab

    def close(self) -> None:
        errors = []
        for name in self.names:
            try:
                down_by_name(name)  # what `lab down NAME` does: services, faults, namespaces, logs
            except Exception as exc:
                errors.append(f"{name}: {exc!r}")
            if leftovers(name):
                errors.append(f"{name}: left {leftovers(name)} after down")
                force_remove(name)
            st.remove(name)  # a stray lock file (see test_refused_up_leaves_no_lock_file)
        if errors:
            raise AssertionError("lab teardown: " + "; ".join(errors))


# ---- recipes several test files share ---------------------------------------------------------------------
def ring_lab(labs: LabFactory, routers: int) -> Lab:
    """`ring,N`, up."""
    return labs.topo("ring", routers)


def capture_lab(labs: LabFactory) -> Lab:
    """`single,3`, up, with the neighbours known and the IPv6 addresses settled: later captures see only the
    traffic a test makes."""
    lab = labs.topo("single", 3)
    for a, b in (("h1", "h2"), ("h1", "h3"), ("h2", "h3")):
        lab[a].run(["ping", "-c1", "-W2", b], capture_output=True, check=True)
    return lab


def perf_lab(labs: LabFactory) -> Lab:
    """`single,3`, up: h1 -> h2 is an unshaped veth path; h3's eth0 is shaped with `tc ... tbf rate 50mbit`
    (tbf exists on this kernel, netem does not), so h3 -> h2 runs at ~50 Mbit/s."""
    lab = labs.topo("single", 3)
    lab["h3"].run(["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "50mbit", "burst", "256kbit",
                   "latency", "50ms"], check=True, capture_output=True)
    for a in ("h1", "h3"):
        lab[a].run(["ping", "-c1", "-W2", "h2"], check=True, capture_output=True)
    return lab
