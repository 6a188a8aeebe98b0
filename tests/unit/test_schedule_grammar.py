"""Fault schedules, pure: the `faults:` grammar, its checks against a plan (classes of bad input: exit 2 naming
the file, line and field, nothing started), and the seeded expansion (same seed, same steps). No root, no
kernel (kernel_guard)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from kernel_guard import no_kernel

from nslab.errors import UsageError
from nslab.lab import builtin
from nslab.lab import schedule as sc
from nslab.lab.lab import Lab
from nslab.lab.loader import load_text, parse_faults_file
from nslab.lab.plan import Plan, make_plan

FILE = """\
name: sched
nodes:
  r1: {kind: router}
  r2: {kind: router}
  h1: {}
  h2: {}
  h3: {}
  s1: {kind: switch}
links:
  - [r1, r2]
  - [r1, h1]
  - [r2, h2]
  - [r2, s1]
  - [s1, h3]
faults:
"""
BRIEF = """\
  - {at: 2s, partition: [[h1, h2], [h3]], for: 3s}
  - {at: 6s, flap: {link: [r1, r2], period: 1s, count: 3}}
  - {every: 5s, random: [partition, node-stop, impair], seed: 42, until: 60s}
"""


def plan_of(text: str) -> tuple[Plan, object]:
    t = load_text(text, "lab.yaml")
    return make_plan(t), t


def write(tmp_path: Path, faults: str) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(FILE + faults)
    return path


def steps(faults: str, seed: int = 1) -> list[sc.Step]:
    with no_kernel():
        plan, t = plan_of(FILE + faults)
        entries = sc.parse(t.faults, "lab.yaml", t.fault_lines)  # type: ignore[attr-defined]
        return sc.expand(entries, plan, seed, "lab.yaml", t.fault_lines)  # type: ignore[attr-defined]


def test_the_briefs_example_expands_into_timed_and_random_steps() -> None:
    got = steps(BRIEF)
    timed = [s for s in got if s.entry in (0, 1)]
    assert [(s.at, s.kind, s.duration) for s in timed] == [(2.0, "partition", 3.0), (6.0, "flap", 3.0)]
    assert timed[0].targets == ((("h1", "h2"), ("h3",)),) and timed[0].line == 16
    assert timed[1].targets == ("r1", "r2", None) and dict(timed[1].params) == {"period": 1.0, "count": 3}
    rnd = [s for s in got if s.entry == 2]
    assert rnd and all(s.kind in ("partition", "node-stop", "impair") for s in rnd)
    assert [s.at for s in rnd] == sorted(s.at for s in rnd) and all(0 <= s.at < 60 for s in rnd)
    assert all(s.at % 5 == 0 for s in rnd)  # every 5 s from 0
    # the random partitions never overlap the timed one (one partition at a time)
    assert not any(s.kind == "partition" and 2 <= s.at < 5 for s in rnd)


def test_the_same_seed_gives_the_same_sequence_and_another_seed_another() -> None:
    faults = "  - {every: 1s, random: [partition, node-stop, impair, link-down, flap], until: 40s}\n"
    seq = [(s.at, s.kind, s.targets, s.params) for s in steps(faults, seed=7)]
    assert seq == [(s.at, s.kind, s.targets, s.params) for s in steps(faults, seed=7)]
    others = {tuple((s.at, s.kind, s.targets) for s in steps(faults, seed=k)) for k in range(8, 14)}
    assert len(others) > 1 and tuple((a, k, t) for a, k, t, _ in seq) not in others


def test_an_entrys_own_seed_wins_over_the_runs() -> None:
    faults = "  - {every: 1s, random: [partition, node-stop, link-down], until: 20s, seed: 42}\n"
    assert steps(faults, seed=1) == steps(faults, seed=2)


def test_random_picks_only_named_nodes_and_never_overlap_on_a_target() -> None:
    faults = ("  - {at: 0s, node-stop: h1, for: 30s}\n"
              "  - {every: 1s, random: [node-stop, partition], until: 30s, for: 1s, nodes: [h1, h2, h3]}\n")
    for seed in range(30):
        got = steps(faults, seed)
        for s in got:
            if s.kind == "node-stop" and s.entry == 1:
                assert s.targets[0] in ("h2", "h3")  # h1 is stopped by the timed entry all along
            if s.kind == "partition":
                assert {n for g in s.targets[0] for n in g} <= {"h1", "h2", "h3"}
        horizon = sc.horizon_of(sc.parse(load_text(FILE + faults).faults))
        for i, x in enumerate(got):
            for y in got[i + 1:]:
                assert not sc._overlap(x, y, horizon), (x, y)


def test_actions_undo_every_step_and_flap_alternates() -> None:
    got = steps("  - {at: 1s, flap: {link: [r1, r2], period: 1s, count: 2}}\n"
                "  - {at: 0.5s, link-down: [r1, h1]}\n")
    acts = sc.actions(got, 3.0)
    assert [(a.t, a.phase, a.step.kind) for a in acts] == [
        (0.5, "begin", "link-down"), (1.0, "begin", "flap"), (1.5, "up", "flap"), (2.0, "down", "flap"),
        (2.5, "up", "flap"), (3.0, "end", "link-down"), (3.0, "end", "flap")]


def test_python_data_uses_the_same_grammar() -> None:
    plan = make_plan(builtin.topo("ring", 3, name="x"))
    s = sc.Schedule.of([{"at": 1, "partition": {"from": ["h1"], "to": ["h2", "h3"]}, "for": "500ms"},
                        {"at": "2s", "impair": {"link": ["h1", "r1"], "dir": "h1->r1", "loss": 5}},
                        {"at": 0, "node-stop": "r3", "for": "1m"}])
    got = s.steps(plan, 0)
    assert [(x.at, x.kind, x.duration) for x in got] == [(0.0, "node-stop", 60.0), (1.0, "partition", 0.5),
                                                           (2.0, "impair", None)]
    assert got[1].targets == ("oneway", ("h1",), ("h2", "h3"))
    assert s.horizon == 60.0 and got[2].end(s.horizon) == 60.0  # no for: until the schedule ends


def test_a_file_with_only_faults_is_a_schedule(tmp_path: Path) -> None:
    path = tmp_path / "chaos.yaml"
    path.write_text("faults:\n  - {at: 1s, node-stop: h2, for: 2s}\n")
    data, lines = parse_faults_file(path)
    assert data == [{"at": "1s", "node-stop": "h2", "for": "2s"}] and lines["faults[0]"] == 2


# ---- bad input: one class per test case, each naming file, line and field -----------------------------------
BAD = {
    "unknown-kind": ("  - {at: 1s, partiton: [[h1], [h2]]}\n", r"lab.yaml:16: faults\[0\]\.partiton: unknown key",
                     "did you mean 'partition'"),
    "unknown-random-kind": ("  - {every: 1s, random: [partition, crash], until: 5s}\n",
                            r"lab.yaml:16: faults\[0\]\.random\[1\]: unknown fault kind 'crash'", "kinds:"),
    "two-kinds": ("  - {at: 1s, node-stop: h1, link-down: [r1, r2]}\n", r"lab.yaml:16: faults\[0\]: an entry names "
                  "exactly one fault", "write e.g."),
    "no-kind": ("  - {at: 1s, for: 2s}\n", r"faults\[0\]: an entry names exactly one fault", "write e.g."),
    "unknown-node": ("  - {at: 1s, node-stop: h9}\n", r"lab.yaml:16: faults\[0\]\.node-stop: lab 'sched' has no "
                     "node 'h9'", "known nodes"),
    "unknown-node-in-group": ("  - at: 1s\n    partition:\n      - [h1]\n      - [h2, hx]\n",
                              r"lab.yaml:19: faults\[0\]\.partition\[1\]: lab 'sched' has no node 'hx'", "known"),
    "unknown-link": ("  - {at: 1s, link-down: [h1, h2]}\n", r"lab.yaml:16: faults\[0\]\.link-down: lab 'sched' has "
                     "no link between 'h1' and 'h2'", "neighbours"),
    "switch-partition": ("  - {at: 1s, partition: [[s1], [h1]]}\n", r"faults\[0\]\.partition\[0\]: node 's1' is a "
                         "switch", "partition hosts"),
    "overlap-partitions": ("  - {at: 1s, partition: [[h1], [h2]], for: 5s}\n"
                           "  - {at: 3s, partition: [[h1], [h3]], for: 1s}\n",
                           r"lab.yaml:17: faults\[1\]: partition h1 \| h3 from 3s to 4s overlaps faults\[0\] "
                           r"\(line 16\)", "start one after"),
    "overlap-link": ("  - {at: 1s, link-down: [r1, r2]}\n  - {at: 2s, flap: {link: [r2, r1], period: 1s}}\n",
                     r"faults\[1\]: flap r2-r1 .* overlaps faults\[0\] \(line 16\), link-down r1-r2 from 1s to 5s",
                     "start one after"),
    "overlap-impair": ("  - {at: 0s, impair: {link: [h1, r1], loss: 5%}, for: 2s}\n"
                       "  - {at: 1s, impair: {link: [r1, h1], dir: 'r1->h1', rate: 1mbit}, for: 2s}\n",
                       r"faults\[1\]: impair r1-h1 r1->h1: rate 1mbit from 1s to 3s overlaps", "another target"),
    "negative-at": ("  - {at: -1s, node-stop: h1}\n", r"lab.yaml:16: faults\[0\]\.at: a time cannot be negative",
                    "0s or later"),
    "negative-for": ("  - {at: 1s, node-stop: h1, for: -2s}\n", r"faults\[0\]\.for: a time cannot be negative",
                     "later"),
    "zero-for": ("  - {at: 1s, node-stop: h1, for: 0s}\n", r"faults\[0\]\.for: for must be more than 0", "at least"),
    "bad-time": ("  - {at: soon, node-stop: h1}\n", r"faults\[0\]\.at: invalid", "'2s'"),
    "huge-time": ("  - {at: 1000000s, node-stop: h1}\n", r"faults\[0\]\.at: invalid .*outside", "86400"),
    "random-no-candidates": ("  - {every: 1s, random: [partition], until: 5s, nodes: [h1]}\n",
                             r"lab.yaml:16: faults\[0\]\.random\[0\]: partition: nothing to pick from",
                             "widen nodes"),
    "random-no-link": ("  - {every: 1s, random: [flap], until: 5s, nodes: [h9]}\n",
                       r"faults\[0\]\.nodes: lab 'sched' has no node 'h9'", "known nodes"),
    "random-until-before-at": ("  - {at: 10s, every: 1s, random: [node-stop], until: 5s}\n",
                               r"faults\[0\]\.until: until \(5s\) must come after at \(10s\)", "every:"),
    "random-for-longer-than-every": ("  - {every: 1s, random: [node-stop], until: 5s, for: 2s}\n",
                                     r"faults\[0\]\.for: each fault lasts 2s, longer than every", "at most every"),
    "random-without-every": ("  - {random: [node-stop], until: 5s}\n", r"faults\[0\]: a random entry needs every:",
                             "every: 5s"),
    "every-without-random": ("  - {at: 1s, every: 1s, node-stop: h1}\n", r"faults\[0\]\.every: every: belongs to a "
                             "random entry", "random:"),
    "flap-with-for": ("  - {at: 1s, flap: {link: [r1, r2]}, for: 3s}\n", r"faults\[0\]\.for: a flap lasts period x "
                      "count", "remove for:"),
    "flap-period": ("  - {at: 1s, flap: {link: [r1, r2], period: 1ms}}\n", r"faults\[0\]\.flap\.period: 1ms is too "
                    "short", "0.02s"),
    "flap-count": ("  - {at: 1s, flap: {link: [r1, r2], count: 0}}\n", r"faults\[0\]\.flap\.count: 0 is outside",
                   "1 to 100000"),
    "impair-nothing": ("  - {at: 1s, impair: {link: [h1, r1]}}\n", r"faults\[0\]\.impair: no impairment given",
                       "loss"),
    "impair-value": ("  - {at: 1s, impair: {link: [h1, r1], loss: 150%}}\n", r"faults\[0\]\.impair\.loss: ", ""),
    "impair-dir": ("  - {at: 1s, impair: {link: [h1, r1], dir: sideways, loss: 1%}}\n",
                   r"faults\[0\]\.impair\.dir: invalid direction 'sideways'", "A->B"),
    "open-ended-at-the-end": ("  - {at: 1s, node-stop: h1, for: 2s}\n  - {at: 3s, link-down: [r1, r2]}\n",
                              r"lab.yaml:17: faults\[1\]: link-down r1-r2 has no for: and starts when the "
                              r"schedule ends \(3s\)", "give it a for:"),
    "not-a-list": ("  {at: 1s}\n", r"lab.yaml:16: faults: faults must be a list", "one '- {at"),
    "link-one-end": ("  - {at: 1s, link-down: [r1]}\n", r"faults\[0\]\.link-down: a link is its two ends",
                     "[r1, r2]"),
    "group-twice": ("  - {at: 1s, partition: [[h1, h2], [h2]]}\n", r"faults\[0\]\.partition\[1\]: node 'h2' is in "
                    "two groups", "one group"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_schedules_are_refused_with_file_line_and_field(case: str, tmp_path: Path) -> None:
    faults, message, hint = BAD[case]
    path = write(tmp_path, faults)
    with no_kernel(), pytest.raises(UsageError) as exc:
        Lab.from_file(path)
    text = exc.value.message.replace(str(tmp_path) + "/", "")
    assert re.search(message, text), text
    assert exc.value.hint and hint in exc.value.hint, exc.value.hint
    assert exc.value.exit_code == 2


def test_lab_validate_exits_2_on_a_bad_schedule(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "  - {at: 1s, node-stop: h9}\n")
    r = cli("lab", "validate", str(path))
    assert r.rc == 2 and f"{path}:16: faults[0].node-stop: lab 'sched' has no node 'h9'" in r.err
    ok = write(tmp_path, BRIEF)
    assert cli("lab", "validate", str(ok)).rc == 0


def test_run_faults_dry_run_prints_the_same_sequence_for_the_same_seed(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "  - {every: 2s, random: [partition, node-stop, impair], until: 20s}\n")
    a = cli("--json", "lab", "run-faults", "nosuchlab", str(path), "--seed", "99", "--dry-run")
    b = cli("--json", "lab", "run-faults", "nosuchlab", str(path), "--seed", "99", "--dry-run")
    assert a.rc == 0 and a.json()["seed"] == 99 and a.json()["steps"] == b.json()["steps"]
    assert [s["at"] for s in a.json()["steps"]] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]


def test_python_errors_name_the_entry_without_a_file() -> None:
    plan = make_plan(builtin.topo("ring", 3, name="x"))
    with pytest.raises(UsageError, match=r"^<python>: faults\[1\]\.node-stop: lab 'x' has no node 'h7'"):
        sc.Schedule.of([{"at": 0, "node-stop": "h1", "for": 1}, {"at": 1, "node-stop": "h7"}]).steps(plan, 0)


def test_random_expansion_is_total_over_many_seeds() -> None:
    """Whatever the seed: steps within the schedule, every step's targets in the plan, sorted."""
    plan = make_plan(builtin.topo("ring", 3, name="x"))
    s = sc.Schedule.of([{"every": "0.5s", "random": list(sc.KINDS), "until": "30s"}])
    names = {n.name for n in plan.nodes}
    for seed in random.Random(0).sample(range(2**31), 25):
        got = s.steps(plan, seed)
        assert got and [x.at for x in got] == sorted(x.at for x in got)
        for x in got:
            assert 0 <= x.at < 30 and x.end(s.horizon) <= s.horizon
            flat = [n for t in x.targets if isinstance(t, tuple) for g in t for n in (g if isinstance(g, tuple)
                                                                                         else [g])]
            assert set(flat + [t for t in x.targets if isinstance(t, str) and t != "oneway"]) <= names
