"""Cleanup that a second Ctrl-C cannot cut short.

A KeyboardInterrupt raised in the middle of a `finally:` that is deleting namespaces would leave them
behind. Inside `shielded()`, SIGINT and SIGTERM are held by the kernel and delivered when it ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    # Only the main thread runs Python signal handlers; elsewhere there is nothing to hold back.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


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
