"""Services' pure helpers: the log tail, and log removal that refuses names that are not one lab's. Services in
real lab nodes: tests/kernel/test_services.py."""

from __future__ import annotations

import os

import pytest

from nslab.errors import UsageError
from nslab.services import LOG_ROOT, log_dir, remove_logs, tail


# ---- pure helpers --------------------------------------------------------------------------------
def test_tail(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "x.log")
    assert tail(p) == ""
    with open(p, "w") as f:
        f.writelines(f"line {i}\n" for i in range(10000))
    assert tail(p, 3) == "line 9997\nline 9998\nline 9999"
    assert tail(p, 0) == ""
    assert tail(p, 20000).count("\n") == 9999
    assert LOG_ROOT == "/run/nslab/logs"
    assert str(log_dir("abc")) == "/run/nslab/logs/abc"


def test_remove_logs_refuses_paths() -> None:
    for bad in ("", "..", "a/b"):
        with pytest.raises(UsageError):
            remove_logs(bad)


