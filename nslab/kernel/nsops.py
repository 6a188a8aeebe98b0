"""The namespace syscalls of node views: setns/unshare/mount/umount/sethostname through libc, and joining a
view (net, uts, mnt, pid) from its fds. Plain system calls, kept in the kernel door so that the spawn paths
(nslab.kernel.spawn) and the lab's views (nslab.lab.nodeview, supervisor) share them."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_FS = 0x00000200
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                       data.encode() if data else None), f"mount {fstype or 'bind'} on {target}")


def umount(target: str) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


# ---- entering a view (the supervisor makes them; clients get their fds) ----------------------------------
VIEW_NS = (("net", CLONE_NEWNET), ("uts", CLONE_NEWUTS), ("mnt", CLONE_NEWNS), ("pid", CLONE_NEWPID))


def enter(fds: Mapping[str, int], thread: bool = False) -> None:
    """Join a view (net, uts, mnt, pid) from its fds. In a thread of a multi-threaded process the mount
    namespace needs a file-system context of its own first (else EINVAL). Joining pid affects children only."""
    if thread:
        unshare(CLONE_FS)
    for name, flag in VIEW_NS:
        setns(fds[name], flag)
