"""Plan once (issue 10): loading a file gives its Plan, the Plan carries the declared impairments, and `up`
plans nothing again and applies those impairments inside its one all-or-nothing.

Counted, not timed: the Checker's whole-topology pass and the address assignment are wrapped with counters.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT_REASON, is_root, lab_name

from nslab import faults
from nslab.lab import addressing, checks
from nslab.lab import state as st
from nslab.lab.lab import Lab
from nslab.lab.plan import ImpairPlan, make_plan
from nslab.lab.topology import load_text

GOOD = Path(__file__).parent / "good"


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    seen = {"check": 0, "assign": 0}
    real_all, real_run = checks.Checker.all, addressing._Assigner.run

    def counted_all(self: checks.Checker) -> None:
        seen["check"] += 1
        real_all(self)

    def counted_run(self: addressing._Assigner) -> addressing.Addressing:
        seen["assign"] += 1
        return real_run(self)

    monkeypatch.setattr(checks.Checker, "all", counted_all)
    monkeypatch.setattr(addressing._Assigner, "run", counted_run)
    yield seen


def test_from_file_plans_once(counts: dict[str, int]) -> None:
    lab = Lab.from_file(GOOD / "campus.yaml", name="once")
    assert counts == {"check": 1, "assign": 1}
    assert lab.plan is lab.plan and lab.plan.lab == "once"
    assert counts == {"check": 1, "assign": 1}


def test_a_grown_topology_is_planned_again(counts: dict[str, int]) -> None:
    lab = Lab.from_file(GOOD / "campus.yaml", name="grow")
    before = len(lab.plan.nodes)
    lab.add_node("h99")
    assert len(lab.plan.nodes) == before + 1
    assert counts == {"check": 2, "assign": 2}


def test_the_plan_carries_the_declared_impairments() -> None:
    plan = make_plan(load_text((GOOD / "impaired.yaml").read_text(), "impaired.yaml"))
    ends = {(i.node, j.node): (i.ifname, j.ifname) for lk in plan.links for i, j in ((lk.a, lk.b), (lk.b, lk.a))}

    def imp(src: str, dst: str, loss: float | None = None, dup: float | None = None,
            rate: int | None = None) -> ImpairPlan:
        ifs, ifd = ends[(src, dst)]
        return ImpairPlan(src, ifs, dst, ifd, loss, dup, rate, ())

    assert plan.impairments == (imp("h1", "r1", loss=2.0), imp("r1", "h1", loss=2.0),
                                imp("r1", "h2", rate=10_000_000), imp("h2", "r1", dup=1.0))


def test_the_nth_link_between_two_nodes_gets_the_nth_links_impairments() -> None:
    plan = make_plan(load_text("name: two\nnodes: {a: {kind: router}, b: {kind: router}}\nlinks:\n"
                               "  - [a, b]\n  - endpoints: [a, b]\n    impair: {\"a->b\": {loss: 5%}}\n"))
    second = plan.links[1]
    assert [(i.src, i.src_ifname, i.dst, i.dst_ifname, i.loss) for i in plan.impairments] == [
        ("a", second.a.ifname, "b", second.b.ifname, 5.0)]
    assert second.a.ifname != plan.links[0].a.ifname


def test_netem_impairments_are_named_in_the_plan() -> None:
    plan = make_plan(load_text("name: n\nnodes: {a: {}, b: {}}\nlinks:\n  - endpoints: [a, b]\n"
                               "    impair: {\"a->b\": {delay: 10ms, jitter: 0ms, loss: 1%}}\n"))
    assert [(i.netem, i.loss) for i in plan.impairments] == [(("delay",), 1.0)]


@pytest.mark.kernel
@pytest.mark.skipif(not is_root(), reason=ROOT_REASON)
def test_from_file_and_up_plan_once_and_apply_the_declared_impairments(counts: dict[str, int]) -> None:
    name = lab_name()
    lab = Lab.from_file(GOOD / "impaired.yaml", name=name)
    try:
        lab.up()
        assert counts == {"check": 1, "assign": 1}
        listed = sorted((f["from"], f["to"]) for f in faults.faults(name))
        assert listed == [("h1", "r1"), ("h2", "r1"), ("r1", "h1"), ("r1", "h2")]
        # The rate is in the kernel (tc's own reading), on r1's end towards h2.
        r1_h2 = next(i for i in lab.plan.impairments if (i.src, i.dst) == ("r1", "h2"))
        out = subprocess.run(["ip", "netns", "exec", f"{name}-r1", "tc", "qdisc", "show", "dev",
                              r1_h2.src_ifname], capture_output=True, text=True, check=True).stdout
        assert "tbf" in out and "10Mbit" in out, out
        rec = st.load(name)
        assert rec is not None and rec.status == "up"
    finally:
        lab.down()
    assert faults.faults(name) == []


@pytest.mark.kernel
@pytest.mark.skipif(not is_root(), reason=ROOT_REASON)
def test_an_interrupt_after_the_declared_impairments_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Applied within `up`: a Ctrl-C once they reached the kernel rolls the whole lab back, record included."""
    real = faults._commit

    def commit_then_interrupt(*args: object, **kwargs: object) -> None:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(faults, "_commit", commit_then_interrupt)
    name = lab_name()
    lab = Lab.from_file(GOOD / "impaired.yaml", name=name)
    try:
        with pytest.raises(KeyboardInterrupt):
            lab.up()
        assert st.load(name) is None
        assert faults.faults(name) == []
        assert not [n for n in os.listdir("/run/netns") if n.startswith(f"{name}-")]
    finally:
        monkeypatch.undo()
        lab.down()
