"""Plan once (issue 10): loading a file gives its Plan, planned once, and the Plan carries the declared
impairments; that `up` plans nothing again is in tests/kernel/test_plan_once.py.

Counted, not timed: the Checker's whole-topology pass and the address assignment are wrapped with counters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LAB_DATA

from nslab.lab import addressing, checks
from nslab.lab.lab import Lab
from nslab.lab.plan import ImpairPlan, make_plan
from nslab.lab.topology import load_text

GOOD = Path(LAB_DATA) / "good"


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


