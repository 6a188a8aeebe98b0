"""Cleanup that a Ctrl-C cannot cut short (nslab.shield), with real signals to this process."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from nslab.kernel import netns
from nslab.shield import run_cleanup, shielded


def test_signal_inside_the_shield_waits_for_its_end() -> None:
    steps = []
    with pytest.raises(KeyboardInterrupt), shielded():
        os.kill(os.getpid(), signal.SIGINT)
        steps.append("after the signal")  # still runs: the signal is held back
    assert steps == ["after the signal"]


def test_run_cleanup_finishes_then_raises_once() -> None:
    calls = []

    def clean() -> None:
        calls.append("start")
        os.kill(os.getpid(), signal.SIGINT)
        calls.append("end")

    with pytest.raises(KeyboardInterrupt):
        run_cleanup(clean)
    assert calls == ["start", "end"]  # ran to the end, exactly once


def test_run_cleanup_without_signals_just_runs() -> None:
    calls: list[int] = []
    run_cleanup(lambda: calls.append(1))
    assert calls == [1]


def _give_handlers_a_chance() -> None:
    # A signal taken by another thread trips Python's flag there; the main thread acts on it at its next
    # checks, which these calls provide (without them an old bug could hide behind scheduling).
    for _ in range(50):
        time.sleep(0.001)


def _run_cleanup_with_a_signal(sig: signal.Signals = signal.SIGINT) -> list[str]:
    calls = []

    def clean() -> None:
        calls.append("start")
        os.kill(os.getpid(), sig)  # process-directed, as from a terminal or `kill`
        _give_handlers_a_chance()
        calls.append("end")

    with pytest.raises(KeyboardInterrupt):
        run_cleanup(clean)
    return calls


def test_run_cleanup_finishes_then_raises_once_with_a_door_thread_alive() -> None:
    """The kernel gives a process-directed signal to any thread that does not block it: nslab's door
    thread (and every other thread nslab starts) blocks SIGINT/SIGTERM, so the shield holds."""
    d = netns.door()
    assert d.is_alive()
    assert _run_cleanup_with_a_signal() == ["start", "end"]


def test_run_cleanup_finishes_with_a_foreign_thread_that_takes_the_signal() -> None:
    """A thread nslab did not start (the application's) may take the signal: the shield defers it."""
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, name="not-nslab", daemon=True)
    t.start()
    try:
        assert _run_cleanup_with_a_signal() == ["start", "end"]
    finally:
        stop.set()
        t.join()


def test_sigterm_is_held_like_sigint_and_reaches_the_handler_after() -> None:
    got: list[int] = []

    def handler(signum: int, frame: object) -> None:
        got.append(signum)
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        assert _run_cleanup_with_a_signal(signal.SIGTERM) == ["start", "end"]
        assert got == [signal.SIGTERM]  # the application's own handler ran, once, after the cleanup
    finally:
        signal.signal(signal.SIGTERM, old)
        stop.set()
        t.join()


def test_shield_restores_mask_and_handlers_and_nests() -> None:
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with shielded():
        with shielded():
            assert {signal.SIGINT, signal.SIGTERM} <= signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert {signal.SIGINT, signal.SIGTERM} <= signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
    assert {s: signal.getsignal(s) for s in handlers} == handlers


def test_shield_in_a_thread_changes_nothing() -> None:
    seen: list[set[int]] = []

    def body() -> None:
        before = set(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        with shielded():
            seen.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])) ^ before)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [set()]
