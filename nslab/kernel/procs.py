"""Finding and stopping the processes of namespaces, with one walk of /proc for many namespaces."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable

from ..errors import missing_capabilities, privilege_error


def netns_inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def pids_in(inodes: Iterable[tuple[int, int]], what: str = "the namespaces") -> list[int]:
    """Processes whose network namespace is one of `inodes` (dev, ino of an nsfs file).

    Raises PermissionDenied when the namespaces of other users' processes cannot be seen (no
    CAP_SYS_PTRACE): a list that silently misses processes would be a wrong answer."""
    want = set(inodes)
    if not want:
        return []
    me = os.getpid()
    out = []
    hidden = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except PermissionError:
            hidden += 1
            continue
        except OSError:
            continue  # ended meanwhile
        if (st.st_dev, st.st_ino) in want:
            out.append(int(entry))
    # With CAP_SYS_PTRACE only a process some security policy shields (e.g. a sandbox's init) stays hidden:
    # nothing nslab could act on. Without it, other users' processes are hidden, and the answer unknown.
    if hidden and missing_capabilities(["CAP_SYS_PTRACE"]):
        raise privilege_error(f"cannot tell which processes run in {what}: the network namespace of {hidden} "
                              "processes of other users is hidden from this one", ("CAP_SYS_PTRACE",))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def terminate(pids: Iterable[int], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds (5 s: a loaded machine or a real daemon may need more than
    one to exit; a process that exits early ends the wait early). Callers pass only pids of namespaces nslab owns."""
    me = os.getpid()
    pending = [p for p in pids if p != me]
    for p in pending:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError:
            raise privilege_error(f"cannot stop process {p} (it runs in the namespace)", ("CAP_KILL",)) from None
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if alive(p)]
        if pending:
            time.sleep(0.02)
    for p in pending:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
