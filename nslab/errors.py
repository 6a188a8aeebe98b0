"""Errors nslab raises; each carries the exit status the CLI maps it to.

DESIGN.md §3: 0 done, 1 the operation failed or the target was unreachable, 2 bad input.
Every message names the thing that is wrong; `hint` says how to fix it.
"""

from __future__ import annotations


class NslabError(Exception):
    """An operation failed (exit status 1)."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
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
