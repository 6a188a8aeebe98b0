"""The CLI's signal handling, in-process with real signals to this process (no root needed).

SIGTERM unwinds like Ctrl-C; the first signal raises, later ones are ignored; an interrupt that Python
would drop (raised inside a weakref callback or a __del__) is delivered again instead of being lost.
"""

from __future__ import annotations

import gc
import os
import signal
import time
import weakref
from collections.abc import Iterator

import pytest

from nslab.cli.main import Interrupted, _Signals


@pytest.fixture
def sigs() -> Iterator[_Signals]:
    s = _Signals()
    s.install()
    try:
        yield s
    finally:
        s.restore()


def _spin(n: int = 20) -> None:
    for _ in range(n):  # Python calls: places where a pending handler runs
        time.sleep(0.001)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_raises_with_its_number_and_later_ones_are_ignored(sigs: _Signals,
                                                                          sig: signal.Signals) -> None:
    with pytest.raises(Interrupted) as info:
        os.kill(os.getpid(), sig)
        _spin()
    assert info.value.signum == sig and isinstance(info.value, KeyboardInterrupt)
    os.kill(os.getpid(), signal.SIGINT)  # during the cleanup: ignored
    os.kill(os.getpid(), signal.SIGTERM)
    _spin()


class _Victim:
    pass


def test_an_interrupt_dropped_in_a_weakref_callback_is_delivered_again(sigs: _Signals,
                                                                        capfd: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    def callback(ref: object) -> None:
        seen.append("callback")
        os.kill(os.getpid(), signal.SIGINT)
        _spin()  # the handler raises here, inside the callback, where Python would print and drop it

    v = _Victim()
    ref = weakref.ref(v, callback)
    with pytest.raises(Interrupted):
        del v
        gc.collect()
        _spin()
        seen.append("not interrupted")
    assert seen == ["callback"] and ref() is None
    assert "Exception ignored" not in capfd.readouterr().err
