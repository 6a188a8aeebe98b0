"""kill -9 of `nslab lab partition` / `nslab lab impair` at random moments; then `heal` / `impair --clear` must
leave no nslab rule in any node (`nft list ruleset`, `tc -j qdisc`: the oracles) and the full matrix (issue 9 §2:
the record was written after the rules, so heal said "no partitions" while nodes still dropped traffic).

One ring lab per test (conftest's `ring`); the CLI runs in a child process (as a user runs it), killed with SIGKILL.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import NSLAB_MAIN, REPO, ROOT_REASON, TESTS, is_root, nslab_subprocess

from nslab import faults as fl
from nslab.lab.lab import Lab

from .lab_oracle import converge, nslab_rules_left, plan_differences

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]
TRIALS = 6
RING_ROUTERS = 6  # conftest's ring fixture: a ring,6 lab for each test




def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", NSLAB_MAIN, REPO, TESTS, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=REPO)


def calibrate(argv: list[str], record: str) -> tuple[float, float]:
    """One whole run: (when its intent record appeared, when it ended), in seconds from its start."""
    t0 = time.perf_counter()
    p = spawn(argv)
    seen = None
    while p.poll() is None:
        if seen is None and os.path.exists(record):
            seen = time.perf_counter() - t0
        time.sleep(0.001)
    end = time.perf_counter() - t0
    assert p.returncode == 0, argv
    return (seen if seen is not None else end * 0.8), end


def kill_at(argv: list[str], delay: float, record: str | None = None) -> bool:
    """Run ARGV, SIGKILL it DELAY s after its start (or, given RECORD, after that file appeared: the intent);
    whether it had finished by then."""
    p = spawn(argv)
    if record is not None:
        while not os.path.exists(record) and p.poll() is None:
            time.sleep(0.0005)
    time.sleep(delay)
    finished = p.poll() is not None
    p.kill()
    p.wait()
    return finished


def run_ok(argv: list[str]) -> None:
    r = nslab_subprocess(argv, timeout=60)
    assert r.returncode == 0, (argv, r.stderr)


@pytest.mark.parametrize("verb", ["partition", "impair"])
def test_kill_then_undo_leaves_no_rule(ring: Lab, verb: str) -> None:
    lab = ring
    hosts = [n.name for n in lab.plan.nodes if n.kind == "host"]
    routers = [n.name for n in lab.plan.nodes if n.kind == "router"]
    if verb == "partition":
        # Hosts and routers in both groups: every node of the lab gets rules (the widest window to kill in).
        half = len(hosts) // 2
        argv = ["lab", "partition", lab.name, ",".join(hosts[:half] + routers[:half]),
                ",".join(hosts[half:] + routers[half:])]
        undo = ["lab", "heal", lab.name]
        undo_here = lambda: fl.heal(Lab.attach(lab.name))  # noqa: E731
    else:
        argv = ["lab", "impair", lab.name, "h1", "r1", "--loss", "50%", "--duplicate", "5%", "--rate", "10mbit"]
        undo = ["lab", "impair", lab.name, "h1", "r1", "--clear"]
        undo_here = lambda: fl.clear(Lab.attach(lab.name), "h1", "r1")  # noqa: E731
    record = os.path.join(fl.FAULT_DIR, f"{lab.name}.json")
    intent, whole = calibrate(argv, record)
    assert nslab_rules_left(lab.plan) != []
    run_ok(undo)
    assert nslab_rules_left(lab.plan) == []
    rng = random.Random(secrets.randbits(32))
    report = []
    for k in range(TRIALS):
        # Most kills while the kernel is being changed (after the intent appeared, spread to just past the
        # end), one before the intent.
        if k == 0:
            delay = intent * rng.uniform(0.6, 1.0)
            finished = kill_at(argv, delay)
        else:
            delay = (whole - intent) * 1.1 * (k - 1 + rng.random()) / (TRIALS - 1)
            finished = kill_at(argv, delay, record)
        partial = len(nslab_rules_left(lab.plan))
        pending = fl.load_state(lab.name).pending
        report.append(f"{'+' if k else ''}{delay:.3f}s:{partial}{'P' if pending else ''}{'(done)' if finished else ''}")
        if k % 3 == 0:
            run_ok(undo)  # the CLI, as a user runs it
        else:
            undo_here()  # the same call, without another interpreter start
        left = nslab_rules_left(lab.plan)
        assert left == [], f"after kill at {delay:.3f} s and '{' '.join(undo[:2])}': {left}"
        assert fl.faults(lab) == [] and not os.path.exists(record)
    print(f"\n{verb}: one run {whole:.3f} s, intent recorded at {intent:.3f} s; "
          "kill -9 at (delay after start / +after intent : nodes with rules, P = record pending): "
          + ", ".join(report))
    assert plan_differences(lab.plan) == []
    _, r4, r6 = converge(lab)
    assert r4.ok and r6.ok, r4.matrix_text() + r6.matrix_text()


def test_heal_after_a_cut_off_change_waits_for_its_last_nft(ring: Lab, tmp_path: Path) -> None:
    """A killed `partition` may leave its `nft -f` child running in a node: heal lets it finish before reading
    the kernel, or the rules it applies would land after the heal. Here a stand-in named nft (sleep) runs in
    a node while the record says a change was cut off."""
    lab = ring
    fake = tmp_path / "nft"
    shutil.copy("/bin/sleep", fake)
    fl.partition(lab, [["h1"], ["h2"]])
    state = fl.load_state(lab.name)
    state.pending = True
    fl.save_state(state)
    proc = lab["h3"].popen([str(fake), "0.6"], resolve=False)
    try:
        t0 = time.monotonic()
        fl.heal(lab)
        took = time.monotonic() - t0
        assert proc.poll() is not None, "heal read the kernel while a cut-off change's nft was still running"
        assert took >= 0.3, took
    finally:
        proc.kill()
        proc.wait()
    assert nslab_rules_left(lab.plan) == [] and not fl.load_state(lab.name).pending
