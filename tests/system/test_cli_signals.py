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
from pathlib import Path

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


_HOOK = """
import os, signal, sys
class _Interrupt:
    # SIGINT to this process at the moment TARGET starts being imported (a Ctrl-C at that point).
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["NSLAB_TEST_INTERRUPT_AT"]:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, _Interrupt())
"""


def test_importing_the_package_does_nothing_a_ctrl_c_could_interrupt() -> None:
    """The console script imports `nslab` before nslab's own handlers exist: it must import no module."""
    import subprocess
    import sys

    code = "import sys; before = set(sys.modules); import nslab; print(sorted(set(sys.modules) - before))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['nslab']", out


@pytest.mark.parametrize("at", ["nslab.cli.main", "argparse", "nslab.errors", "nslab.cli.lab", "nslab.lab.lab",
                                "nslab.kernel.rtnl"])
def test_ctrl_c_while_the_cli_starts_is_exit_130_without_a_traceback(tmp_path: Path,
                                                                     at: str) -> None:
    """A SIGINT while the CLI was still being imported, before its handlers exist, once ended in a
    KeyboardInterrupt traceback (exit 1). Driven at exact moments: as each of these modules is imported."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("nslab", path=os.path.dirname(sys.executable))
    assert exe, "the console script is installed next to the interpreter"
    (tmp_path / "sitecustomize.py").write_text(_HOOK)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), NSLAB_TEST_INTERRUPT_AT=at)
    r = subprocess.run([exe, "lab", "list"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 130 and r.stderr == "nslab: interrupted\n" and r.stdout == "", r
