"""Fault schedules on real labs: what the timeline says against what the kernel did (nft list ruleset, ip -j link,
/proc states, iputils ping, observed right after each step from the runner's own callback, so no observation
races the schedule), then the lab is its plan again (full v4+v6 matrix, `ip -j` against the plan, no nslab rule
left); SIGINT to `nslab lab run-faults` at random points (exit 130, healed); kill -9 of the runner, then
`lab heal` or `lab up` repairs and the timeline says the run was cut off; the pytest report shows the timeline
and the seed to replay.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import NSLAB_MAIN, REPO, ROOT_REASON, TESTS, is_root, lab_name, nslab_subprocess

from nslab import faults as fl
from nslab.errors import NslabError, UsageError
from nslab.lab import events as ev
from nslab.lab import state as st
from nslab.lab.lab import Lab
from nslab.lab.schedule import Action

from .lab_oracle import address, converge, nslab_rules_left, plan_differences

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]

FILE = """\
name: {name}
nodes:
  r1: {{kind: router}}
  r2: {{kind: router}}
  h1: {{}}
  h2: {{}}
  h3: {{}}
links:
  - [r1, r2]
  - [r1, h1]
  - [r2, h2]
  - [r2, h3]
faults:
  - {{at: 0.3s, partition: [[h1], [h2, h3]], for: 1.5s}}
  - {{at: 0.5s, flap: {{link: [r1, r2], period: 0.6s, count: 2}}}}
  - {{at: 2s, node-stop: h3, for: 1s}}
  - {{every: 1s, random: [partition, impair, link-down], until: 6s, for: 0.5s, nodes: [h1, h2]}}
"""


def netns(lab: Lab, node: str) -> str:
    return lab.plan.node(node).netns


def nft_tables(ns: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"], capture_output=True, text=True,
                         check=True).stdout
    return sorted(line.strip() for line in out.splitlines() if line.strip())


def link_up(ns: str, ifname: str) -> bool:
    (e,) = json.loads(subprocess.run(["ip", "-n", ns, "-j", "link", "show", "dev", ifname], capture_output=True,
                                     text=True, check=True).stdout)
    return "UP" in e["flags"]


def pings(lab: Lab, src: str, dst: str) -> bool:
    r = subprocess.run(["ip", "netns", "exec", netns(lab, src), "ping", "-n", "-q", "-c", "1", "-W", "1",
                        address(lab.plan, dst, 4)], capture_output=True)
    return r.returncode == 0


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def ring(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab.topo("ring", 3, name=lab_name())
    lab.up()
    try:
        yield lab
    finally:
        fl.forget(lab.name)
        lab.down()


@pytest.fixture
def filelab(tmp_path: Path) -> Iterator[tuple[Lab, Path]]:
    path = tmp_path / "lab.yaml"
    path.write_text(FILE.format(name=lab_name()))
    lab = Lab.from_file(path)
    lab.up()
    try:
        yield lab, path
    finally:
        fl.forget(lab.name)
        lab.down()


def v6_state(lab: Lab) -> str:
    """Every node's IPv6 addresses with their flags (tentative, dadfailed) and neighbours: why a v6 matrix fails."""
    out = []
    for n in lab.plan.nodes:
        for what in (["-6", "addr"], ["-6", "neigh"]):
            r = subprocess.run(["ip", "-n", n.netns, "-br", *what], capture_output=True, text=True)
            out.append(f"{n.name} {' '.join(what)}: {r.stdout.strip()}")
    return "\n".join(out)


def assert_plan_again(lab: Lab) -> None:
    took, r4, r6 = converge(lab, within=30.0)  # generous: IPv6 neighbour discovery on a loaded machine
    print(f"{lab.name}: the full matrix v4+v6 back {took:.2f} s after the undo")
    assert r4.ok and r6.ok, (f"after {took:.2f} s\n{r4.matrix_text()}\n{r6.matrix_text()}\nplan: "
                             f"{plan_differences(lab.plan)}\nrules: {nslab_rules_left(lab.plan)}\n{v6_state(lab)}")
    assert plan_differences(lab.plan) == []
    assert nslab_rules_left(lab.plan) == []
    assert fl.faults(lab) == []
    assert not os.path.exists(st.run_path(lab.name))


def test_the_timeline_says_what_the_kernel_did(ring: Lab) -> None:
    sleeper = ring["h3"].popen(["sleep", "60"])
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def observe(act: Action, at: float) -> None:
        """Runs in the runner's thread right after the action, before the next one: the kernel as it left it."""
        tables = {n: nft_tables(netns(ring, n)) for n in ("h1", "h2", "r1")}
        seen.append((act.step.kind, act.phase, {
            "tables": tables, "h1->h2": pings(ring, "h1", "h2"), "h2->h3": pings(ring, "h2", "h3"),
            "h3 eth0 up": link_up(netns(ring, "h3"), ring.plan.interfaces_of("h3")[0].ifname),
            "sleep": proc_state(sleeper.pid)}))

    faults = [{"at": "0.2s", "partition": [["h1"], ["h2", "h3"]], "for": "1s"},
              {"at": "1.5s", "node-stop": "h3", "for": "1s"},
              {"at": "3s", "impair": {"link": ["h1", "r1"], "dir": "h1->r1", "loss": "100%"}, "for": "1s"}]
    try:
        with ring.schedule(faults=faults, seed=11, on_action=observe) as run:
            run.wait(timeout=120)
    finally:
        sleeper.kill()
        sleeper.wait()
    got = {(k, p): o for k, p, o in seen}
    cut = got[("partition", "begin")]
    assert "table inet nslab" in cut["tables"]["h1"] and "table inet nslab" in cut["tables"]["h2"]
    assert not cut["h1->h2"] and cut["h2->h3"]  # h1 cut off from h2, h2-h3 untouched
    healed = got[("partition", "end")]
    assert all(t == [] for t in healed["tables"].values()) and healed["h1->h2"]
    stopped = got[("node-stop", "begin")]
    assert not stopped["h3 eth0 up"] and stopped["sleep"] == "T" and not stopped["h2->h3"]
    started = got[("node-stop", "end")]
    assert started["h3 eth0 up"] and started["sleep"] in ("S", "R")
    lossy = got[("impair", "begin")]
    assert "table netdev nslab" in lossy["tables"]["r1"] and not lossy["h1->h2"]
    assert got[("impair", "end")]["tables"]["r1"] == [] and got[("impair", "end")]["h1->h2"]
    assert_plan_again(ring)
    # The timeline: one event per step change, in order, by the schedule, with its run, seed, step and plan time.
    timeline = ev.read(ring.name)
    mine = [e for e in timeline if e.get("run") == run.run_id]
    assert [e["action"] for e in mine] == ["schedule-start", "partition", "heal", "node-stop", "node-start",
                                           "impair", "impair-clear", "restore", "schedule-end"]
    assert all(e["by"] == "schedule" and e["seed"] == 11 and e["result"] == "ok" for e in mine)
    assert [e.get("step") for e in mine[1:-2]] == [0, 0, 1, 1, 2, 2]
    assert [e.get("at") for e in mine[1:-2]] == [0.2, 1.2, 1.5, 2.5, 3.0, 4.0]
    offsets = [e["offset"] for e in mine]
    assert offsets == sorted(offsets) and all(o > 0 for o in offsets)
    assert mine[-1]["detail"]["how"] == "completed" and "drift" not in mine[-1]["detail"]
    assert mine[2]["nodes"] == [] and mine[1]["detail"]["groups"] == [["h1"], ["h2", "h3"]]
    assert mine[5]["links"] == [["h1", "r1"]] and mine[5]["detail"]["loss"] == "100%"


def test_a_manual_fault_is_in_the_timeline_as_the_clis_and_lab_status_shows_it(ring: Lab) -> None:
    r = nslab_subprocess(["lab", "link", ring.name, "r1", "r2", "down"])
    assert r.returncode == 0, r.stderr
    r = nslab_subprocess(["lab", "impair", ring.name, "h1", "r1", "--loss", "150%"])
    assert r.returncode == 2
    fl.link_state(ring, "r1", "r2", True)
    got = ev.read(ring.name)
    assert [(e["action"], e["by"], e["result"]) for e in got] == [("link-down", "cli", "ok"),
                                                                  ("link-up", "python", "ok")]
    status = nslab_subprocess(["lab", "status", ring.name])
    assert "last fault events (2 of 2" in status.stdout and "link-down" in status.stdout
    js = nslab_subprocess(["--json", "lab", "events", ring.name])
    assert [e["action"] for e in json.loads(js.stdout)["events"]] == ["link-down", "link-up"]
    assert_plan_again(ring)
    # -f prints what comes next, and ends when the lab goes down; down removes the timeline with the lab
    now = datetime.datetime.now(datetime.UTC).isoformat()  # nothing yet: the events before are older
    follow = spawn(["lab", "events", ring.name, "-f", "--since", now])
    wait_line(follow, "no fault events in that time")
    fl.node_stop(ring, "h2")
    fl.node_start(ring, "h2")
    (stop,) = wait_line(follow, "node-stop h2")
    (start,) = wait_line(follow, "node-start h2")
    assert "[python]" in stop and " ok" in start
    assert os.path.exists(st.events_path(ring.name))
    fl.forget(ring.name)
    ring.down()
    assert follow.wait(timeout=30) == 0
    assert not os.path.exists(st.events_path(ring.name))


def spawn(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", NSLAB_MAIN, REPO, TESTS, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)


def wait_line(p: subprocess.Popen[str], word: str, timeout: float = 60.0) -> list[str]:
    """The runner's output lines up to the first holding WORD."""
    assert p.stdout is not None
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line)
        if word in line:
            return lines
    raise AssertionError(f"no line with {word!r}: {lines}")


def test_sigint_at_random_points_heals_and_exits_130(filelab: tuple[Lab, Path]) -> None:
    lab, _ = filelab
    rng = random.Random(20261201)  # the points are random but the same every run
    for trial, sig in enumerate([signal.SIGINT, signal.SIGINT, signal.SIGTERM, signal.SIGINT]):
        p = spawn(["lab", "run-faults", lab.name, "--seed", str(trial)])
        wait_line(p, "Ctrl-C stops and heals")
        time.sleep(rng.uniform(0.0, 3.0))
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
        assert p.returncode in (128 + sig, 0), (p.returncode, err)
        assert p.returncode == 0 or "every fault it made was undone" in err, err
        assert_plan_again(lab)
        end = ev.read(lab.name)[-1]
        assert end["action"] == "schedule-end" and end["seed"] == trial
        assert end["detail"]["how"] == ("interrupted" if p.returncode else "completed")


@pytest.mark.parametrize("repair", ["heal", "up"])
def test_kill_9_of_the_runner_then_heal_or_up_repairs(filelab: tuple[Lab, Path], repair: str) -> None:
    lab, path = filelab
    p = spawn(["lab", "run-faults", lab.name, "--seed", "5"])
    wait_line(p, "start node-stop h3")  # h3 stopped, and maybe a partition and an impairment in force
    p.kill()
    p.wait()
    assert fl.faults(lab) != []  # the runner left its faults behind: the repair below is not vacuous
    runs = ev.runs(ev.read(lab.name))
    assert runs[-1]["state"] == "killed" and runs[-1]["seed"] == 5
    status = nslab_subprocess(["lab", "status", lab.name])
    assert "was cut off" in status.stdout and f"'nslab lab heal {lab.name}'" in status.stdout
    r = nslab_subprocess(["lab", "heal", lab.name] if repair == "heal" else ["lab", "up", str(path), "-q"], timeout=120)
    assert r.returncode == 0, r.stderr
    if repair == "heal":
        # what the repair undid is said (h3 was stopped by the killed run), not "there was no partition"
        assert "repaired the cut-off schedule run" in r.stdout and "node h3 stopped" in r.stdout, r.stdout
        assert "there was no partition" not in r.stdout, r.stdout
    assert_plan_again(lab)
    timeline = ev.read(lab.name)
    assert ev.runs(timeline)[-1]["state"] == "repaired"
    assert ev.notes(timeline, lab.name) == []


def test_a_schedule_refuses_a_second_one_a_link_already_down_and_a_bad_file(ring: Lab, tmp_path: Path) -> None:
    with (ring.schedule(faults=[{"at": "0s", "node-stop": "h2", "for": "3s"}], seed=1),
          pytest.raises(NslabError, match="already runs a fault schedule")):
        ring.schedule(faults=[{"at": "0s", "node-stop": "h1", "for": "1s"}]).__enter__()
    fl.link_state(ring, "r1", "r2", False)
    with pytest.raises(UsageError, match="link r1-r2 is down already"):
        ring.schedule(faults=[{"at": "0s", "flap": {"link": ["r1", "r2"]}}]).__enter__()
    fl.link_state(ring, "r1", "r2", True)
    before = ev.read(ring.name)
    bad = tmp_path / "bad.yaml"
    bad.write_text("faults:\n  - {at: 1s, node-stop: h1, for: 1s}\n  - {at: 2s, partition: [[h1], [h9]]}\n")
    r = nslab_subprocess(["lab", "run-faults", ring.name, str(bad)])
    assert r.returncode == 2 and f"{bad}:3: faults[1].partition[1]: lab '{ring.name}' has no node 'h9'" in r.stderr
    assert ev.read(ring.name) == before  # nothing started
    assert_plan_again(ring)


def test_a_netem_impairment_is_probed_before_the_run_starts(ring: Lab, tmp_path: Path) -> None:
    from nslab.kernel import tc

    sched = tmp_path / "netem.yaml"
    sched.write_text("faults:\n  - {at: 0.2s, impair: {link: [r1, r2], delay: 10ms}, for: 0.5s}\n")
    before = ev.read(ring.name)
    r = nslab_subprocess(["lab", "run-faults", ring.name, str(sched)], timeout=120)
    if tc.have_qdisc(netns(ring, "r1"), "netem"):  # a kernel with netem: the probe passes, the schedule runs
        assert r.returncode == 0, r.stderr
        assert "schedule done" in r.stdout
    else:  # refused before anything runs: no "running" line, nothing in the timeline
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "delay" in r.stderr and "sch_netem" in r.stderr and "fault schedule" in r.stderr, r.stderr
        assert "running" not in r.stdout, r.stdout
        assert ev.read(ring.name) == before
    assert_plan_again(ring)


def test_a_refused_run_prints_no_running_line(ring: Lab, tmp_path: Path) -> None:
    long = tmp_path / "long.yaml"
    long.write_text("faults:\n  - {at: 0s, node-stop: h2, for: 60s}\n")
    flap = tmp_path / "flap.yaml"
    flap.write_text("faults:\n  - {at: 0s, flap: {link: [r1, r2]}}\n")
    p = spawn(["lab", "run-faults", ring.name, str(long)])
    try:
        wait_line(p, "Ctrl-C stops and heals")
        r = nslab_subprocess(["lab", "run-faults", ring.name, str(flap)], timeout=120)
        assert r.returncode == 1 and "already runs a fault schedule" in r.stderr, r.stderr
        assert "running" not in r.stdout, r.stdout
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=120)
    fl.link_state(ring, "r1", "r2", False)
    try:
        r = nslab_subprocess(["lab", "run-faults", ring.name, str(flap)], timeout=120)
        assert r.returncode == 2 and "link r1-r2 is down already" in r.stderr, r.stderr
        assert "running" not in r.stdout, r.stdout
    finally:
        fl.link_state(ring, "r1", "r2", True)
    assert_plan_again(ring)


def test_lab_down_during_a_run_stops_it_at_once_with_one_line(tmp_path: Path) -> None:
    lab = Lab.topo("ring", 3, name=lab_name())
    lab.up()
    sched = tmp_path / "long.yaml"
    sched.write_text("faults:\n  - {at: 0s, node-stop: h2, for: 60s}\n  - {at: 50s, partition: [[h1], [h3]], "
                     "for: 5s}\n")
    p = spawn(["lab", "run-faults", lab.name, str(sched)])
    try:
        wait_line(p, "Ctrl-C stops and heals")
        r = nslab_subprocess(["lab", "down", lab.name], timeout=120)
        assert r.returncode == 0, r.stderr
        _, err = p.communicate(timeout=30)  # at once: long before the schedule's 60 s
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if st.load(lab.name) is not None:
            fl.forget(lab.name)
            lab.down()
    assert p.returncode == 1, err
    assert f"lab {lab.name} went down: schedule stopped" in err, err
    assert "cannot be brought back" not in err and "is gone" not in err, err
    assert not os.path.exists(st.run_path(lab.name))
    netnses = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert all(lab.plan.node(n).netns not in netnses for n in ("r1", "h1", "h2"))


PLUGIN_TEST = """
import time
def test_fails_under_faults(nslab_lab, nslab_faults):
    lab = nslab_lab(topo="ring,3")
    run = nslab_faults(lab, [{"every": "0.3s", "random": ["partition", "node-stop"], "until": "1s"}])
    time.sleep(0.5)
    assert False, "deliberate"
"""


def test_the_pytest_report_has_the_timeline_and_the_seed_to_replay(pytester: pytest.Pytester,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pytester.makepyfile(PLUGIN_TEST)
    res = pytester.runpytest("-q", "--nslab-fault-seed", "77", "-p", "no:cacheprovider")
    res.assert_outcomes(failed=1)
    out = res.stdout.str()
    assert ": fault timeline" in out and "schedule-start" in out and "seed=77" in out
    assert "replay the same faults with --nslab-fault-seed 77" in out


pytest_plugins = ["pytester"]
