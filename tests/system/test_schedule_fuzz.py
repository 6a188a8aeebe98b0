"""Property-based fuzzing of the `faults:` grammar (hypothesis), in a file and as Python data: entries built
from the grammar's own keys and values, near-valid and not (wrong types, unknown kinds and nodes, negative,
huge and odd times, overlaps). Whatever comes in:

- checking returns steps (and expanding them with any seed returns steps within the schedule, no two
  overlapping on one target), or raises UsageError; never any other exception, never a hang;
- the message is bounded, one line, names the source and the field (`FILE:LINE: faults[i]...` in a file),
  and has a hint;
- nothing touches the kernel or the file system (kernel_guard).
"""

from __future__ import annotations

import json
from typing import Any

import hypothesis.strategies as st
from hypothesis import event, given
from kernel_guard import no_kernel

from nslab.errors import MESSAGE_MAX, UsageError
from nslab.lab import schedule as sc
from nslab.lab.loader import load_text
from nslab.lab.plan import make_plan

from .fuzz_settings import bounded, fuzz_settings

LAB = """\
name: fz
nodes:
  r1: {kind: router}
  r2: {kind: router}
  h1: {}
  h2: {}
  s1: {kind: switch}
links:
  - [r1, r2]
  - [r1, h1]
  - [r2, s1]
  - [s1, h2]
"""
PLAN = make_plan(load_text(LAB, "fz.yaml"))
NAMES = ["r1", "r2", "h1", "h2", "s1", "h9", "", "R1", "lan1"]

times = st.one_of(st.sampled_from(["0s", "1s", "2.5s", "500ms", "1m", "-1s", "1e9s", "nan", "inf", "soon", "1h",
                                   "86401s", "0", "3", " 2s ", "1.5", "100us"]),
                  st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**6), st.booleans(), st.none())
names = st.one_of(st.sampled_from(NAMES), st.text(max_size=4))
node_list = st.one_of(st.lists(names, max_size=4), names, st.integers())
link = st.one_of(st.lists(names, min_size=0, max_size=3), names)
values = st.one_of(st.sampled_from(["5%", "100%", "150%", "-1%", "0.001%", "1mbit", "0", "10ms", "x", "1"]),
                   st.integers(-5, 200), st.floats(allow_nan=True))
impair = st.dictionaries(st.sampled_from(["link", "dir", "iface", "loss", "rate", "duplicate", "delay", "lose"]),
                         st.one_of(link, values, st.sampled_from(["both", "h1->r1", "A->B", "up"])), max_size=4)
fault = st.sampled_from((*sc.KINDS, "crash", "partiton"))
kind_value = st.one_of(
    st.lists(node_list, max_size=3),
    st.fixed_dictionaries({"from": node_list, "to": node_list}),
    link, names, impair,
    st.dictionaries(st.sampled_from(["link", "period", "count", "iface", "speed"]),
                    st.one_of(link, times, st.integers(-1, 10**6)), max_size=3),
)


VALID = [
    {"partition": [["h1"], ["h2", "r2"]]}, {"partition": {"from": ["h1"], "to": ["r1"]}},
    {"link-down": ["r1", "r2"]}, {"link-down": {"link": ["r2", "s1"]}}, {"node-stop": "h2"}, {"node-stop": "s1"},
    {"flap": {"link": ["h1", "r1"], "period": "0.2s", "count": 2}},
    {"impair": {"link": ["h1", "r1"], "loss": "5%"}},
    {"impair": {"link": ["r1", "r2"], "dir": "r1->r2", "rate": "1mbit"}},
    {"every": "1s", "random": list(sc.KINDS), "until": "10s"},
    {"every": "0.5s", "random": ["node-stop", "partition"], "until": "5s", "nodes": ["h1", "h2", "r1"]},
]
good_time = st.sampled_from(["0s", "0.5s", "1s", "2s", "3s", "5s", 0, 1, 4])


@st.composite
def entries(draw: Any) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, 4))):
        e: dict[str, Any] = {}
        if draw(st.integers(0, 2)) == 0:  # near-valid: a valid entry at a valid time, perhaps with one key changed
            e = dict(draw(st.sampled_from(VALID)))
            e["at"] = draw(good_time)
            if "random" not in e and "flap" not in e and draw(st.booleans()):
                e["for"] = draw(st.sampled_from(["0.5s", "1s", "2s"]))
            if draw(st.integers(0, 3)) == 0:
                e[draw(st.sampled_from([*sc.ENTRY_KEYS, "x"]))] = draw(st.one_of(times, kind_value))
        elif draw(st.booleans()):
            e["random"] = draw(st.lists(fault, max_size=4))
            for key in ("every", "until", "for", "at"):
                if draw(st.booleans()):
                    e[key] = draw(times)
            if draw(st.booleans()):
                e["nodes"] = draw(node_list)
            if draw(st.booleans()):
                e["seed"] = draw(st.one_of(st.integers(-3, 2**64), st.text(max_size=3)))
        else:
            for _ in range(draw(st.integers(0, 2))):
                e[draw(fault)] = draw(kind_value)
            for key in ("at", "for"):
                if draw(st.booleans()):
                    e[key] = draw(times)
        out.append(e)
    return out


def holds(steps: list[sc.Step], horizon: float) -> None:
    for i, x in enumerate(steps):
        assert 0 <= x.at <= horizon and x.end(horizon) <= horizon + 1e-6
        for y in steps[i + 1:]:
            assert not sc._overlap(x, y, horizon), (x, y)


def message_ok(exc: UsageError, start: str) -> None:
    assert exc.message.startswith(start), exc.message
    assert "\n" not in exc.message and len(exc.message) <= MESSAGE_MAX and exc.hint


@fuzz_settings(normal=300)
@given(entries(), st.integers(0, 2**31))
def test_python_data_is_checked_or_refused(data: list[dict[str, Any]], seed: int) -> None:
    with bounded(), no_kernel():
        try:
            s = sc.Schedule.of(data)
            steps = s.steps(PLAN, seed)
        except UsageError as exc:
            message_ok(exc, "<python>: faults")
            event("refused")
            return
        event(f"accepted, {min(len(steps), 3)}+ steps")
        holds(steps, s.horizon)
        assert steps == s.steps(PLAN, seed)


@fuzz_settings(normal=200)
@given(entries())
def test_a_file_is_checked_or_refused_with_its_line(data: list[dict[str, Any]]) -> None:
    text = LAB + "faults:\n" + "".join(f"  - {json.dumps(e)}\n" for e in data)
    with bounded(), no_kernel():
        try:
            t = load_text(text, "fz.yaml")
            steps = sc.validate(t, make_plan(t))
        except UsageError as exc:
            assert exc.message.startswith("fz.yaml:"), exc.message
            message_ok(exc, "fz.yaml:")
            return
        holds(steps, sc.horizon_of(sc.parse(t.faults)))
