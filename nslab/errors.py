"""Errors nslab raises; each carries the exit status the CLI maps it to.

DESIGN.md §3: 0 done, 1 the operation failed or the target was unreachable, 2 bad input.
Every message names the thing that is wrong; `hint` says how to fix it.
"""

from __future__ import annotations

import re

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

    def __init__(self, message: str, hint: str | None = None) -> None:
        message = clip(message)
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
