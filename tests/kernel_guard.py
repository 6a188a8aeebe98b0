"""`no_kernel()`: a block inside which nslab may parse, validate and read, but not touch the kernel or the disk.

Bad input must be refused before any kernel call. Rather than trusting a list of nslab's own entry points, a
Python audit hook (PEP 578) watches what the interpreter itself does on the guarded thread: any socket
(netlink included), name resolution (DNS), foreign call (ctypes: setns, mount), process (fork, exec, spawn,
kill), or change to the file system (open for writing, mkdir, unlink, rename...). Such an event is recorded
and refused with `KernelCall`, a BaseException, so no `except Exception` in nslab can swallow it. New threads
are refused too (the door and parked threads act for the caller), so everything stays on the guarded thread.

Reading is allowed: a lookup of a lab record or of /run/netns answers "not found" without changing anything.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

BLOCKED = {
    "socket.__new__", "socket.socketpair", "ctypes.call_function", "subprocess.Popen", "os.system", "os.exec",
    "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg", "os.mkdir", "os.remove",
    "os.rmdir", "os.rename", "os.symlink", "os.link", "os.truncate", "os.chmod", "os.chown", "os.utime",
    "shutil.rmtree", "shutil.copyfile", "shutil.move", "fcntl.ioctl", "fcntl.flock", "fcntl.lockf", "os.setxattr",
    "os.removexattr", "os.mkfifo", "os.mknod", "pty.spawn", "signal.pthread_kill",
    # name resolution may send DNS queries: the network, even before any socket of ours
    "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr",
    "socket.getnameinfo",
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class KernelCall(BaseException):
    """What the guarded code tried to do (never caught by nslab's `except Exception`)."""


_guard: dict[str, Any] = {"thread": None, "events": None}


def _writes(args: tuple[Any, ...]) -> bool:
    path, mode, flags = (*args, None, None, None)[:3]
    if isinstance(path, str | bytes) and b"__pycache__" in os.fsencode(path):
        return False  # the interpreter caching bytecode, not nslab
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    events = _guard["events"]
    if events is None or threading.get_ident() != _guard["thread"]:
        return
    if event in BLOCKED or (event == "open" and _writes(args)):
        events.append(f"{event}{repr(args)[:160]}")
        raise KernelCall(events[-1])


_installed = False


@contextmanager
def no_kernel() -> Iterator[list[str]]:
    """Yields the list of refused events (empty when the guarded code stayed pure)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)  # cannot be removed: inactive outside the block
        _installed = True
    events: list[str] = []
    start = threading.Thread.start

    def no_threads(self: threading.Thread) -> None:
        events.append(f"threading.Thread.start({self.name})")
        raise KernelCall(events[-1])

    threading.Thread.start = no_threads  # type: ignore[method-assign]
    _guard["thread"], _guard["events"] = threading.get_ident(), events
    try:
        yield events
    finally:
        _guard["thread"], _guard["events"] = None, None
        threading.Thread.start = start  # type: ignore[method-assign]


_parser: list[Any] = []
_build_parser: Any = None


def _cached_parser() -> Any:
    """The fuzzers run main() thousands of times: build argparse's tree (~35 ms) once. parse_args keeps
    nothing between calls, so the parsing is the same."""
    if not _parser:
        _parser.append(_build_parser())
    return _parser[0]


def run_cli(argv: list[str], reuse_parser: bool = False) -> tuple[int | None, str, list[str]]:
    """nslab's main(argv) under the guard: (exit status or None if it reached the kernel, stderr, events).

    stdout and stderr are captured in memory (swapped sys.stdout/sys.stderr), so pytest's capture is not
    involved and nothing is written anywhere."""
    import io
    from unittest import mock

    from nslab.cli import main as main_mod
    from nslab.cli.main import main

    if reuse_parser:
        global _build_parser
        if _build_parser is None:
            _build_parser = main_mod.build_parser
        with mock.patch.object(main_mod, "build_parser", _cached_parser):
            return run_cli(argv)

    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    rc: int | None = None
    try:
        with no_kernel() as events:
            try:
                rc = main(argv)
            except KernelCall:
                rc = None
            except SystemExit as exc:  # --help, --version: argparse exits
                rc = exc.code if isinstance(exc.code, int) else 2
    finally:
        sys.stdout, sys.stderr = old
    return rc, err.getvalue(), events
