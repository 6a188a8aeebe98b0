"""Missing privileges, the reasoning without root: which capability is missing, who is told to use sudo, what a
read-only /run is called (monkeypatched uid and capabilities). Run for real (setpriv, unshare -m) in
tests/kernel/test_privilege.py."""

from __future__ import annotations

import os

import pytest

from nslab import errors


# ---- the messages, without the kernel ----------------------------------------------------------------
def _pretend(monkeypatch: pytest.MonkeyPatch, uid: int, caps: set[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    monkeypatch.setattr(errors, "effective_capabilities", lambda: caps)


def test_root_without_the_capability_is_not_told_to_use_sudo(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend(monkeypatch, 0, {"CAP_NET_ADMIN"})
    e = errors.privilege_error("cannot create namespace 'x'", ("CAP_SYS_ADMIN",))
    text = str(e)
    assert text.startswith("cannot create namespace 'x': permission denied: it needs CAP_SYS_ADMIN")
    assert "runs as root but without CAP_SYS_ADMIN" in text and "--cap-add SYS_ADMIN" in text
    assert "sudo" not in text and e.exit_code == 2


def test_a_user_is_told_to_run_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend(monkeypatch, 1000, set())
    text = str(errors.privilege_error("cannot enter namespace 'x'", ("CAP_SYS_ADMIN",)))
    assert "needs CAP_SYS_ADMIN" in text and "uid 1000" in text and "sudo" in text


def test_refused_despite_the_capability_points_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend(monkeypatch, 0, {"CAP_DAC_OVERRIDE", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"})
    text = str(errors.privilege_error("cannot create veth 'v0'", ("CAP_NET_ADMIN",)))
    assert "although this process has CAP_NET_ADMIN" in text and "sudo" not in text


def test_unwritable_and_read_only_run(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend(monkeypatch, 65534, set())
    e = errors.path_error("lab up", PermissionError(13, "Permission denied", "/run/nslab/labs/x.lock"))
    assert "/run/nslab/labs/x.lock is not writable by uid 65534" in str(e) and "sudo" in str(e)
    _pretend(monkeypatch, 0, {"CAP_DAC_OVERRIDE", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"})
    e = errors.path_error("ns add", OSError(30, "Read-only file system", "/run/netns/x"))
    assert "/run/netns/x is on a read-only file system" in str(e) and "writable /run" in str(e)
    assert "sudo" not in str(e)


def test_lab_privilege_problem_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend(monkeypatch, 65534, set())
    assert errors.lab_privilege_problem() == ("nslab labs need root (CAP_SYS_ADMIN and CAP_NET_ADMIN); "
                                       "this process runs as uid 65534")
    _pretend(monkeypatch, 0, {"CAP_NET_ADMIN"})
    problem = errors.lab_privilege_problem()
    assert problem is not None and "root without CAP_SYS_ADMIN" in problem and "sudo" not in problem


def test_effective_capabilities_reads_this_process() -> None:
    with open("/proc/self/status") as f:
        eff = next(int(ln.split()[1], 16) for ln in f if ln.startswith("CapEff:"))
    assert ("CAP_SYS_ADMIN" in errors.effective_capabilities()) == bool(eff >> 21 & 1)


