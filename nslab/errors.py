"""Errors nslab raises; each carries the exit status the CLI maps it to.

Exit statuses (README, "Commands"): 0 done, 1 the operation failed or the target was unreachable, 2 bad input.
Every message names the thing that is wrong; `hint` says how to fix it.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Sequence

ECHO_MAX = 300  # longest run of echoed input a message shows whole (a 255-byte name fits); longer ones elided
MESSAGE_MAX = 1000  # and a message (or hint) as a whole: one screen line or a few, never a page
_LONG_RUN = re.compile(rf"\S{{{ECHO_MAX + 1},}}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clip(text: str, limit: int = MESSAGE_MAX) -> str:
    """Shorten what a message echoes back: every run of more than ECHO_MAX non-blank characters (a name, a
    path, a number as typed) keeps its head and tail, and the whole is cut at `limit`. A 100 KB name must
    not come back as a 100 KB error; the one place every message passes is NslabError, so it is done there.
    Control characters and lone surrogates (undecodable bytes of argv) are shown escaped: one line, printable.
    """
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)
    def elide(m: re.Match[str]) -> str:
        run = m.group(0)
        head, tail = ECHO_MAX // 2, ECHO_MAX // 8
        return f"{run[:head]}...({len(run) - head - tail} more)...{run[-tail:]}"

    text = _LONG_RUN.sub(elide, text)
    if len(text) > limit:
        text = text[: limit - 24] + f"...({len(text) - limit + 24} more)"
    return text


class NslabError(Exception):
    """An operation failed (exit status 1)."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, lines: Sequence[str] = ()) -> None:
        # LINES: more lines under the message (a log's tail), each clipped to one printable line on its own,
        # so they print on real lines and still cannot smuggle control characters.
        message = clip(message) + "".join("\n" + clip(line, 300) for line in lines)
        hint = clip(hint) if hint is not None else None
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(NslabError):
    """Bad input: a name, an address, a file, a command line (exit status 2)."""

    exit_code = 2


class NotFoundError(UsageError):
    """A namespace, device or lab that the user named does not exist (bad input, exit 2)."""


class ExistsError(UsageError):
    """The user asked to create something that already exists (exit 2)."""


class PermissionDenied(NslabError):
    """The kernel refused for lack of privileges (exit 2: the fix is on the user's side)."""

    exit_code = 2


class FeatureMissing(NslabError):
    """The running kernel lacks a feature the operation needs (exit 1): never faked, never silent."""


class KernelError(NslabError):
    """The kernel refused a request (exit 1). `errno` is the kernel's error number."""

    def __init__(self, message: str, errno: int, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.errno = errno


# ---- privileges: say what the operation needs and what this process lacks ----------------------------
# Capability numbers (linux/capability.h) of those nslab needs.
CAPABILITIES = {"CAP_DAC_OVERRIDE": 1, "CAP_KILL": 5, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
                "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21}
RUN_HINT = ("nslab keeps namespaces in /run/netns and lab state in /run/nslab: it needs a writable /run "
            "(a tmpfs; in a container, e.g. --tmpfs /run)")


def effective_capabilities() -> set[str]:
    """The capabilities nslab knows by name that this process holds (CapEff of /proc/self/status)."""
    try:
        with open("/proc/self/status") as f:
            line = next((ln for ln in f if ln.startswith("CapEff:")), "CapEff: 0")
        bits = int(line.split(":", 1)[1], 16)
    except (OSError, ValueError):
        return set()
    return {name for name, n in CAPABILITIES.items() if bits >> n & 1}


def missing_capabilities(needs: Sequence[str]) -> list[str]:
    have = effective_capabilities()
    return [c for c in needs if c not in have]


def privilege_error(what: str, needs: Sequence[str]) -> PermissionDenied:
    """The kernel said EPERM/EACCES to WHAT, which needs the capabilities NEEDS: say which are missing and
    why. Only a user who is not root is told to use sudo: a root without the capability (a container,
    setpriv, capsh) would get nothing from it."""
    need = " and ".join(needs)
    missing = missing_capabilities(needs)
    uid = os.geteuid()
    if missing and uid != 0:
        return PermissionDenied(f"{what}: permission denied: it needs {need}, and nslab runs as uid {uid} "
                                "without it", "run it as root, for example with sudo")
    if missing:
        lack = " and ".join(missing)
        return PermissionDenied(
            f"{what}: permission denied: it needs {need}; this process runs as root but without {lack} "
            "(dropped, e.g. by a container runtime, setpriv or capsh)",
            f"run nslab where root keeps {need}, e.g. in a container started with "
            + " ".join(f"--cap-add {c.removeprefix('CAP_')}" for c in needs))
    return PermissionDenied(f"{what}: permission denied although this process has {need}",
                            "a security policy (AppArmor, SELinux, seccomp) or a read-only /run may forbid it")


def path_error(what: str, exc: OSError) -> PermissionDenied:
    """WHAT failed writing exc.filename (EACCES, EPERM or EROFS): name the file and what would allow it."""
    where = str(exc.filename) if exc.filename else "/run"
    if exc.errno == errno.EROFS:
        return PermissionDenied(f"{what}: {where} is on a read-only file system", RUN_HINT)
    uid = os.geteuid()
    if uid != 0:
        return PermissionDenied(f"{what}: permission denied: {where} is not writable by uid {uid}",
                                "run it as root, for example with sudo")
    if "CAP_DAC_OVERRIDE" in missing_capabilities(["CAP_DAC_OVERRIDE"]):
        return PermissionDenied(f"{what}: permission denied: {where} is not writable by this process, which "
                                "runs as root but without CAP_DAC_OVERRIDE", RUN_HINT)
    return PermissionDenied(f"{what}: permission denied writing {where} although this process is root",
                            "a security policy (AppArmor, SELinux) may forbid it; " + RUN_HINT)


def lab_privilege_problem() -> str | None:
    """Why this process cannot bring a lab up, in one line (None: nothing is missing that can be seen
    beforehand). Labs need CAP_SYS_ADMIN (namespaces, mounts), CAP_NET_ADMIN (links, addresses, routes)
    and a writable /run/netns and /run/nslab."""
    needs = ("CAP_SYS_ADMIN", "CAP_NET_ADMIN")
    missing = missing_capabilities(needs)
    uid = os.geteuid()
    if missing and uid != 0:
        return f"nslab labs need root ({' and '.join(needs)}); this process runs as uid {uid}"
    if missing:
        return f"nslab labs need {' and '.join(needs)}; this process runs as root without {' and '.join(missing)}"
    for d in ("/run/netns", "/run/nslab"):
        p = d
        while not os.path.exists(p) and p != "/":
            p = os.path.dirname(p)  # the directory that would hold it
        if not os.access(p, os.W_OK):
            return f"nslab labs need a writable {d}; {p} is not writable here"
    return None
