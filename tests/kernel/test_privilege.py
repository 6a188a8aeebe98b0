"""Missing privileges: the message names the operation and what is missing, never a wrong answer.

Run for real as root without capabilities (`setpriv --inh-caps=-all --bounding-set=-all`: uid 0, no
CapEff), as an unprivileged user (`setpriv --reuid=65534`: nobody), and with /run read-only (a private
mount namespace, `unshare -m`). A root that lacks a capability is never told to use sudo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import NSLAB_MAIN, REPO, ROOT_REASON, TESTS, NetnsFactory, is_root, lab_name

CAPLESS_ROOT = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
ENV = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")


def as_user(prefix: list[str], *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-c", NSLAB_MAIN, REPO, TESTS, *argv], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=ENV)


# ---- for real -------------------------------------------------------------------------------------------
@pytest.fixture
def target(netns_factory: NetnsFactory) -> Iterator[str]:
    """A namespace with a process in it (so that `ns pids` has something to find)."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    ns = netns_factory()
    proc = ns.popen(["sleep", "60"])
    ns.close()
    try:
        yield str(ns.name)
    finally:
        proc.kill()
        proc.wait()


def _commands(ns: str, lab: str) -> list[tuple[list[str], str, str]]:
    """(argv, the operation the message must start with, a capability it must name)."""
    return [
        (["ns", "add", f"{ns}-new"], "ns add", "CAP_SYS_ADMIN"),
        (["ns", "del", ns], "ns del", "CAP_"),
        (["ns", "pids", ns], "ns pids", "CAP_SYS_PTRACE"),
        (["ns", "exec", ns, "--", "true"], "ns exec", "CAP_SYS_ADMIN"),
        (["-n", ns, "link", "show"], "link show", "CAP_SYS_ADMIN"),
        (["-n", ns, "link", "add", "v0", "type", "veth", "peer", "v1"], "link add", "CAP_SYS_ADMIN"),
        (["-n", ns, "probe", "connect", "127.0.0.1", "9"], "probe connect", "CAP_SYS_ADMIN"),
        (["-n", ns, "probe", "listen", "0", "--once"], "probe listen", "CAP_SYS_ADMIN"),
        (["lab", "up", "--topo", "single,2", "--name", lab], "lab up", ""),
        (["lab", "down", lab], "lab down", ""),
    ]


@pytest.mark.kernel
def test_root_without_capabilities_gets_what_is_missing_and_no_sudo(target: str) -> None:
    lab = lab_name()
    for argv, op, cap in _commands(target, lab):
        r = as_user(CAPLESS_ROOT, *argv)
        msg = f"{argv}: rc {r.returncode}\n{r.stderr}"
        if argv[:2] == ["lab", "down"] and r.returncode == 0:
            continue  # nothing of that lab exists: nothing to refuse (checked below)
        assert r.returncode == 2 and r.stdout == "", msg
        assert r.stderr.startswith(f"nslab: {op}: "), msg
        assert cap in r.stderr and "as root but without" in r.stderr, msg
        assert "sudo" not in r.stderr and "Traceback" not in r.stderr, msg
    _assert_untouched(target, lab)


@pytest.mark.kernel
def test_unprivileged_user_gets_what_is_missing(target: str) -> None:
    lab = lab_name()
    for argv, op, cap in _commands(target, lab):
        r = as_user(NOBODY, *argv)
        msg = f"{argv}: rc {r.returncode}\n{r.stderr}"
        assert r.returncode == 2 and r.stdout == "", msg
        assert r.stderr.startswith(f"nslab: {op}: "), msg
        assert cap in r.stderr and "uid 65534" in r.stderr and "sudo" in r.stderr, msg
        assert "Traceback" not in r.stderr, msg
    _assert_untouched(target, lab)


def _assert_untouched(ns: str, lab: str) -> None:
    assert os.path.ismount(f"/run/netns/{ns}")
    assert not os.path.lexists(f"/run/netns/{ns}-new")
    assert not [e for e in os.listdir("/run/netns") if e.startswith(f"{lab}-")]
    labs = "/run/nslab/labs"
    assert not [e for e in (os.listdir(labs) if os.path.isdir(labs) else []) if e.startswith(f"{lab}.")]


@pytest.mark.kernel
def test_no_wrong_answers_when_unprivileged(target: str) -> None:
    """`ns pids` must not print an empty list, nor `probe connect` blame a firewall."""
    for who in (NOBODY, CAPLESS_ROOT):
        r = as_user(who, "--json", "ns", "pids", target)
        assert r.returncode == 2 and r.stdout == "" and "CAP_SYS_PTRACE" in r.stderr, r
        r = as_user(who, "-n", target, "probe", "connect", "127.0.0.1", "9")
        assert r.returncode == 2 and "firewall" not in r.stderr and "CAP_SYS_ADMIN" in r.stderr, r


@pytest.mark.kernel
def test_read_only_run_is_named(netns_factory: NetnsFactory) -> None:
    """/run read-only (in a private mount namespace of the child only): say so, and what nslab keeps there."""
    if not is_root() or not shutil.which("unshare"):
        pytest.skip(ROOT_REASON)
    name, lab = netns_factory.reserve(), lab_name()
    script = ("mount --bind /run /run && mount -o remount,bind,ro /run && "
              f'"$@" ns add {name}; echo "rc=$?" >&2; "$@" lab up --topo single,2 --name {lab}; echo "rc=$?" >&2')
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                        sys.executable, "-c", NSLAB_MAIN, REPO, TESTS], capture_output=True, text=True,
                       timeout=60, cwd=REPO, env=ENV)
    lines = r.stderr.splitlines()
    assert lines.count("rc=2") == 2, r.stderr
    assert f"nslab: ns add: cannot create namespace '{name}': /run/netns/{name} is on a read-only file system" \
        in r.stderr, r.stderr
    assert "nslab: lab up: " in r.stderr and "read-only file system" in r.stderr, r.stderr
    assert "needs a writable /run" in r.stderr and "Traceback" not in r.stderr and "sudo" not in r.stderr
    assert not os.path.lexists(f"/run/netns/{name}")


@pytest.mark.kernel
def test_root_without_cap_net_admin_is_named_and_lab_up_rolls_back(target: str) -> None:
    """CAP_SYS_ADMIN kept, CAP_NET_ADMIN dropped: namespaces can be made, not configured."""
    no_net_admin = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-net_admin"]
    r = as_user(no_net_admin, "-n", target, "link", "add", "v0", "type", "veth", "peer", "v1")
    assert r.returncode == 2 and r.stderr.startswith(f"nslab: link add: cannot create veth 'v0' in namespace "
                                                     f"'{target}': permission denied: it needs CAP_NET_ADMIN"), r
    assert "as root but without CAP_NET_ADMIN" in r.stderr and "sudo" not in r.stderr, r
    lab = lab_name()
    r = as_user(no_net_admin, "lab", "up", "--topo", "single,3", "--name", lab)
    assert r.returncode == 2 and r.stderr.startswith("nslab: lab up: ") and "CAP_NET_ADMIN" in r.stderr, r
    _assert_untouched(target, lab)  # what the refused up had created is gone


@pytest.mark.kernel
def test_views_of_a_running_lab_refuse_rather_than_draw_it_missing(target: str) -> None:
    """Without the privilege to enter the nodes, `lab graph` once drew every interface MISSING and every link
    down (exit 0): a false picture. It must refuse as `lab status` does; `--plan` still draws without root."""
    from nslab.lab.builtin import topo
    from nslab.lab.lab import Lab

    with Lab(topo("single", 2, name=lab_name())) as lab:
        for who in (NOBODY, CAPLESS_ROOT):
            for argv in (["lab", "graph", lab.name, "--format", "dot"], ["lab", "status", lab.name]):
                r = as_user(who, *argv)
                msg = f"{argv}: rc {r.returncode}\n{r.stdout}\n{r.stderr}"
                assert r.returncode == 2 and r.stdout == "" and "CAP_SYS_ADMIN" in r.stderr, msg
                assert "Traceback" not in r.stderr, msg
            r = as_user(who, "lab", "graph", lab.name, "--plan", "--format", "dot")
            assert r.returncode == 0 and "MISSING" not in r.stdout and '"h1"' in r.stdout, r
