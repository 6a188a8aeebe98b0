"""Shared fixtures: throw-away namespaces, the `ip -j` oracle, the CLI in-process (root-only `kernel` tests:
tests/layout.py).

Namespaces made here are named `nslabt-<run>-<n>`; they are always deleted at teardown, by exact name,
killing only the processes inside them. A session check fails loudly if one of ours survives.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

pytest.register_assert_rewrite("layout")  # a plugin below, imported here first
from layout import ROOT_REASON, is_root  # noqa: E402  (the tests import both from here)

PREFIX = "nslabt-"
RUN_ID = secrets.token_hex(3)
RUN_PREFIX = f"{PREFIX}{RUN_ID}-"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")
LAB_DATA = os.path.join(TESTS, "lab")  # topology files of the tests: good/, bad/, graphs/
NETNS_DIR = "/run/netns"


# The test layout (tests/layout.py: tests/kernel is marked kernel, tests/unit and tests/system may not need
# root, kernel tests skip without root), and the VM tier (docs/vm-tier.md: markers needs(...) and vm, and one
# guest for the tests that need it).
pytest_plugins = ["layout", "vm.tier"]


def pytest_report_header(config: pytest.Config) -> str:
    if is_root():
        return f"nslab kernel tests: enabled (root); namespaces named {RUN_PREFIX}N"
    return f"nslab kernel tests: SKIPPED — {ROOT_REASON}"


# ---- namespaces ---------------------------------------------------------------------------------
def ip_netns_names() -> list[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return sorted(e["name"] for e in json.loads(out or "[]"))


def our_netns_names() -> list[str]:
    """`ip netns list`, restricted to this run's names: others' tests may add and delete theirs meanwhile."""
    return [n for n in ip_netns_names() if n.startswith(RUN_PREFIX)]


def _ours_left() -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(RUN_PREFIX))
    except FileNotFoundError:
        return []


def pids_in(namespaces: Collection[tuple[int, int]]) -> list[int]:
    """Processes whose network namespace is one of NAMESPACES, given as (st_dev, st_ino): a walk of /proc
    independent of nslab's. The caller keeps those namespaces alive (an fd, a mount) while it asks, or a
    freed inode number may be a new namespace's."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            s = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (s.st_dev, s.st_ino) in namespaces:
            out.append(int(entry))
    return out


def _pids_in(name: str) -> list[int]:
    """Processes (but this one) in the namespace mounted on /run/netns/NAME."""
    try:
        st = os.stat(os.path.join(NETNS_DIR, name))
    except FileNotFoundError:
        return []
    return [pid for pid in pids_in({(st.st_dev, st.st_ino)}) if pid != os.getpid()]


def _destroy(name: str) -> None:
    """Delete our namespace NAME: kill what runs in it, then `ip netns del NAME` (exact name only)."""
    assert name.startswith(RUN_PREFIX), name
    for pid in _pids_in(name):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    if os.path.lexists(os.path.join(NETNS_DIR, name)):
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


class NetnsFactory:
    """`factory()` creates a namespace through nslab; `factory.reserve()` only books a name (for
    namespaces a test makes another way, e.g. `ip netns add`). Both are deleted at teardown."""

    counter = 0

    def __init__(self) -> None:
        self.names: list[str] = []
        self.handles: list[Any] = []

    def reserve(self) -> str:
        NetnsFactory.counter += 1
        name = f"{RUN_PREFIX}{NetnsFactory.counter}"
        self.names.append(name)
        return name

    def __call__(self) -> Any:
        from nslab.namespace import Namespace

        ns = Namespace.create(self.reserve())
        self.handles.append(ns)
        return ns

    def cleanup(self) -> None:
        errors = []
        for ns in self.handles:
            try:
                ns.close()  # our sockets and parked threads keep a namespace alive
            except Exception as exc:
                errors.append(f"close {ns.name}: {exc!r}")
        for name in self.names:
            try:
                _destroy(name)
            except Exception as exc:
                errors.append(f"delete {name}: {exc!r}")
        if errors:
            raise RuntimeError("namespace cleanup failed: " + "; ".join(errors))


@pytest.fixture
def netns_factory() -> Iterator[NetnsFactory]:
    if not is_root():
        pytest.skip(ROOT_REASON)
    factory = NetnsFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture(scope="session", autouse=True)
def _no_namespace_left_behind() -> Iterator[None]:
    started = time.time()
    yield
    left = _ours_left()
    if left:
        pytest.fail(f"LEAK: test namespaces still exist after the session: {left}", pytrace=False)
    # Test labs are named t + this process's tag + 3 hex digits (lab_name()): their namespaces, state,
    # locks and logs must all be gone. Concurrent runs' labs carry other tags.
    lab_left = _test_lab_leftovers(started)
    if lab_left:
        pytest.fail(f"LEAK: test lab leftovers after the session: {lab_left}", pytrace=False)
    others = [n for n in (os.listdir(NETNS_DIR) if os.path.isdir(NETNS_DIR) else [])
              if n.startswith(PREFIX)]
    if others:  # another run's (concurrent, or crashed earlier): reported, never touched
        print(f"\nWARNING: {PREFIX}* namespaces of other test runs exist: {sorted(others)}", file=sys.stderr)


def _test_lab_leftovers(since: float) -> list[str]:
    """Files of test labs (t + 6 hex digits) made during this session that are still there."""
    import re

    from nslab.pytest_plugin import SESSION_TAG

    pattern = re.compile(rf"t{SESSION_TAG}[0-9a-f]{{3}}([.-].*)?$")
    found = []
    for d in (NETNS_DIR, "/run/nslab/labs", "/run/nslab/logs", "/run/nslab/faults"):
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        for e in entries:
            path = os.path.join(d, e)
            try:
                if pattern.match(e) and os.lstat(path).st_mtime >= since:
                    found.append(path)
            except OSError:
                continue
    return sorted(found)


def lab_name() -> str:
    """A fresh lab name of this test process (see _test_lab_leftovers)."""
    from nslab.pytest_plugin import unique_name

    return unique_name()


# ---- the oracle -----------------------------------------------------------------------------------
def ip(ns: str | None, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
    return res


def ipj(ns: str | None, *args: str) -> Any:
    """`ip -n NS -j ARGS`, parsed."""
    out = ip(ns, "-j", *args).stdout
    return json.loads(out) if out.strip() else []


def settled(oracle: Callable[[], Any], ours: Callable[[], Any], tries: int = 20) -> tuple[Any, Any]:
    """Read oracle, ours, oracle again until both oracle reads agree: the state did not move under us
    (counters from stray IPv6 packets, operstate set later by linkwatch)."""
    for _ in range(tries):
        before = oracle()
        mine = ours()
        after = oracle()
        if before == after:
            return before, mine
        time.sleep(0.05)
    raise AssertionError("the kernel state kept changing; cannot compare")


def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


# ---- the CLI, in-process ------------------------------------------------------------------------
@dataclass
class CliResult:
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """cli("-n", NS, "link", "show") -> CliResult (exit status, stdout, stderr) from nslab.cli.main.main."""
    from nslab.cli.main import main

    def run(*argv: str) -> CliResult:
        capsys.readouterr()
        rc = main(list(argv))
        cap = capsys.readouterr()
        return CliResult(rc, cap.out, cap.err)

    return run


# `python -c NSLAB_MAIN REPO TESTS ARGV...` runs `nslab ARGV` from this checkout, as the console script does.
NSLAB_MAIN = (
    "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import conftest; "
    "from nslab.cli.main import main; sys.exit(main(sys.argv[3:]))"
)


def nslab_subprocess(argv: Sequence[str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """`nslab ARGV` in a child process (for verbs that exec, like `ns exec`); same entry point as the CLI."""
    return subprocess.run([sys.executable, "-c", NSLAB_MAIN, REPO, TESTS, *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
