"""Cleanup that a second Ctrl-C cannot cut short.

A KeyboardInterrupt raised in the middle of a `finally:` that is deleting namespaces would leave them
behind. Inside `shielded()`, SIGINT and SIGTERM wait until it ends, in two layers:
- the main thread blocks them, so the kernel holds them (nslab's own threads block them too, nslab.threads);
- a thread nslab did not start (the application's, a test runner's) may still take one, and Python would then
  run the handler in the main thread at once: while shielded, the handler only notes the signal, and it is
  raised again, to the handler that was there before, when the shield ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_active = False  # the main thread is inside shielded() (nested shields do nothing more)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    global _active
    # Only the main thread runs Python signal handlers (KeyboardInterrupt is raised nowhere else), and
    # nslab's other threads block the signals for good.
    if _active or threading.current_thread() is not threading.main_thread():
        yield
        return
    deferred: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        deferred.append(signum)

    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    old_handlers: dict[int, signal._HANDLER] = {}
    try:
        _active = True
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # may raise a signal that came before: restored below
        for sig in _SIGNALS:
            current = signal.getsignal(sig)
            if current is not None and current != signal.SIG_IGN:
                old_handlers[sig] = signal.signal(sig, note)
        yield
    finally:
        _active = False
        try:
            for held, handler in old_handlers.items():
                signal.signal(held, handler)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)  # a held signal is handled here
            for signum in dict.fromkeys(deferred):
                signal.raise_signal(signum)


def run_cleanup(fn: Callable[[], object]) -> None:
    """Run fn once to completion even if Ctrl-C comes just before the shield is up (it is then retried)
    or while it runs (held back, then raised once fn is done)."""
    done = False
    while not done:
        try:
            with shielded():
                if not done:
                    fn()
                    done = True
        except KeyboardInterrupt:
            if done:
                raise
