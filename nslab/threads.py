"""Threads that never take SIGINT or SIGTERM: every thread nslab starts comes from here.

The kernel delivers a process-directed signal to any thread that does not block it, and prefers the main
thread only while the main thread does not block it. Python runs its handlers in the main thread whichever
thread took the signal, so a thread that leaves SIGINT open turns `shielded()` (which blocks it in the main
thread) into nothing, and a Ctrl-C lands in the middle of a cleanup. A thread started here inherits the
block from its starter (the mask is set around `pthread_create`), so it holds from its first instruction,
with no window before a first act of its own.

Children inherit the mask of the thread that forks them (and keep it across exec): a thread that spawns
programs does so inside `signals_unblocked()`, or the programs could not be stopped with SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})

P = ParamSpec("P")
T = TypeVar("T")


def block_signals() -> None:
    """Block SIGINT and SIGTERM in the calling thread (an executor's initializer)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """SIGINT and SIGTERM blocked in the calling thread while the block runs (threads made inside inherit it)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, [])  # read first: the next call may raise once it changed the mask
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def signals_unblocked() -> Iterator[None]:
    """SIGINT and SIGTERM open in this (non-main) thread for the block: for forking a child, which must not
    inherit the block. A signal that lands here meanwhile is handled in the main thread as usual (and a
    shielded main thread defers it, see nslab.shield)."""
    old = signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Thread(threading.Thread):
    """A threading.Thread that runs with SIGINT and SIGTERM blocked from its first instruction."""

    def start(self) -> None:
        with held():
            super().start()


def start(target: Callable[[], object], name: str, daemon: bool = True) -> Thread:
    """Start target on a new signal-blocking thread."""
    t = Thread(target=target, name=name, daemon=daemon)
    t.start()
    return t


class Executor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose workers block SIGINT and SIGTERM: made with the mask held (workers are
    created inside submit), and the initializer blocks them again as the worker's first act."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "nslab") -> None:
        super().__init__(max_workers, thread_name_prefix, initializer=block_signals)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with held():
            return super().submit(fn, *args, **kwargs)
