"""Cleanup that a Ctrl-C cannot cut short (nslab.shield), with real signals to this process."""

from __future__ import annotations

import os
import signal

import pytest

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
