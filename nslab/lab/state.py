"""What a lab created, recorded under /run/nslab/labs (tmpfs, like /run/netns: both vanish at reboot).

The record is written *before* the kernel objects exist (an intent log), so that `down` and `cleanup`
know every name an interrupted `up` may have made, even after kill -9.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..names import check_lab_name, is_lab_name

STATE_DIR = "/run/nslab/labs"
MARKER_PREFIX = "nslab:"


def marker(lab: str, node: str) -> str:
    """The ownership marker kept in the namespace itself, as the ifalias of its lo."""
    return f"{MARKER_PREFIX}{lab}:{node}"


def parse_marker(text: str | None) -> tuple[str, str] | None:
    if not text or not text.startswith(MARKER_PREFIX):
        return None
    parts = text[len(MARKER_PREFIX) :].split(":")
    return (parts[0], parts[1]) if len(parts) == 2 else None


@dataclass
class LabState:
    lab: str
    status: str  # "creating" | "up" | "deleting"
    pid: int  # the process doing the last change (to tell a crashed `up` from a running one)
    netns: dict[str, str] = field(default_factory=dict)  # node -> namespace name
    inodes: dict[str, list[int]] = field(default_factory=dict)  # node -> [st_dev, st_ino] of its nsfs file
    ids: dict[str, int] = field(default_factory=dict)  # node -> the namespace's id (netns.ns_id), never reused
    source: str | None = None  # topology file, if any
    topology: dict[str, Any] = field(default_factory=dict)  # the topology as data, to replan
    plan_digest: str = ""
    created: float = 0.0
    created_mono: float = 0.0  # CLOCK_MONOTONIC at `up` (one clock for every process): the timeline's offsets

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies the (already plain) topology, 0.35 s for 1000 nodes.
        return dict(self.__dict__)


def check_name(lab: str) -> str:
    """A lab name as the topology rules allow it (nslab.names); anything else never reaches a file path."""
    return check_lab_name(lab)


def _path(lab: str) -> str:
    return os.path.join(STATE_DIR, f"{check_name(lab)}.json")


def save(state: LabState) -> None:
    os.makedirs(STATE_DIR, mode=0o755, exist_ok=True)
    tmp = _path(state.lab) + ".tmp"
    try:
        # dumps, not dump: json.dump streams through the pure-Python encoder (0.38 s per save of a
        # 1000-node record), dumps uses the C one.
        with open(tmp, "w") as f:
            f.write(json.dumps(state.to_json(), separators=(",", ":")))
        os.replace(tmp, _path(state.lab))  # atomic: a reader sees the old or the new record, never half
    except BaseException:  # a Ctrl-C mid-write leaves no half file behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load(lab: str) -> LabState | None:
    try:
        with open(_path(lab)) as f:
            data = json.load(f)
        return LabState(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        return None  # a broken record: cleanup falls back to the in-kernel markers


def events_path(lab: str) -> str:
    """The lab's fault timeline (nslab.lab.events), kept next to its record and removed with it."""
    return os.path.join(STATE_DIR, f"{check_name(lab)}.events.jsonl")


def run_path(lab: str) -> str:
    """The record of the fault schedule running on the lab (nslab.lab.schedule), removed with the lab."""
    return os.path.join(STATE_DIR, f"{check_name(lab)}.schedule.json")


def remove(lab: str) -> None:
    for p in (_path(lab), _path(lab) + ".tmp", events_path(lab), events_path(lab) + ".tmp", run_path(lab),
              run_path(lab) + ".tmp"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


def drop_lock(lab: str) -> None:
    """Remove LAB's lock file if LAB has no record (a crashed `up` leaves one behind): taking the lock
    and releasing it does exactly that, safely against other processes."""
    with locked(lab):
        pass


def names(suffix: str = ".json") -> list[str]:
    """Labs that have a record (or, with suffix ".lock", a lock file) here."""
    try:
        found = [e[: -len(suffix)] for e in os.listdir(STATE_DIR) if e.endswith(suffix)]
    except FileNotFoundError:
        return []
    return sorted(n for n in found if is_lab_name(n))


def drop_stale_lock(lab: str) -> bool:
    """Remove LAB's lock file if LAB has no record and no process holds the lock; never waits.

    An `up` killed before its first namespace whose record was then lost leaves only this file. It is
    nslab's by where it is (nslab's own directory, the lock's exact name), what it is (a regular file,
    not followed through a link) and what it holds (nothing: locked() never writes to it). A lock held
    now is a live `up`'s or `down`'s: left to it. Returns whether the file was removed."""
    lock = os.path.join(STATE_DIR, f"{check_name(lab)}.lock")
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # none, or a symlink (ELOOP): not a lock nslab made
        return False
    try:
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode) or held.st_size != 0:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        # Under the lock (as in locked()): the file must still be the one we hold, and still unrecorded.
        try:
            if not os.path.samestat(held, os.lstat(lock)) or os.path.exists(_path(lab)):
                return False
            os.unlink(lock)
        except FileNotFoundError:
            return False
        return True
    finally:
        os.close(fd)


def busy(lab: str) -> bool:
    """Whether another process holds LAB's lock right now (an `up` or `down` under way)."""
    try:
        fd = os.open(os.path.join(STATE_DIR, f"{check_name(lab)}.lock"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the lock if we got it
    return False


@contextlib.contextmanager
def locked(lab: str) -> Iterator[None]:
    """Serialise changes to one lab across processes (two `up`s of one name must not interleave)."""
    os.makedirs(STATE_DIR, mode=0o755, exist_ok=True)
    lock = os.path.join(STATE_DIR, f"{check_name(lab)}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        # The holder before us may have unlinked the file we waited on: then our lock guards nothing,
        # and a newcomer could lock a new file. Hold the lock only on the file that is still there.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        # A lab with no record leaves no lock file either (refused or rolled-back `up`, `down`);
        # unlinking while holding the lock is safe with the check above.
        if not os.path.exists(_path(lab)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
        os.close(fd)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
