"""SIGINT, SIGTERM and SIGKILL at random moments of real `nslab` commands, then: nothing left behind.

Each trial runs one command as a subprocess (`ns add`, `ns del`, `lab up`, `lab down`, `demo`), sends it a
signal at a random moment of its run (sometimes a second one soon after: the "second Ctrl-C during the
rollback"), and then checks
- the exit status: 130 after SIGINT, 143 after SIGTERM, -9 after SIGKILL, or 0 if it had finished;
- stderr holds no traceback (one line saying "interrupted" or "terminated");
- `nslab lab down NAME` / `nslab ns del NAME` exits 0 and leaves nothing: no entry under /run/netns, no
  mount of it in /proc/self/mountinfo, no state, lock or log under /run/nslab, no process in the
  namespaces the command made; the demo removes its own namespace after SIGINT or SIGTERM.

Delays are counted from the moment the command's main() has installed its signal handlers (SIGTERM
becomes caught in /proc/PID/status): a Ctrl-C during the interpreter's own start-up, before any nslab code
runs, gets Python's default treatment, and nothing exists yet. The random seed is printed and is in every
failure message; NSLAB_INTERRUPT_SEED=N replays a run. (kill -9 during faults:
tests/kernel/test_fault_kill.py.)
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from conftest import REPO, ROOT_REASON, RUN_PREFIX, is_root, lab_name, pids_in

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]

SEED = int(os.environ.get("NSLAB_INTERRUPT_SEED") or secrets.randbits(32))
NETNS_DIR = "/run/netns"
STATE_DIR = "/run/nslab"
HOSTS = 60  # single,60: about 0.5 s of `lab up` on this machine kind
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -9}


def nslab(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nslab", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def spawn(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "nslab", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)


def handlers_installed(pid: int) -> bool:
    """Whether nslab's main() has run far enough to catch SIGTERM (Python itself leaves it default)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            caught = next(int(ln.split()[1], 16) for ln in f if ln.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(caught >> (signal.SIGTERM - 1) & 1)


@dataclass
class Trial:
    what: str
    delay: float
    sig: signal.Signals
    second: tuple[float, signal.Signals] | None = None
    rc: int = 0
    stderr: str = ""
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        extra = f" then {self.second[1].name} +{self.second[0]:.3f}s" if self.second else ""
        return f"[seed {SEED}] {self.what}: {self.sig.name} at {self.delay:.3f}s{extra} -> rc {self.rc}"


def interrupt(trial: Trial, *argv: str) -> Trial:
    """Run `nslab ARGV`, signal it as the trial says, wait for it; fills rc and stderr."""
    p = spawn(*argv)
    try:
        deadline = time.monotonic() + 30
        while not handlers_installed(p.pid) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        if p.poll() is not None:
            pytest.fail(f"{trial}: nslab {' '.join(argv)} ran without ever catching SIGTERM (it must unwind "
                        "like Ctrl-C)")
        time.sleep(trial.delay)
        if p.poll() is None:
            p.send_signal(trial.sig)
            if trial.second is not None:
                time.sleep(trial.second[0])
                if p.poll() is None:
                    p.send_signal(trial.second[1])
        _, trial.stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    trial.rc = p.returncode
    return trial


def assert_exit_sane(t: Trial) -> None:
    # Two signals held together (both sent during a shielded step) are handled in signal-number order.
    allowed = {0, EXIT[t.sig]} | ({EXIT[t.second[1]]} if t.second else set())
    assert t.rc in allowed, f"{t}: unexpected exit status\n{t.stderr}"
    assert "Traceback" not in t.stderr, f"{t}: traceback on stderr\n{t.stderr}"
    if t.rc == 130:
        assert t.stderr.rstrip().endswith("nslab: interrupted"), f"{t}\n{t.stderr}"
    if t.rc == 143:
        assert t.stderr.rstrip().endswith("nslab: terminated (SIGTERM)"), f"{t}\n{t.stderr}"


def choose(rng: random.Random, what: str, span: float) -> Trial:
    sig = rng.choice(SIGNALS)
    t = Trial(what, rng.uniform(0, span), sig)
    if sig != signal.SIGKILL and rng.random() < 0.5:  # a second, impatient signal: during the cleanup
        t.second = (rng.uniform(0, 0.15), rng.choice((signal.SIGINT, signal.SIGTERM)))
    return t


# ---- what may be left -----------------------------------------------------------------------------
def entries(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def mounts(prefix: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted(p for p in points if p.startswith(f"{NETNS_DIR}/{prefix}"))


def state_files(lab: str) -> list[str]:
    out = []
    for d in ("labs", "logs", "faults"):
        try:
            out += [f"{d}/{e}" for e in os.listdir(os.path.join(STATE_DIR, d))
                    if e == lab or e.startswith(f"{lab}.")]
        except FileNotFoundError:
            continue
    return sorted(out)


@contextlib.contextmanager
def held(prefix: str) -> Iterator[set[tuple[int, int]]]:
    """The (dev, inode) of the namespaces named PREFIX*, each held open by an fd while the block runs: a
    freed namespace's inode number is soon reused by a new one (another test's), so a check after the
    deletion is sound only while the old namespace cannot be freed."""
    fds = []
    try:
        for n in entries(prefix):
            p = os.path.join(NETNS_DIR, n)
            if os.path.ismount(p):
                try:
                    fds.append(os.open(p, os.O_RDONLY | os.O_CLOEXEC))
                except OSError:
                    continue
        yield {(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in fds}
    finally:
        for fd in fds:
            os.close(fd)




def assert_nothing_left(t: Trial, prefix: str, lab: str | None, seen: set[tuple[int, int]]) -> None:
    assert entries(prefix) == [], f"{t}: left under {NETNS_DIR}: {entries(prefix)}"
    assert mounts(prefix) == [], f"{t}: mounts left: {mounts(prefix)}"
    if lab is not None:
        assert state_files(lab) == [], f"{t}: left under {STATE_DIR}: {state_files(lab)}"
    assert pids_in(seen) == [], f"{t}: processes left in its namespaces: {pids_in(seen)}"


def sleeper_in(ns: str) -> subprocess.Popen[bytes]:
    """`sleep 60` inside namespace NS, returned once it runs there (so that no kill can miss it)."""
    p = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "60"])
    want = os.stat(os.path.join(NETNS_DIR, ns))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{p.pid}/comm") as f:
                comm = f.read().strip()
            s = os.stat(f"/proc/{p.pid}/ns/net")
        except OSError:
            comm, s = "", want
        if comm == "sleep" and (s.st_dev, s.st_ino) == (want.st_dev, want.st_ino):
            return p
        time.sleep(0.005)
    p.kill()
    raise AssertionError(f"sleep did not start in {ns}")


def assert_ended(t: Trial, p: subprocess.Popen[bytes]) -> None:
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        pytest.fail(f"{t}: a process in its namespace was left running")


# ---- fixtures -------------------------------------------------------------------------------------
class Made:
    """Names this module used; whatever a failed assertion left is removed by exact name at the end."""

    def __init__(self) -> None:
        self.labs: list[str] = []
        self.netns: list[str] = []

    def lab(self) -> str:
        self.labs.append(lab_name())
        return self.labs[-1]

    def ns(self) -> str:
        self.netns.append(f"{RUN_PREFIX}int-{secrets.token_hex(3)}")
        return self.netns[-1]

    def remove(self) -> None:
        for lab in self.labs:
            if entries(f"{lab}-") or state_files(lab):
                nslab("lab", "down", lab)
        for ns in self.netns:
            if os.path.lexists(os.path.join(NETNS_DIR, ns)):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="module")
def made() -> Iterator[Made]:
    print(f"\ninterrupt harness: seed {SEED} (replay with NSLAB_INTERRUPT_SEED={SEED})")
    m = Made()
    try:
        yield m
    finally:
        m.remove()


@pytest.fixture(scope="module")
def durations(made: Made) -> dict[str, float]:
    """How long each command runs from main() on, measured once here (delays are drawn up to 1.2x)."""

    def timed(*argv: str) -> float:
        p = spawn(*argv)
        while not handlers_installed(p.pid) and p.poll() is None:
            time.sleep(0.001)
        assert p.poll() is None, f"nslab {' '.join(argv)} ran without ever catching SIGTERM"
        t0 = time.monotonic()
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        return time.monotonic() - t0

    lab, ns = made.lab(), made.ns()
    out = {
        "lab up": timed("lab", "up", "--topo", f"single,{HOSTS}", "--name", lab),
        "lab down": timed("lab", "down", lab),
        "ns add": timed("ns", "add", ns),
        "ns del": timed("ns", "del", ns),
        "demo": timed("demo", "--name", ns),
    }
    print("command durations from main(): " + ", ".join(f"{k} {v:.2f}s" for k, v in out.items()))
    return out


def rng_for(name: str) -> random.Random:
    return random.Random(f"{SEED}-{name}")


# ---- two moments chosen on purpose: in the middle of `lab up`, where its rollback must run --------------
def _up_until_recorded(lab: str) -> subprocess.Popen[str]:
    """`lab up` of 60 hosts, returned while it creates the namespaces (its intent record exists)."""
    p = spawn("lab", "up", "--topo", f"single,{HOSTS}", "--name", lab)
    record = os.path.join(STATE_DIR, "labs", f"{lab}.json")
    deadline = time.monotonic() + 30
    while not os.path.exists(record) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    assert p.poll() is None, "lab up ended before it recorded its intent"
    return p


@pytest.mark.parametrize("signals", [
    pytest.param((signal.SIGTERM,), id="SIGTERM"),
    pytest.param((signal.SIGINT, signal.SIGINT), id="SIGINT-twice"),
    pytest.param((signal.SIGTERM, signal.SIGINT, signal.SIGTERM), id="SIGTERM-then-more"),
])
def test_signals_during_lab_up_roll_it_back(made: Made, signals: tuple[signal.Signals, ...]) -> None:
    """Signals in the middle of `lab up`: its rollback deletes every namespace it made, to the end (a second
    Ctrl-C during it once left /run/netns/LAB-hNN unmounted and undeletable), the process says so in one
    line and exits 128 + the signal; `lab down` then finds nothing to leave behind."""
    lab = made.lab()
    p = _up_until_recorded(lab)
    t = Trial(f"lab up single,{HOSTS}", 0.0, signals[0])
    try:
        for i, sig in enumerate(signals):
            if i:
                time.sleep(0.02)
            p.send_signal(sig)
        _, t.stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    t.rc = p.returncode
    # Signals pending together (sent while the main thread was in a shielded step) come lowest number first.
    assert t.rc in {EXIT[s] for s in signals}, f"{t}\n{t.stderr}"
    assert "Traceback" not in t.stderr and len(t.stderr.splitlines()) == 1, f"{t}\n{t.stderr}"
    assert entries(f"{lab}-") == [] and mounts(f"{lab}-") == [], f"{t}: the rollback left {entries(f'{lab}-')}"
    down = nslab("lab", "down", lab)  # the record, if the signal came before the rollback could start
    assert down.returncode == 0, f"{t}: {down.stderr}"
    assert_nothing_left(t, f"{lab}-", lab, set())


def test_lab_down_removes_what_an_up_cut_in_its_first_save_leaves(made: Made) -> None:
    """SIGINT inside the first write of the intent record (or kill -9 there) leaves LAB.json.tmp and the
    lock, and no record: `lab down LAB` must still remove them (seen in the random trials below)."""
    lab = made.lab()
    os.makedirs(os.path.join(STATE_DIR, "labs"), exist_ok=True)
    for suffix in (".json.tmp", ".lock"):
        with open(os.path.join(STATE_DIR, "labs", lab + suffix), "w") as f:
            f.write('{"lab": "' + lab + '", "sta' if suffix == ".json.tmp" else "")
    r = nslab("lab", "down", lab)
    assert r.returncode == 0 and "not up" in r.stdout, r
    assert state_files(lab) == []


# ---- the trials -------------------------------------------------------------------------------------
def test_lab_up_interrupted_then_down_removes_everything(made: Made, durations: dict[str, float]) -> None:
    rng = rng_for("lab up")
    for _ in range(10):
        lab = made.lab()
        t = interrupt(choose(rng, f"lab up single,{HOSTS}", durations["lab up"] * 1.2),
                      "lab", "up", "--topo", f"single,{HOSTS}", "--name", lab)
        assert_exit_sane(t)
        with held(f"{lab}-") as seen:
            down = nslab("lab", "down", lab)
            assert down.returncode == 0 and "Traceback" not in down.stderr, f"{t}: lab down failed: {down.stderr}"
            assert_nothing_left(t, f"{lab}-", lab, seen)
        print(t)


def test_lab_down_interrupted_then_down_again_removes_everything(made: Made,
                                                                  durations: dict[str, float]) -> None:
    rng = rng_for("lab down")
    for _ in range(5):
        lab = made.lab()
        up = nslab("lab", "up", "--topo", f"single,{HOSTS}", "--name", lab)
        assert up.returncode == 0, up.stderr
        sleeper = sleeper_in(f"{lab}-h1")  # down must end it
        with held(f"{lab}-") as seen:
            t = interrupt(choose(rng, "lab down", durations["lab down"] * 1.2), "lab", "down", lab)
            assert_exit_sane(t)
            down = nslab("lab", "down", lab)
            assert down.returncode == 0 and "Traceback" not in down.stderr, f"{t}: lab down failed: {down.stderr}"
            assert_ended(t, sleeper)
            assert_nothing_left(t, f"{lab}-", lab, seen)
        print(t)


def test_ns_add_and_del_interrupted_then_del_removes_everything(made: Made, durations: dict[str, float]) -> None:
    rng = rng_for("ns")
    for i in range(16):
        ns = made.ns()
        sleeper = None
        if i % 2 == 0:
            t = interrupt(choose(rng, "ns add", durations["ns add"] * 1.2), "ns", "add", ns)
        else:
            add = nslab("ns", "add", ns)
            assert add.returncode == 0, add.stderr
            sleeper = sleeper_in(ns)  # del has a process to end first
            t = interrupt(choose(rng, "ns del", durations["ns del"] * 1.2), "ns", "del", ns)
        assert_exit_sane(t)
        with held(ns) as seen:
            if os.path.lexists(os.path.join(NETNS_DIR, ns)):
                r = nslab("ns", "del", ns)
                assert r.returncode == 0 and "Traceback" not in r.stderr, f"{t}: ns del failed: {r.stderr}"
            if sleeper is not None:
                assert_ended(t, sleeper)
            assert_nothing_left(t, ns, None, seen)
        print(t)


def test_demo_interrupted_cleans_up_after_itself(made: Made, durations: dict[str, float]) -> None:
    rng = rng_for("demo")
    for _ in range(6):
        ns = made.ns()
        t = interrupt(choose(rng, "demo", durations["demo"] * 1.2), "demo", "--name", ns)
        assert_exit_sane(t)
        with held(ns) as seen:
            if t.sig != signal.SIGKILL:  # the demo's promise: it removes what it made, also on Ctrl-C and SIGTERM
                assert not os.path.lexists(os.path.join(NETNS_DIR, ns)), f"{t}: the demo left its namespace"
            elif os.path.lexists(os.path.join(NETNS_DIR, ns)):
                r = nslab("ns", "del", ns)
                assert r.returncode == 0 and "Traceback" not in r.stderr, f"{t}: ns del failed: {r.stderr}"
            assert_nothing_left(t, ns, None, seen)
        print(t)
