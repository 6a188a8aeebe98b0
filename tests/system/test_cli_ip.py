"""iproute2 habits in the CLI (issue 13) in a child process: -V/--version, and a quiet end on a closed pipe."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

import nslab

NSLAB = [sys.executable, "-m", "nslab"]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    for flag in ("-V", "--version"):
        res = subprocess.run([*NSLAB, flag], capture_output=True, text=True, cwd=REPO)
        assert (res.returncode, res.stdout, res.stderr) == (0, f"nslab {nslab.__version__}\n", "")
    assert nslab.__version__ == version("nslab")


def _closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run nslab with a stdout whose reader is gone before it writes (`nslab ... | head -0`)."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([*NSLAB, *argv], stdout=w, stderr=subprocess.PIPE, cwd=REPO, timeout=60)
    finally:
        os.close(w)


def test_broken_pipe_ends_quietly() -> None:
    # argparse drops a failed write of --help itself (exit 0); the flush at exit is ours (141): quiet either way
    res = _closed_pipe(["--help"])
    assert res.stderr == b"" and res.returncode in (0, 141), res
    res = _closed_pipe(["--version"])
    assert res.stderr == b"" and res.returncode in (0, 141), res


