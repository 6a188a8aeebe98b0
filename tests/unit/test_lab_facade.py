"""The Lab facade and the LabView features take (issue 10): no root, no kernel.

- every facade method that hands off to a feature has the feature's own signature (names, kinds, defaults,
  annotations), so the API keeps its signatures instead of `**kwargs: Any`;
- a feature runs on any object with `name` and `plan` (a small dataclass here), not only on a `Lab`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from nslab import capture, faults, graph, nodes, perf, reach
from nslab.errors import NotFoundError, UsageError
from nslab.lab import lab as lab_mod
from nslab.lab.builtin import topo
from nslab.lab.lab import Lab
from nslab.lab.plan import Plan, make_plan
from nslab.lab.view import LabView


@dataclass(frozen=True)
class View:
    name: str
    plan: Plan


def _params(fn: Callable[..., Any], drop: int) -> list[tuple[str, Any, Any, Any]]:
    sig = inspect.signature(fn)
    return [(p.name, p.kind, p.default, p.annotation) for p in list(sig.parameters.values())[drop:]]


@pytest.mark.parametrize(("method", "feature"), [
    (Lab.reach, reach.reach),
    (Lab.perf, perf.perf),
    (Lab.capture, capture.capture),
    (Lab.impair, faults.impair),
    (Lab.link, faults.link_state),
], ids=lambda f: getattr(f, "__qualname__", str(f)))
def test_facade_method_has_the_features_signature(method: Callable[..., Any], feature: Callable[..., Any]) -> None:
    assert _params(method, 1) == _params(feature, 1)  # self / lab dropped
    assert inspect.signature(method).return_annotation == inspect.signature(feature).return_annotation


def test_facade_takes_no_bare_kwargs() -> None:
    for name, fn in inspect.getmembers(Lab, inspect.isfunction):
        kinds = {p.kind for p in inspect.signature(fn).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds, name


def test_perf_warmup_default_is_perfs() -> None:
    assert lab_mod.PERF_WARMUP == perf.WARMUP


def test_a_lab_is_a_labview() -> None:
    lab: LabView = Lab.topo("single", 2, name="fv")  # mypy checks the Protocol; this checks the attributes
    assert (lab.name, lab.plan.lab) == ("fv", "fv")


def test_features_take_a_plain_dataclass() -> None:
    plan = make_plan(topo("linear", 3, name="dv"))
    view = View("dv", plan)
    assert "h1" in graph.graph(view, "mermaid", live=False)
    ea, eb = faults.find_link(view.plan, "h1", "s1")
    assert (ea.node, eb.node) == ("h1", "s1")
    with pytest.raises(UsageError, match="no link between 'h1' and 'h3'"):
        faults.link_state(view, "h1", "h3", False)  # refused from the plan, before any lock or kernel
    with pytest.raises(NotFoundError, match="no node 'h9'"):
        nodes.run(view, "h9", ["true"])


def test_resolve_words_to_addresses() -> None:
    plan = make_plan(topo("single", 2, name="rv"))
    h2 = plan.primary_ipv4("h2")
    assert nodes.resolve(plan, ["ping", "h2", "h2:80", "http://h2/x", "h22", "s1"]) == [
        "ping", h2, f"{h2}:80", f"http://{h2}/x", "h22", "s1"]
    assert Lab.topo("single", 2, name="rv").resolve(["h2"]) == [h2]
