"""nslab.testing.wait_until, on its passing and failing paths; the lab helpers are in
tests/kernel/test_testing_helpers.py."""

from __future__ import annotations

import time

import pytest

from nslab.errors import UsageError
from nslab.testing import wait_until


# ---- wait_until (no kernel) -------------------------------------------------------------------------
def test_wait_until_returns_the_truthy_value() -> None:
    calls = iter([0, None, "", [], {"x": 1}])
    assert wait_until(lambda: next(calls), timeout=2, interval=0.01) == {"x": 1}


def test_wait_until_times_out_with_the_message() -> None:
    t0 = time.monotonic()
    with pytest.raises(AssertionError) as ei:
        wait_until(lambda: 0, timeout=0.3, interval=0.05, message="the counter to grow")
    took = time.monotonic() - t0
    assert 0.29 < took < 1.0
    msg = str(ei.value)
    assert msg.startswith("the counter to grow: not met within 0.3 s (")
    assert "tries); last value: 0" in msg


def test_wait_until_callable_message_and_assertions_inside() -> None:
    state = {"n": 0}

    def check() -> bool:
        state["n"] += 1
        assert state["n"] > 1000, f"only {state['n']}"
        return True

    with pytest.raises(AssertionError) as ei:
        wait_until(check, timeout=0.2, interval=0.05, message=lambda: f"n above 1000 (now {state['n']})")
    msg = str(ei.value)
    assert msg.startswith("n above 1000 (now ") and "; last: only " in msg
    # A passing assertion ends the wait.
    state["n"] = 5000
    assert wait_until(check, timeout=1) is True


def test_wait_until_zero_timeout_tries_once_and_other_errors_propagate() -> None:
    assert wait_until(lambda: 7, timeout=0) == 7
    with pytest.raises(AssertionError, match=r"condition: not met within 0 s \(1 tries\)"):
        wait_until(lambda: False, timeout=0)
    with pytest.raises(ZeroDivisionError):
        wait_until(lambda: 1 / 0, timeout=1)
    with pytest.raises(UsageError, match="timeout"):
        wait_until(lambda: 1, timeout=-1)
    with pytest.raises(UsageError, match="interval"):
        wait_until(lambda: 1, timeout=1, interval=0)


