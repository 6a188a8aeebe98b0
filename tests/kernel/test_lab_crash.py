"""kill -9 of a real `nslab lab up` at random moments, then `lab down` / `lab cleanup` must leave nothing.

Each trial uses a fresh lab name (`t` + 6 hex digits). What a kill left behind is printed (run with -s to
see how the kills spread over the phases of `up`). Cleanup must also never touch a namespace without
nslab's marker, nor one whose marker names another namespace. A Ctrl-C early in `up` (or a rollback that cannot
delete a namespace) must leave every namespace that still exists in the lab's record.

Random moments find what nobody thought of; the moments that matter are also driven exactly (an `up` that
SIGKILLs itself at a given point), so that a run cannot miss them. Namespaces are told apart by an open fd
on each: an nsfs inode number is reused once its namespace is gone, never while an fd keeps it alive.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import NETNS_DIR, REPO, ROOT_REASON, CliResult, is_root, pids_in

from nslab.kernel import bulk
from nslab.lab import state as st

from .labkit import entries, force_remove, held_namespaces, ip_netns_list, mounted, new_lab_name, state_files

pytestmark = pytest.mark.kernel
if not is_root():
    print(f"test_lab_crash: skipped: {ROOT_REASON}", file=sys.stderr)
    pytestmark = [pytest.mark.kernel, pytest.mark.skip(reason=ROOT_REASON)]

LOCK_FILES_ARE_LEAKS = True  # for conftest._no_lab_left: a killed up must not leave its lock
HOSTS = 40


def nslab(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nslab", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def state_file(lab: str) -> str:
    return os.path.join(st.STATE_DIR, f"{lab}.json")


def lock_file(lab: str) -> str:
    return os.path.join(st.STATE_DIR, f"{lab}.lock")


def stale_files(lab: str) -> list[str]:
    return [n for n in entries(lab) if not os.path.ismount(os.path.join(NETNS_DIR, n))]


@pytest.fixture
def lab_names() -> Iterator[list[str]]:
    if not is_root():
        pytest.skip(ROOT_REASON)
    names: list[str] = []
    try:
        yield names
    finally:
        for n in names:
            if os.path.exists(state_file(n)):
                nslab("lab", "down", n)
            force_remove(n)


@pytest.fixture(scope="module")
def up_seconds() -> float:
    """Wall time of a whole `python -m nslab lab up --topo single,40` (interpreter start included)."""
    if not is_root():
        pytest.skip(ROOT_REASON)
    name = new_lab_name()
    t0 = time.perf_counter()
    r = nslab("lab", "up", "--topo", f"single,{HOSTS}", "--name", name)
    took = time.perf_counter() - t0
    try:
        assert r.returncode == 0, r.stderr
    finally:
        assert nslab("lab", "down", name).returncode == 0
    print(f"\nup of single,{HOSTS} in a fresh process: {took:.3f} s")
    return took


def kill_up_at(name: str, delay: float) -> tuple[int, bool]:
    """Start `lab up`, kill -9 it after DELAY s; returns (entries left, whether up had finished)."""
    p = subprocess.Popen([sys.executable, "-m", "nslab", "lab", "up", "--topo", f"single,{HOSTS}",
                          "--name", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    time.sleep(delay)
    p.kill()
    rc = p.wait()
    return len(entries(name)), rc == 0


def assert_gone(name: str, inodes: set[tuple[int, int]]) -> None:
    """Nothing of NAME is left; INODES must come from held_namespaces() and still be held."""
    assert ip_netns_list(name) == [], f"namespaces of {name} remain"
    assert mounted(name) == [], f"mounts of {name} remain under {NETNS_DIR}"
    assert pids_in(inodes) == [], f"processes remain in the namespaces of {name}"
    assert state_files(name, lock=True) == [], f"record or lock of {name} remains"


def test_kill_during_up_then_down(up_seconds: float, lab_names: list[str]) -> None:
    rng = random.Random(secrets.randbits(32))
    trials = 8
    report = []
    stale_seen = 0
    for k in range(trials):
        name = new_lab_name()
        lab_names.append(name)
        # Spread the kills from interpreter start-up to just after the end of `up`.
        delay = up_seconds * (0.5 + 0.6 * (k + rng.random()) / trials)
        left, finished = kill_up_at(name, delay)
        with held_namespaces(name) as inodes:
            sleeper = None
            if inodes:  # a process inside the half-made lab: down must kill it too
                ns = next(n for n in entries(name) if os.path.ismount(os.path.join(NETNS_DIR, n)))
                sleeper = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "60"])
                time.sleep(0.05)
            r = nslab("lab", "down", name)
            assert r.returncode == 0, r.stderr
            if sleeper is not None:
                sleeper.wait(timeout=5)
            stale = stale_files(name)
            stale_seen += len(stale)
            for s in stale:  # the known bug (see test_lab_kernel.py::..._stale_netns_file_...): count, clean
                os.unlink(os.path.join(NETNS_DIR, s))
            assert_gone(name, inodes)
        report.append(f"{delay:.3f}s:{left}{'(done)' if finished else ''}{f' stale {len(stale)}' if stale else ''}")
    print(f"\nkill -9 at (delay:entries left): {', '.join(report)}; stale files left by down: {stale_seen}")


def cleanup_after_state_lost(name: str) -> str:
    """The record of a killed `up` is deleted; then `lab cleanup NAME` must remove every marked namespace and
    the lock, keep the unmarked ones (nslab cannot tell them from someone else's), and leave no process."""
    st.remove(name)  # state lost
    marked = [n for n in entries(name) if st.parse_marker(bulk.lo_alias(n)) is not None]
    unmarked = [n for n in entries(name) if n not in marked]
    with held_namespaces(name) as inodes:
        r = nslab("lab", "cleanup", name)
        assert r.returncode == 0, r.stderr
        left = entries(name)
        assert not [n for n in left if n in marked], f"marked namespaces survived cleanup: {left}"
        assert sorted(left) == sorted(unmarked)
        assert mounted(name) == sorted(f"{NETNS_DIR}/{n}" for n in unmarked
                                       if os.path.ismount(os.path.join(NETNS_DIR, n)))
        assert state_files(name, lock=True) == [], f"cleanup {name} left {state_files(name, lock=True)}"
        if not unmarked:
            assert_gone(name, inodes)
    force_remove(name)
    return f"removed {len(marked)} marked, kept {len(unmarked)} unmarked"


def test_kill_then_state_lost_then_cleanup(up_seconds: float, lab_names: list[str]) -> None:
    """The state file is deleted after a kill at a random moment: `lab cleanup NAME` still removes every marked
    namespace, and the lock."""
    rng = random.Random(secrets.randbits(32))
    report = []
    for _ in range(3):
        name = new_lab_name()
        lab_names.append(name)
        delay = up_seconds * rng.uniform(0.5, 0.95)
        kill_up_at(name, delay)
        report.append(f"{delay:.3f}s: {cleanup_after_state_lost(name)}")
    print(f"\nstate lost after kill -9 at: {'; '.join(report)}")


# An `up` that SIGKILLs itself at one exact point: with the lab's lock held and no record yet ("locked"), with
# the intent record written and no namespace yet ("recorded"), after its Nth namespace ("namespaces").
DRIVER = r"""
import contextlib, os, signal, sys, threading
point, nth, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
from nslab.kernel import bulk
from nslab.lab import state as st

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "locked":
    real_locked = st.locked
    @contextlib.contextmanager
    def locked(lab):
        with real_locked(lab):
            die()
            yield
    st.locked = locked
elif point == "recorded":
    real_save = st.save
    def save(state):
        real_save(state)
        die()
    st.save = save
elif point == "namespaces":
    real_create, made, guard = bulk.create, [0], threading.Lock()
    def create(*a, **kw):
        r = real_create(*a, **kw)
        with guard:
            made[0] += 1
            if made[0] >= nth:
                die()
        return r
    bulk.create = create
from nslab.cli.main import main
sys.exit(main(argv))
"""

POINTS = [("locked", 0), ("recorded", 0), ("namespaces", 1), ("namespaces", HOSTS // 2)]


def kill_up_exactly(name: str, point: str, nth: int) -> None:
    p = subprocess.run([sys.executable, "-c", DRIVER, point, str(nth), "lab", "up", "--topo", f"single,{HOSTS}",
                        "--name", name], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == -signal.SIGKILL, (point, p.returncode, p.stderr)
    # It died where it was meant to, not before or after.
    assert os.path.exists(lock_file(name))
    rec = st.load(name)
    if point == "locked":
        assert rec is None and entries(name) == []
    else:
        assert rec is not None and rec.status == "creating" and len(rec.netns) == HOSTS + 1, rec
        assert (entries(name) == []) if point == "recorded" else (len(entries(name)) >= nth)


@pytest.mark.parametrize(("point", "nth"), POINTS, ids=[f"{p}{n or ''}" for p, n in POINTS])
def test_kill_at_each_point_then_state_lost_then_cleanup(point: str, nth: int, lab_names: list[str]) -> None:
    name = new_lab_name()
    lab_names.append(name)
    kill_up_exactly(name, point, nth)
    print(f"\nkilled at {point} {nth}: {cleanup_after_state_lost(name)}")


@pytest.mark.parametrize(("point", "nth"), POINTS, ids=[f"{p}{n or ''}" for p, n in POINTS])
def test_kill_at_each_point_then_down(point: str, nth: int, lab_names: list[str]) -> None:
    name = new_lab_name()
    lab_names.append(name)
    kill_up_exactly(name, point, nth)
    with held_namespaces(name) as inodes:
        r = nslab("lab", "down", name)
        assert r.returncode == 0, r.stderr
        assert_gone(name, inodes)
        assert entries(name) == []
    r = nslab("lab", "up", "--topo", "single,2", "--name", name)  # the name is free again
    assert r.returncode == 0, r.stderr
    assert nslab("lab", "down", name).returncode == 0
    assert entries(name) == [] and state_files(name, lock=True) == []


def test_cleanup_of_a_lock_held_now_leaves_it(lab_names: list[str]) -> None:
    """A lock with no record that a live process holds (an `up` before its first record) is not removed."""
    name = new_lab_name()
    lab_names.append(name)
    with st.locked(name):
        assert nslab("lab", "cleanup", name).returncode == 0
        assert os.path.exists(lock_file(name)) and st.busy(name)
        assert not st.drop_stale_lock(name)
    assert state_files(name, lock=True) == []


def test_cleanup_never_removes_unmarked_namespaces(lab_names: list[str]) -> None:
    name = new_lab_name()
    lab_names.append(name)
    plain, forged = f"{name}-h1", f"{name}-h2"
    subprocess.run(["ip", "netns", "add", plain], check=True)
    subprocess.run(["ip", "netns", "add", forged], check=True)
    try:
        # A marker that names another namespace (h1's name on h2's lo) is not ours to act on either.
        subprocess.run(["ip", "-n", forged, "link", "set", "lo", "alias", f"nslab:{name}:h1"], check=True)
        with held_namespaces(name) as before:
            assert nslab("lab", "cleanup", name).returncode == 0
            assert nslab("lab", "down", name).returncode == 0
            assert ip_netns_list(name) == sorted([plain, forged])
            # The same two namespaces (held open since before: no new one can have their numbers).
            after = {(s.st_dev, s.st_ino) for s in (os.stat(os.path.join(NETNS_DIR, n)) for n in (plain, forged))}
            assert len(before) == 2 and after == before
    finally:
        subprocess.run(["ip", "netns", "del", plain], check=True)
        subprocess.run(["ip", "netns", "del", forged], check=True)


def test_up_after_a_crash_is_refused_until_down(lab_names: list[str]) -> None:
    """A record of a crashed up (status creating, dead pid): up refuses (exit 2) and names the fix."""
    name = new_lab_name()
    lab_names.append(name)
    p = subprocess.Popen(["true"])
    p.wait()
    st.save(st.LabState(lab=name, status="creating", pid=p.pid, netns={"h1": f"{name}-h1"}))
    r = nslab("lab", "up", "--topo", "single,2", "--name", name)
    assert r.returncode == 2 and f"nslab lab down {name}" in r.stderr, r
    assert entries(name) == []
    assert nslab("lab", "down", name).returncode == 0
    assert not os.path.exists(state_file(name))
    assert nslab("lab", "up", "--topo", "single,2", "--name", name).returncode == 0
    assert nslab("lab", "down", name).returncode == 0


BIG = 150


@pytest.fixture(scope="module")
def big_up_seconds() -> float:
    """Wall time of a whole `python -m nslab lab up --topo single,150` (interpreter start included)."""
    if not is_root():
        pytest.skip(ROOT_REASON)
    name = new_lab_name()
    t0 = time.perf_counter()
    r = nslab("lab", "up", "--topo", f"single,{BIG}", "--name", name)
    took = time.perf_counter() - t0
    try:
        assert r.returncode == 0, r.stderr
    finally:
        assert nslab("lab", "down", name).returncode == 0
    return took


def test_ctrl_c_early_in_up_leaves_no_namespace_unrecorded(big_up_seconds: float, lab_names: list[str]) -> None:
    """A single Ctrl-C at a random early moment of `lab up`: whatever namespaces exist afterwards are in the
    lab's record (the record is never dropped while one may exist), and `lab down` removes them all."""
    from nslab.lab.lab import down_by_name

    rng = random.Random(secrets.randbits(32))
    trials = 5
    report = []
    for k in range(trials):
        name = new_lab_name()
        lab_names.append(name)
        p = subprocess.Popen([sys.executable, "-m", "nslab", "lab", "up", "--topo", f"single,{BIG}", "--name", name],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        # Spread from late interpreter start-up into the namespace phase.
        delay = big_up_seconds * (0.45 + 0.4 * (k + rng.random()) / trials)
        time.sleep(delay)
        at_signal = len(entries(name))
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=60)
        left = set(entries(name))
        rec = st.load(name)
        recorded = set(rec.netns.values()) if rec is not None else set()
        assert left <= recorded, f"Ctrl-C at {delay:.3f} s: {len(left - recorded)} namespaces with no record"
        with held_namespaces(name) as inodes:
            down_by_name(name)  # what `lab down` does, without another interpreter start
            assert_gone(name, inodes)
        report.append(f"{delay:.3f}s:{at_signal}:rc{rc}:{len(left)}{'+rec' if rec else ''}")
    print(f"\nCtrl-C in up of single,{BIG} at (delay:namespaces then:exit status:namespaces left): "
          f"{', '.join(report)}")


def test_a_rollback_that_cannot_delete_keeps_the_record(lab_names: list[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """An up fails and its rollback cannot delete one namespace: the record keeps that one (so `lab down`
    finds it); before, the record was removed whatever was left, and the namespace was nobody's."""
    from nslab.errors import NslabError
    from nslab.kernel import bulk
    from nslab.kernel import netns as kn
    from nslab.lab.lab import Lab

    name = new_lab_name()
    lab_names.append(name)
    lab = Lab.topo("single", 3, name=name)
    stuck = lab["h2"].netns
    real_send, real_delete = bulk.send, kn.delete

    def send(*a: object, **kw: object) -> None:
        raise NslabError("injected failure")

    def delete(ns: str) -> None:
        if ns == stuck:
            raise NslabError("injected: cannot delete")
        real_delete(ns)

    monkeypatch.setattr(bulk, "send", send)
    monkeypatch.setattr(kn, "delete", delete)
    with pytest.raises(NslabError, match="injected failure"):
        lab.up()
    monkeypatch.setattr(bulk, "send", real_send)
    monkeypatch.setattr(kn, "delete", real_delete)
    assert entries(name) == [stuck]
    rec = st.load(name)
    assert rec is not None and rec.status == "creating" and rec.netns == {"h2": stuck}
    assert nslab("lab", "list").stdout.split().count(name) == 1
    assert nslab("lab", "down", name).returncode == 0
    assert entries(name) == [] and st.load(name) is None


def test_an_interrupted_record_write_leaves_no_half_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while a lab or fault record is being written: the old record stays, no `.tmp` is left."""
    from nslab import faults as fl

    name = new_lab_name()

    def interrupted(*a: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(st.json, "dumps", interrupted)
    with pytest.raises(KeyboardInterrupt):
        st.save(st.LabState(lab=name, status="creating", pid=os.getpid()))
    monkeypatch.setattr(fl.json, "dump", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fl.save_state(fl.FaultState(name, pending=True))
    monkeypatch.undo()
    records = [state_file(name), os.path.join(fl.FAULT_DIR, f"{name}.json")]
    assert [p for r in records for p in (r, r + ".tmp") if os.path.exists(p)] == []


def test_down_of_an_unknown_lab_reads_only_its_own_names(lab_names: list[str], cli: Callable[..., CliResult],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`lab down NAME` with no record looks for NAME's marked namespaces among the names NAME-* only (a victim's
    name must be the LAB-NODE of its marker), not in every namespace of the machine; and still proves each
    one by its marker: a NAME-* namespace with no marker, or another lab's marker, is left alone."""
    name = new_lab_name()
    lab_names.append(name)
    other = new_lab_name()
    lab_names.append(other)
    ours, plain, forged, elsewhere = f"{name}-h1", f"{name}-h2", f"{name}-h3", f"{other}-h1"
    for ns in (ours, plain, forged, elsewhere):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ours, "link", "set", "lo", "alias", f"nslab:{name}:h1"], check=True)
        subprocess.run(["ip", "-n", forged, "link", "set", "lo", "alias", f"nslab:{other}:h3"], check=True)
        subprocess.run(["ip", "-n", elsewhere, "link", "set", "lo", "alias", f"nslab:{name}:h1"], check=True)
        read: list[str] = []
        real = bulk.lo_alias

        def spy(ns: str) -> str | None:
            read.append(ns)
            return real(ns)

        monkeypatch.setattr(bulk, "lo_alias", spy)
        with held_namespaces(name) as before:
            r = cli("lab", "down", name)
            assert r.rc == 0 and "state was lost; removed 1 namespaces" in r.out, r
            assert read and all(ns.startswith(f"{name}-") for ns in read), read
            assert entries(name) == [plain, forged] and entries(other) == [elsewhere]
            kept = {(s.st_dev, s.st_ino) for s in (os.stat(os.path.join(NETNS_DIR, n)) for n in (plain, forged))}
            assert kept < before  # the very same two, held open since before
        read.clear()
        assert cli("lab", "down", name).out.strip() == f"lab {name}: not up, nothing to do"
        assert entries(name) == [plain, forged] and state_files(name, lock=True) == []
    finally:
        for ns in (ours, plain, forged, elsewhere):
            if os.path.lexists(os.path.join(NETNS_DIR, ns)):
                subprocess.run(["ip", "netns", "del", ns], check=True)
