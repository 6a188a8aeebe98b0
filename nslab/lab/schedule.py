"""Fault schedules (Jepsen's nemesis): a timed or random, seeded sequence of faults run while a test runs.

    faults:
      - {at: 2s, partition: [[h1, h2], [h3]], for: 3s}
      - {at: 6s, flap: {link: [r1, r2], period: 1s, count: 3}}
      - {every: 5s, random: [partition, node-stop, impair], seed: 42, until: 60s}

The grammar (docs/schedules.md) is read from plain data (a topology file's `faults:` through the loader, or
Python lists and dicts), checked against the lab's plan (unknown nodes and links, faults on one target that
overlap in time, random picks without candidates: UsageError naming the file, line and field, before
anything starts), and expanded into Steps: (time offset, fault, targets, how long). The expansion is pure:
the same entries, plan and seed give the same steps (tests/unit). A run applies the steps through
nslab.faults, in one loop, and undoes each at its end; when it ends, is stopped, interrupted (SIGINT,
SIGTERM, an exception) or a step fails, the lab's faults go back to what they were when it started
(`faults.restore`: the reconcile engine reads every node back). Every change lands in the lab's timeline
(nslab.lab.events) with the run's id, seed and step. A run killed with SIGKILL leaves its record
(/run/nslab/labs/LAB.schedule.json, with the faults to go back to): `repair_orphan` (called by `lab heal`,
`lab up` and the next run) restores them and says so in the timeline.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from .. import faults as fl
from .. import units
from ..errors import FeatureMissing, NslabError, UsageError
from . import events as ev
from . import state as st
from .checks import closest

if TYPE_CHECKING:
    from .plan import Plan
    from .view import LabView

KINDS = ("partition", "link-down", "flap", "node-stop", "impair")
MAX_TIME = 86400.0  # one day: a schedule is a test's length, not a service's
MAX_STEPS = 10_000
MIN_EVERY = 0.05
DEFAULT_RANDOM_IMPAIR = {"loss": "20%"}
DEFAULT_FLAP_COUNT = 2
GONE_POLL = 0.5  # s: how often a waiting run looks whether its lab (or its record) is still there


class LabGone(NslabError):
    """The lab went down (`lab down`) while a schedule ran on it: the run stops, nothing is left to undo."""


def _schema_keys() -> tuple[tuple[str, ...], dict[str, tuple[str, ...]], tuple[str, ...]]:
    """(entry keys, the keys of each fault's mapping form, impairment keys): read from schema.json, as the
    loader reads every other key of the file."""
    from .loader import IMPAIR_KEYS, json_schema

    schema = json_schema()["$defs"]
    entry = tuple(schema["fault"]["properties"])
    sub = {k: tuple(schema[f"fault_{k.replace('-', '_')}"]["properties"]) for k in ("flap", "impair")}
    part = next(o for o in schema["fault_partition"]["oneOf"] if o.get("type") == "object")
    sub["partition"] = tuple(part["properties"])
    return entry, sub, IMPAIR_KEYS


ENTRY_KEYS, SUB_KEYS, IMPAIR_KEYS = _schema_keys()
TIMING_KEYS = ("at", "for", "every", "until", "seed", "random", "nodes")


# ---- the grammar (pure) -----------------------------------------------------------------------------------
@dataclass
class Entry:
    """One item of a `faults:` list, parsed (not yet checked against a plan)."""

    index: int
    kind: str  # one of KINDS, or "random"
    at: float = 0.0
    duration: float | None = None  # `for`; None: until the schedule ends
    args: dict[str, Any] = field(default_factory=dict)
    every: float = 0.0  # random only
    until: float = 0.0
    choices: tuple[str, ...] = ()
    seed: int | None = None
    nodes: tuple[str, ...] | None = None  # random: the nodes it may pick (default: every host and router)
    line: int | None = None


@dataclass(frozen=True)
class Step:
    """One fault of a run: KIND on TARGETS from AT for DURATION seconds (None: until the schedule ends)."""

    at: float
    kind: str
    targets: tuple[Any, ...]  # partition: (groups,) or ("oneway", from, to); link: (a, b, iface); node: (n,)
    duration: float | None
    entry: int
    params: tuple[tuple[str, Any], ...] = ()  # flap: period, count; impair: dir and values
    line: int | None = None

    def end(self, horizon: float) -> float:
        return horizon if self.duration is None else self.at + self.duration

    def what(self) -> str:
        """The step in words: 'partition h1,h2 | h3', 'flap r1-r2 (period 1s, 3 times)'."""
        p = dict(self.params)
        if self.kind == "partition":
            if self.targets[0] == "oneway":
                return f"partition {','.join(self.targets[1])} -> {','.join(self.targets[2])} dropped"
            return "partition " + " | ".join(",".join(g) for g in self.targets[0])
        if self.kind == "node-stop":
            return f"node-stop {self.targets[0]}"
        link = f"{self.targets[0]}-{self.targets[1]}" + (f" ({self.targets[2]})" if self.targets[2] else "")
        if self.kind == "flap":
            return f"flap {link} (period {p['period']:g}s, {p['count']} times)"
        if self.kind == "impair":
            vals = ", ".join(f"{k} {v}" for k, v in p.items() if k != "dir")
            return f"impair {link} {p.get('dir', 'both')}: {vals}"
        return f"link-down {link}"

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "fault": self.kind, "what": self.what(), "for": self.duration, "entry": self.entry,
                "line": self.line}


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Src:
    """Where entries came from: a file (with the lines of its fields) or Python; makes the error messages."""

    def __init__(self, source: str, lines: Mapping[str, int] | None = None) -> None:
        self.source = source
        self.lines = dict(lines or {})

    def line(self, path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return None

    def fail(self, path: str, message: str, hint: str | None = None) -> NoReturn:
        line = self.line(path)
        where = f"{self.source}:{line}: {path}" if line else f"{self.source}: {path}"
        raise UsageError(f"{where}: {message}", hint)


def _time(src: _Src, value: object, path: str, lo: float = 0.0, positive: bool = False) -> float:
    """A time: nslab.units' grammar ('500ms', '2s', '250us'), minutes or hours ('5m', '1h'), or a number of
    seconds; from 0 to a day."""
    hint = "write a time such as '2s', '500ms', '5m' or a number of seconds, from 0 to 86400"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        src.fail(path, f"expected a time, got {_short(value)}", hint)
    text = str(value).strip()
    if text.startswith("-"):
        src.fail(path, f"a time cannot be negative ({text})", "times count from the schedule's start: 0s or later")
    scale = 1.0
    if text[-1:] in ("m", "h") and not text.endswith("ms") and text.isascii():
        scale, text = (60.0 if text[-1] == "m" else 3600.0), text[:-1]
    try:
        secs = units.parse_time(text if isinstance(value, str) else float(value), path, 0.0, MAX_TIME) * scale
    except UsageError as exc:
        src.fail(path, exc.message, hint)
    if not math.isfinite(secs) or secs > MAX_TIME:
        src.fail(path, f"{value} is longer than a day", hint)
    if positive and secs <= 0:
        src.fail(path, f"{path.rsplit('.', 1)[-1]} must be more than 0", f"give at least {max(lo, 0.001):g}s")
    if secs < lo:
        src.fail(path, f"{value} is too short", f"give at least {lo:g}s")
    return secs


def _int(src: _Src, value: object, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit()
                                                                  and value.isascii() and len(value) < 12)):
        src.fail(path, f"expected a whole number, got {_short(value)}", f"give a number from {lo} to {hi}")
    n = int(value)
    if not lo <= n <= hi:
        src.fail(path, f"{n} is outside {lo}-{hi}", f"give a number from {lo} to {hi}")
    return n


def _name(src: _Src, value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        src.fail(path, f"expected a node name, got {_short(value)}", "write the node's name, e.g. h1")
    return value


def _names(src: _Src, value: object, path: str) -> list[str]:
    if isinstance(value, str):
        return [_name(src, n.strip(), path) for n in value.split(",")]
    if not isinstance(value, list) or not value:
        src.fail(path, f"expected a list of nodes, got {_short(value)}", "write [h1, h2]")
    return [_name(src, v, f"{path}[{i}]") for i, v in enumerate(value)]


def _mapping(src: _Src, value: object, path: str, allowed: Sequence[str], hint: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        src.fail(path, f"expected a mapping, got {_short(value)}", hint)
    for k in value:
        if not isinstance(k, str) or k not in allowed:
            close = closest(str(k), list(allowed))
            src.fail(f"{path}.{k}", f"unknown key {k!r}", (f"did you mean {close!r}? " if close else "")
                     + f"allowed keys: {', '.join(allowed)}")
    return value


def _link(src: _Src, value: object, path: str) -> tuple[str, str]:
    if not isinstance(value, list) or len(value) != 2:
        src.fail(path, f"a link is its two ends, got {_short(value)}", "write link: [r1, r2]")
    return _name(src, value[0], f"{path}[0]"), _name(src, value[1], f"{path}[1]")


def parse(data: object, source: str = "<python>", lines: Mapping[str, int] | None = None) -> list[Entry]:
    """A `faults:` list (plain data: lists, dicts, strings, numbers) -> entries. LINES: field path
    ('faults[0].at') -> line in SOURCE, as the loader records them."""
    src = _Src(source, lines)
    if not isinstance(data, list):
        src.fail("faults", f"faults must be a list, got {_short(data)}",
                 "write one '- {at: 2s, partition: [[h1], [h2]], for: 3s}' line per fault")
    if len(data) > MAX_STEPS:
        src.fail("faults", f"{len(data)} entries; at most {MAX_STEPS}", "split the schedule")
    return [_entry(src, item, i) for i, item in enumerate(data)]


def _entry(src: _Src, item: object, i: int) -> Entry:
    path = f"faults[{i}]"
    hint = ("write e.g. {at: 2s, partition: [[h1, h2], [h3]], for: 3s} or "
            "{every: 5s, random: [partition, node-stop], until: 60s}")
    fields = _mapping(src, item, path, ENTRY_KEYS, hint)
    kinds = [k for k in fields if k in KINDS]
    is_random = "random" in fields
    if is_random:
        kinds = [k for k in kinds if k != "impair"]  # a random entry's impair: is the values it sets
    if len(kinds) + is_random != 1:
        named = kinds + (["random"] if is_random else [])
        src.fail(path, f"an entry names exactly one fault ({', '.join(KINDS)}) or random:, not "
                 + (", ".join(named) or "none"), hint)
    e = Entry(i, "random" if is_random else kinds[0], line=src.line(path))
    if "at" in fields:
        e.at = _time(src, fields["at"], f"{path}.at")
    if "for" in fields:
        e.duration = _time(src, fields["for"], f"{path}.for", positive=True)
    if "seed" in fields:
        e.seed = _int(src, fields["seed"], f"{path}.seed", 0, 2**63 - 1)
    for key in ("every", "until", "random", "nodes", "seed"):
        if key in fields and not is_random:
            src.fail(f"{path}.{key}", f"{key}: belongs to a random entry",
                     "add random: [KINDS] and every:, or remove it")
    if is_random:
        return _random(src, fields, e, path)
    kind, value = e.kind, fields[e.kind]
    kpath = f"{path}.{kind}"
    if kind == "partition":
        e.args = _partition(src, value, kpath)
    elif kind == "node-stop":
        e.args = {"node": _name(src, value, kpath)}
    elif kind == "link-down":
        if isinstance(value, dict):
            sub = _mapping(src, value, kpath, ("link", "iface"), "write link-down: [r1, r2]")
            if "link" not in sub:
                src.fail(kpath, "missing key 'link'", "write link-down: {link: [r1, r2], iface: eth1}")
            e.args = {"link": _link(src, sub["link"], f"{kpath}.link"), "iface": sub.get("iface")}
        else:
            e.args = {"link": _link(src, value, kpath), "iface": None}
    elif kind == "flap":
        sub = _mapping(src, value, kpath, SUB_KEYS["flap"], "write flap: {link: [r1, r2], period: 1s, count: 3}")
        if "link" not in sub:
            src.fail(kpath, "missing key 'link'", "write flap: {link: [r1, r2], period: 1s, count: 3}")
        period = _time(src, sub.get("period", 2.0), f"{kpath}.period", lo=0.02)
        count = _int(src, sub.get("count", 3), f"{kpath}.count", 1, 100_000)
        if "for" in fields:
            src.fail(f"{path}.for", "a flap lasts period x count: it takes no for:", "remove for:, or change count")
        e.duration = period * count
        e.args = {"link": _link(src, sub["link"], f"{kpath}.link"), "iface": sub.get("iface"),
                  "period": period, "count": count}
    else:  # impair
        e.args = _impair(src, value, kpath, need_link=True)
    return e


def _partition(src: _Src, value: object, path: str) -> dict[str, Any]:
    hint = "write partition: [[h1, h2], [h3]] (groups) or partition: {from: [h1], to: [h2]} (one way)"
    if isinstance(value, dict):
        sub = _mapping(src, value, path, SUB_KEYS["partition"], hint)
        for key in ("from", "to"):
            if key not in sub:
                src.fail(path, f"missing key {key!r}", hint)
        return {"from": _names(src, sub["from"], f"{path}.from"), "to": _names(src, sub["to"], f"{path}.to")}
    if not isinstance(value, list) or len(value) < 2:
        src.fail(path, f"a partition needs at least two groups, got {_short(value)}", hint)
    groups = [_names(src, g, f"{path}[{j}]") for j, g in enumerate(value)]
    seen: dict[str, int] = {}
    for j, g in enumerate(groups):
        for n in g:
            if n in seen and seen[n] != j:
                src.fail(f"{path}[{j}]", f"node {n!r} is in two groups", "put each node in one group")
            seen[n] = j
    return {"groups": [list(dict.fromkeys(g)) for g in groups]}


def _impair(src: _Src, value: object, path: str, need_link: bool) -> dict[str, Any]:
    hint = "write impair: {link: [h1, s1], loss: 5%} (dir: both, or 'h1->s1')"
    allowed = SUB_KEYS["impair"] + IMPAIR_KEYS if need_link else IMPAIR_KEYS
    sub = _mapping(src, value, path, allowed, hint)
    out: dict[str, Any] = {"values": {}}
    if need_link:
        if "link" not in sub:
            src.fail(path, "missing key 'link'", hint)
        out["link"] = _link(src, sub["link"], f"{path}.link")
        out["dir"] = str(sub.get("dir", "both"))
        out["iface"] = sub.get("iface")
    for k in IMPAIR_KEYS:
        if k in sub:
            if k not in _impair_params():
                src.fail(f"{path}.{k}", f"a schedule cannot set {k} (nslab.faults.impair takes no {k})",
                         f"use: {', '.join(p for p in IMPAIR_KEYS if p in _impair_params())}")
            v = sub[k]
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                src.fail(f"{path}.{k}", f"expected a value, got {_short(v)}", hint)
            try:
                _check_impairment(k, v)
            except UsageError as exc:
                src.fail(f"{path}.{k}", exc.message, exc.hint)
            out["values"][k] = v
    if not out["values"]:
        src.fail(path, "no impairment given", f"give one of: {', '.join(IMPAIR_KEYS)}")
    return out


def _impair_params() -> frozenset[str]:
    """The impairments faults.impair takes as keywords (the file's `impair:` keys may be more)."""
    import inspect

    return frozenset(inspect.signature(fl.impair).parameters)


def _check_impairment(key: str, value: str | int | float) -> None:
    """The values faults.impair takes (the same parsers), checked before anything starts."""
    if key in ("loss", "duplicate", "corrupt", "reorder"):
        fl.parse_percent(value, f"{key} percentage")
    elif key == "rate":
        if str(value).strip() not in ("0", "0bit"):
            fl.parse_rate(value if isinstance(value, str) else int(value))
    elif key in ("delay", "jitter"):
        fl.parse_time(value, key)


def _random(src: _Src, fields: Mapping[str, Any], e: Entry, path: str) -> Entry:
    hint = "write {every: 5s, random: [partition, node-stop, impair], until: 60s}"
    if "every" not in fields:
        src.fail(path, "a random entry needs every: (the time between two picks)", hint)
    if "until" not in fields:
        src.fail(path, "a random entry needs until: (when it stops picking)", hint)
    e.every = _time(src, fields["every"], f"{path}.every", lo=MIN_EVERY, positive=True)
    e.until = _time(src, fields["until"], f"{path}.until")
    if e.until <= e.at:
        src.fail(f"{path}.until", f"until ({e.until:g}s) must come after at ({e.at:g}s)", hint)
    if e.duration is None:
        e.duration = e.every / 2
    if e.duration > e.every:
        src.fail(f"{path}.for", f"each fault lasts {e.duration:g}s, longer than every ({e.every:g}s)",
                 "a random entry's faults do not overlap: make for: at most every:")
    picks = fields["random"]
    if not isinstance(picks, list) or not picks:
        src.fail(f"{path}.random", f"expected a list of fault kinds, got {_short(picks)}", hint)
    for j, k in enumerate(picks):
        if k not in KINDS:
            close = closest(str(k), list(KINDS))
            src.fail(f"{path}.random[{j}]", f"unknown fault kind {k!r}",
                     (f"did you mean {close!r}? " if close else "") + f"kinds: {', '.join(KINDS)}")
    e.choices = tuple(dict.fromkeys(picks))
    if "nodes" in fields:
        e.nodes = tuple(_names(src, fields["nodes"], f"{path}.nodes"))
    values = fields.get("impair", DEFAULT_RANDOM_IMPAIR)
    e.args = {"impair": _impair(src, values, f"{path}.impair", need_link=False)["values"]}
    if "impair" in fields and "impair" not in e.choices:
        src.fail(f"{path}.impair", "impair: sets the values of random impairments, but impair is not in random:",
                 "add impair to random:, or remove impair:")
    if "flap" in e.choices and e.duration / DEFAULT_FLAP_COUNT < 0.02:
        src.fail(f"{path}.for", f"a random flap lasts for: ({e.duration:g}s): too short for {DEFAULT_FLAP_COUNT} "
                 "cycles of at least 0.02s", "make for: (or every:) longer")
    if (e.until - e.at) / e.every > MAX_STEPS:
        src.fail(f"{path}.every", f"{(e.until - e.at) / e.every:.0f} picks; at most {MAX_STEPS}",
                 "make every: longer or until: sooner")
    return e


# ---- against the plan: names, candidates, overlaps; the seeded expansion (pure) ------------------------------
def _resources(step: Step) -> set[str]:
    """What a step holds while it lasts: two steps holding one thing at the same time cannot both hold
    (one's end would undo the other: a heal ends every partition, a link up ends a flap's down)."""
    if step.kind == "partition":
        return {"partition"}
    if step.kind == "node-stop":
        return {f"node:{step.targets[0]}"}
    a, b = sorted(step.targets[:2])
    if step.kind == "impair":
        d = dict(step.params).get("dir", "both")
        if d in ("both",):
            return {f"impair:{a}->{b}", f"impair:{b}->{a}"}
        if d in ("A->B", "B->A"):
            s, t = step.targets[:2] if d == "A->B" else (step.targets[1], step.targets[0])
            return {f"impair:{s}->{t}"}
        return {f"impair:{d}"}
    return {f"link:{a}-{b}"}


def _overlap(x: Step, y: Step, horizon: float) -> bool:
    return x.at < y.end(horizon) and y.at < x.end(horizon) and bool(_resources(x) & _resources(y))


def _partitionable(plan: Plan) -> list[str]:
    return [n.name for n in plan.nodes if n.kind != "switch"]


def _check_nodes(src: _Src, plan: Plan, names: Sequence[str], path: str, partition: bool = False) -> None:
    known = {n.name: n for n in plan.nodes}
    for n in names:
        if n not in known:
            close = closest(n, list(known))
            src.fail(path, f"lab {plan.lab!r} has no node {n!r}", (f"did you mean {close!r}? " if close else "")
                     + "known nodes: " + ", ".join(list(known)[:20]))
        if partition and known[n].kind == "switch":
            src.fail(path, f"node {n!r} is a switch: it has no address to partition",
                     "partition hosts and routers; to cut a switch off, set its links down")


def _check_link(src: _Src, plan: Plan, a: str, b: str, iface: object, path: str) -> None:
    _check_nodes(src, plan, [a, b], path)
    try:
        fl.find_link(plan, a, b, iface if isinstance(iface, str) else None)
    except NslabError as exc:
        src.fail(path, exc.message, exc.hint)


def _fixed_step(src: _Src, plan: Plan, e: Entry) -> Step:
    path = f"faults[{e.index}].{e.kind}"
    a = e.args
    if e.kind == "partition":
        if "groups" in a:
            for j, g in enumerate(a["groups"]):
                _check_nodes(src, plan, g, f"{path}[{j}]", partition=True)
            targets: tuple[Any, ...] = (tuple(tuple(g) for g in a["groups"]),)
        else:
            _check_nodes(src, plan, a["from"], f"{path}.from", partition=True)
            _check_nodes(src, plan, a["to"], f"{path}.to", partition=True)
            if set(a["from"]) & set(a["to"]):
                src.fail(path, "a node cannot drop its own packets", "name different nodes in from: and to:")
            targets = ("oneway", tuple(a["from"]), tuple(a["to"]))
        return Step(e.at, e.kind, targets, e.duration, e.index, line=e.line)
    if e.kind == "node-stop":
        _check_nodes(src, plan, [a["node"]], path)
        return Step(e.at, e.kind, (a["node"],), e.duration, e.index, line=e.line)
    (x, y), iface = a["link"], a.get("iface")
    _check_link(src, plan, x, y, iface, f"{path}.link" if e.kind != "link-down" else path)
    params: tuple[tuple[str, Any], ...] = ()
    if e.kind == "flap":
        params = (("period", a["period"]), ("count", a["count"]))
    elif e.kind == "impair":
        try:
            fl.parse_direction(a["dir"], x, y)
        except UsageError as exc:
            src.fail(f"{path}.dir", exc.message, exc.hint)
        params = (("dir", a["dir"]), *sorted(a["values"].items()))
    return Step(e.at, e.kind, (x, y, iface), e.duration, e.index, params, e.line)


def _links(plan: Plan, nodes: Sequence[str] | None) -> list[tuple[str, str]]:
    """Candidate links of a random pick: one per pair of nodes (several links between two nodes: none of them,
    a fault names one by its two ends), with an end among NODES if given."""
    count: dict[tuple[str, str], int] = {}
    for lk in plan.links:
        count[(lk.a.node, lk.b.node)] = count.get((lk.a.node, lk.b.node), 0) + 1
    pairs = [p for p, c in count.items() if c == 1 and count.get((p[1], p[0]), 0) == 0]
    return [p for p in pairs if nodes is None or p[0] in nodes or p[1] in nodes]


def _candidates(plan: Plan, e: Entry, kind: str) -> list[Any]:
    pool = [n for n in (e.nodes if e.nodes is not None else _partitionable(plan))]
    if kind == "partition":
        part = [n for n in pool if plan.node(n).kind != "switch"]
        return [tuple(part)] if len(part) >= 2 else []
    if kind == "node-stop":
        return list(pool)
    return _links(plan, e.nodes)


def _random_steps(e: Entry, plan: Plan, seed: int, fixed: list[Step], horizon: float) -> list[Step]:
    rng = random.Random(f"nslab-schedule:{seed}:{e.index}")
    out: list[Step] = []
    duration = e.duration or e.every / 2
    n = 0
    while True:
        t = round(e.at + n * e.every, 6)
        n += 1
        if t >= e.until:
            break
        kinds = list(e.choices)
        rng.shuffle(kinds)
        placed = None
        for kind in kinds:
            cands = _candidates(plan, e, kind)
            rng.shuffle(cands)
            for c in cands:
                step = _random_step(rng, e, kind, c, t, duration)
                if not any(_overlap(step, other, horizon) for other in fixed + out):
                    placed = step
                    break
            if placed is not None:
                break
        if placed is not None:  # every candidate busy at this tick: the tick is skipped
            out.append(placed)
    return out


def _random_step(rng: random.Random, e: Entry, kind: str, c: Any, t: float, duration: float) -> Step:
    if kind == "partition":
        nodes = list(c)
        rng.shuffle(nodes)
        cut = rng.randint(1, len(nodes) - 1)
        groups = (tuple(sorted(nodes[:cut])), tuple(sorted(nodes[cut:])))
        return Step(t, kind, (groups,), duration, e.index, line=e.line)
    if kind == "node-stop":
        return Step(t, kind, (c,), duration, e.index, line=e.line)
    a, b = c
    if kind == "flap":
        period = round(duration / DEFAULT_FLAP_COUNT, 6)
        return Step(t, kind, (a, b, None), period * DEFAULT_FLAP_COUNT, e.index,
                    (("period", period), ("count", DEFAULT_FLAP_COUNT)), e.line)
    if kind == "impair":
        return Step(t, kind, (a, b, None), duration, e.index, (("dir", "both"), *sorted(e.args["impair"].items())),
                    e.line)
    return Step(t, kind, (a, b, None), duration, e.index, line=e.line)


def horizon_of(entries: Sequence[Entry]) -> float:
    """When the schedule ends (every fault still held is undone then): the latest end of a fault with a
    length (for:, a flap, a random entry's last pick). A fault without for: holds until then."""
    h = 0.0
    for e in entries:
        if e.kind == "random":
            h = max(h, e.until + (e.duration or 0.0))
        elif e.duration is not None:
            h = max(h, e.at + e.duration)
    return h


def check(entries: Sequence[Entry], plan: Plan, source: str = "<python>",
          lines: Mapping[str, int] | None = None) -> list[Step]:
    """The timed steps, checked against PLAN (names, links, overlaps), and every random entry's candidates."""
    src = _Src(source, lines)
    horizon = horizon_of(entries)
    fixed: list[Step] = []
    for e in entries:
        if e.kind == "random":
            if e.nodes is not None:
                _check_nodes(src, plan, e.nodes, f"faults[{e.index}].nodes")
            for j, kind in enumerate(e.choices):
                if not _candidates(plan, e, kind):
                    why = ("fewer than two hosts or routers to split" if kind == "partition" else
                           "no node" if kind == "node-stop" else "no link (between two nodes joined once)")
                    src.fail(f"faults[{e.index}].random[{j}]", f"{kind}: nothing to pick from in lab "
                             f"{plan.lab!r} ({why}{' among nodes:' if e.nodes is not None else ''})",
                             "remove it from random:, or widen nodes:")
            continue
        step = _fixed_step(src, plan, e)
        if e.duration is None and e.at >= horizon:
            src.fail(f"faults[{e.index}]", f"{step.what()} has no for: and starts when the schedule ends "
                     f"({horizon:g}s)", "give it a for: (a fault without one holds until the last end of a fault "
                     "with one), or start it earlier")
        for other in fixed:
            if _overlap(step, other, horizon):
                o_line = f" (line {other.line})" if other.line else ""
                src.fail(f"faults[{e.index}]",
                         f"{step.what()} from {step.at:g}s to {step.end(horizon):g}s overlaps faults[{other.entry}]"
                         f"{o_line}, {other.what()} from {other.at:g}s to {other.end(horizon):g}s: they cannot both "
                         "hold (the end of one would undo the other)",
                         "start one after the other ends, or act on another target")
        fixed.append(step)
    return fixed


def expand(entries: Sequence[Entry], plan: Plan, seed: int, source: str = "<python>",
           lines: Mapping[str, int] | None = None) -> list[Step]:
    """Every step of a run, sorted by time: the timed ones, and the random ones drawn with SEED (an entry's
    own seed: wins). Pure: same entries, plan and seed, same steps."""
    fixed = check(entries, plan, source, lines)
    horizon = horizon_of(entries)
    steps = list(fixed)
    for e in entries:
        if e.kind == "random":
            steps += _random_steps(e, plan, e.seed if e.seed is not None else seed, steps, horizon)
    if len(steps) > MAX_STEPS:
        _Src(source, lines).fail("faults", f"{len(steps)} faults; at most {MAX_STEPS}", "make the schedule shorter")
    return sorted(steps, key=lambda s: (s.at, s.entry))


@dataclass(frozen=True)
class Action:
    """One thing the runner does at time T (seconds from the run's start) for STEP."""

    t: float
    step: Step
    phase: str  # begin | end | down | up (a flap's transitions)
    order: int = 0

    def sort_key(self) -> tuple[float, int, int]:
        return (self.t, 0 if self.phase in ("end", "up") else 1, self.order)  # ends first: a heal before a cut


def actions(steps: Sequence[Step], horizon: float) -> list[Action]:
    out: list[Action] = []
    for k, s in enumerate(steps):
        if s.kind == "flap":
            p = dict(s.params)
            period, count = float(p["period"]), int(p["count"])
            out.append(Action(s.at, s, "begin", k))
            for c in range(count):
                if c:
                    out.append(Action(s.at + c * period, s, "down", k))
                out.append(Action(s.at + c * period + period / 2, s, "up", k))
            out.append(Action(s.at + count * period, s, "end", k))
        else:
            out.append(Action(s.at, s, "begin", k))
            out.append(Action(s.end(horizon), s, "end", k))
    return sorted(out, key=Action.sort_key)


# ---- a schedule: entries + where they came from -------------------------------------------------------------
@dataclass
class Schedule:
    entries: list[Entry]
    source: str = "<python>"
    lines: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, faults: Sequence[Mapping[str, Any]] | Schedule, source: str = "<python>") -> Schedule:
        if isinstance(faults, Schedule):
            return faults
        return cls(parse([dict(f) if isinstance(f, Mapping) else f for f in faults], source), source)

    def steps(self, plan: Plan, seed: int) -> list[Step]:
        return expand(self.entries, plan, seed, self.source, self.lines)

    @property
    def horizon(self) -> float:
        return horizon_of(self.entries)


def validate(topology: Any, plan: Plan) -> list[Step]:
    """A topology's `faults:` checked against its plan (for `Lab.from_file`, hence `lab validate` and `up`)."""
    entries = parse(topology.faults, topology.source, topology.fault_lines)
    return check(entries, plan, topology.source, topology.fault_lines)


def from_file(path: str) -> Schedule:
    """The `faults:` of a topology file, or of a file holding only `faults:`."""
    from .loader import parse_faults_file

    data, lines = parse_faults_file(path)
    return Schedule(parse(data, path, lines), path, lines)


# ---- running ------------------------------------------------------------------------------------------------
def new_seed() -> int:
    return secrets.randbelow(2**31)


def _pid_start(pid: int) -> int | None:
    return fl.start_time(pid)


def _load_run(lab: str) -> dict[str, Any] | None:
    try:
        with open(st.run_path(lab)) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (FileNotFoundError, ValueError):
        return None


def _save_run(lab: str, data: Mapping[str, Any]) -> None:
    path = st.run_path(lab)
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _drop_run(lab: str, run: str) -> None:
    data = _load_run(lab)
    if data is not None and data.get("run") == run:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(st.run_path(lab))


def _run_alive(data: Mapping[str, Any]) -> bool:
    pid = data.get("pid")
    return isinstance(pid, int) and _pid_start(pid) == data.get("pid_start") and _pid_start(pid) is not None


def running(lab: str) -> dict[str, Any] | None:
    """The record of the schedule running on LAB now (its process alive), or None."""
    data = _load_run(lab)
    return data if data is not None and _run_alive(data) else None


def repair_orphan(lab: LabView) -> dict[str, Any] | None:
    """A schedule run killed (SIGKILL) before it healed left its record: put the lab's faults back to what they
    were when it started, and say so in the timeline. Returns the run's record, or None if there was none."""
    data = _load_run(lab.name)
    if data is None or _run_alive(data):
        return None
    try:
        base = fl.FaultState.from_json(data["baseline"])
    except (KeyError, TypeError, ValueError, IndexError):
        base = fl.FaultState(lab.name)
    data["undid"] = undone(fl.load_state(lab.name), base)
    with ev.origin(ev.current_origin().by, run=str(data.get("run")), seed=data.get("seed")):
        fl.restore(lab, base)
        ev.append(lab.name, "schedule-repaired", result="ok",
                  detail={"how": "killed", "pid": data.get("pid"),
                          "note": "the runner was gone (killed); the faults it left were undone"})
    _drop_run(lab.name, str(data.get("run")))
    return data


def undone(now: fl.FaultState, base: fl.FaultState) -> list[str]:
    """What going back from NOW to BASE undoes, in words: "partition (h2 drops h1)", "link r1-r2 down", ..."""
    out: list[str] = []
    grudge = {k: sorted(set(v) - set(base.grudge.get(k, ()))) for k, v in now.grudge.items()}
    parts = [f"{k} drops {','.join(v)}" for k, v in sorted(grudge.items()) if v]
    if parts:
        out.append(f"partition ({'; '.join(parts)})")
    was_down = {tuple(k) for k in base.links_down}
    out += [f"link {k[0]}-{k[2]} down" for k in now.links_down if tuple(k) not in was_down]
    out += [f"node {n} stopped" for n in sorted(set(now.stopped) - set(base.stopped))]
    out += [f"impairment {k[0]}->{k[2]}" for k in sorted(now.impair)
            if base.impair.get(k) != now.impair[k]]
    return out


class Run:
    """One run of a schedule on a lab. In the foreground: `Run(...).run()` (the CLI: one loop in this thread).
    In the background: `with Run(...) as run: ...; run.wait()` (the Python API: the loop in a thread of
    nslab.threads, which blocks SIGINT and SIGTERM; the heal always runs in the caller's thread, shielded)."""

    def __init__(self, lab: LabView, schedule: Schedule, seed: int | None = None,
                 on_action: Callable[[Action, float], None] | None = None) -> None:
        self.lab = lab
        self.schedule = schedule
        self.seed = new_seed() if seed is None else seed
        self.steps = schedule.steps(lab.plan, self.seed)  # UsageError before anything starts
        self.horizon = schedule.horizon
        self.actions = actions(self.steps, self.horizon)
        self.run_id = f"r{os.getpid():x}{secrets.token_hex(2)}"
        self.on_action = on_action
        self.done: list[tuple[float, Action]] = []  # (when, action) as performed
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._active: dict[int, Step] = {}  # id(step) -> step, begun and not ended
        self._base: fl.FaultState | None = None
        self._t0 = 0.0
        self._finished = False

    # -- life cycle
    def start(self) -> None:
        """Record the run (its pid, its seed, the lab's faults to go back to) and its start in the timeline."""
        lab = self.lab.name
        repair_orphan(self.lab)
        other = running(lab)
        if other is not None:
            raise NslabError(f"lab {lab!r} already runs a fault schedule (run {other.get('run')}, pid "
                             f"{other.get('pid')})", "wait for it to end, or stop it (Ctrl-C in its terminal)")
        self._base = fl.load_state(lab)
        self._refuse_held(self._base)
        self._need_netem()
        pid = os.getpid()
        record = {"run": self.run_id, "lab": lab, "pid": pid, "pid_start": _pid_start(pid), "seed": self.seed,
                  "source": self.schedule.source, "started": time.time(), "baseline": self._base.to_json()}
        with st.locked(lab):
            if st.load(lab) is None:
                raise NslabError(f"no lab named {lab!r} is up", "start it with 'nslab lab up'")
            _save_run(lab, record)
        self._t0 = time.monotonic()
        with self._origin():
            ev.append(lab, "schedule-start",
                      detail={"source": self.schedule.source, "steps": len(self.steps), "seconds": self.horizon,
                              "pid_start": record["pid_start"]})

    def _refuse_held(self, base: fl.FaultState) -> None:
        """A link down or a node stopped before the run cannot be the target of one of its steps: the step's
        end would undo a fault that is not the schedule's."""
        down = {frozenset((k[0], k[2])) for k in base.links_down}
        for s in self.steps:
            if s.kind in ("link-down", "flap") and frozenset(s.targets[:2]) in down:
                raise UsageError(f"lab {self.lab.name!r}: link {s.targets[0]}-{s.targets[1]} is down already "
                                 f"(not by this schedule); faults[{s.entry}] would bring it up",
                                 f"bring it up first: 'nslab lab link {self.lab.name} {s.targets[0]} "
                                 f"{s.targets[1]} up'")
            if s.kind == "node-stop" and s.targets[0] in base.stopped:
                raise UsageError(f"lab {self.lab.name!r}: node {s.targets[0]} is stopped already (not by this "
                                 f"schedule); faults[{s.entry}] would start it",
                                 f"start it first: 'nslab lab node {self.lab.name} {s.targets[0]} start'")

    def _need_netem(self) -> None:
        """Probe netem once, before anything runs, if a step (timed, or a random pick) wants it: without it,
        FeatureMissing (exit 1), nothing done. With netem the probe passes and the schedule runs."""
        from ..netem import check_values, netem_wanted
        from .profiles import expand

        wanted: list[str] = []
        first: str | None = None
        for s in self.steps:
            if s.kind != "impair":
                continue
            values = {k: v for k, v in s.params if k != "dir"}
            if "profile" in values:
                values = expand(values, None, lambda k: k)
            for w in netem_wanted(check_values(values)):
                if w not in wanted:
                    wanted.append(w)
                    first = first or s.targets[0]
        if first is not None:
            try:
                fl.need_netem(self.lab.plan, first, wanted)
            except FeatureMissing as exc:
                raise FeatureMissing(f"lab {self.lab.name!r}: the fault schedule {self.schedule.source} impairs "
                                     f"with {', '.join(wanted)}, but {exc.message}", exc.hint) from None

    def _gone(self) -> bool:
        """The lab went down under the run: its state or this run's record removed."""
        lab = self.lab.name
        if st.load(lab) is None:
            return True
        data = _load_run(lab)
        return data is None or data.get("run") != self.run_id

    def _lab_gone(self) -> LabGone:
        return LabGone(f"lab {self.lab.name} went down: schedule stopped", "nothing is left to undo")

    @contextlib.contextmanager
    def _origin(self, step: Step | None = None, at: float | None = None) -> Iterator[None]:
        with ev.origin("schedule", run=self.run_id, seed=self.seed, step=None if step is None else step.entry,
                       line=None if step is None else step.line, at=at):
            yield

    def loop(self) -> None:
        """Perform the actions at their times, until the last or stop()."""
        for act in self.actions:
            while True:
                delay = self._t0 + act.t - time.monotonic()
                if delay > 0 and self._stop.wait(min(delay, GONE_POLL)):
                    return
                if self._gone():
                    raise self._lab_gone()
                if delay <= GONE_POLL:
                    break
            if self._stop.is_set():
                return
            try:
                self._perform(act)
            except BaseException as exc:
                if not isinstance(exc, KeyboardInterrupt) and self._gone():
                    raise self._lab_gone() from None
                raise

    def _perform(self, act: Action) -> None:
        s = act.step
        now = time.monotonic() - self._t0
        with self._origin(s, act.t):
            if act.phase == "begin":
                self._active[id(s)] = s
                if s.kind == "flap":
                    ev.append(self.lab.name, "flap-start", nodes=s.targets[:2], links=[s.targets[:2]],
                              detail=dict(s.params))
                    fl.link_state(self.lab, s.targets[0], s.targets[1], False, s.targets[2])
                else:
                    self._begin(s)
            elif act.phase in ("down", "up"):
                fl.link_state(self.lab, s.targets[0], s.targets[1], act.phase == "up", s.targets[2])
            else:
                self._end(s)
                self._active.pop(id(s), None)
                if s.kind == "flap":
                    ev.append(self.lab.name, "flap-end", nodes=s.targets[:2], links=[s.targets[:2]],
                              detail=dict(s.params))
        self.done.append((now, act))
        if self.on_action is not None:
            self.on_action(act, now)

    def _begin(self, s: Step) -> None:
        lab, t = self.lab, s.targets
        if s.kind == "partition":
            if t[0] == "oneway":
                fl.partition_oneway(lab, list(t[1]), list(t[2]))
            else:
                fl.partition(lab, [list(g) for g in t[0]])
        elif s.kind == "node-stop":
            fl.node_stop(lab, t[0])
        elif s.kind == "link-down":
            fl.link_state(lab, t[0], t[1], False, t[2])
        elif s.kind == "impair":
            p = dict(s.params)
            direction = p.pop("dir", "both")
            fl.impair(lab, t[0], t[1], direction, iface=t[2], **p)

    def _end(self, s: Step) -> None:
        lab, t, base = self.lab, s.targets, self._base or fl.FaultState(self.lab.name)
        if s.kind == "partition":
            if base.grudge:
                fl.restore(lab, _with(fl.load_state(lab.name), grudge=base.grudge))
            else:
                fl.heal(lab)
        elif s.kind == "node-stop":
            fl.node_start(lab, t[0])
        elif s.kind in ("link-down", "flap"):
            fl.link_state(lab, t[0], t[1], True, t[2])
        elif s.kind == "impair":
            direction = dict(s.params).get("dir", "both")
            keys = _impair_keys(lab.plan, t[0], t[1], direction, t[2])
            if any(k in base.impair for k in keys):
                cur = fl.load_state(lab.name)
                for k in keys:
                    if k in base.impair:
                        cur.impair[k] = base.impair[k]
                    else:
                        cur.impair.pop(k, None)
                fl.restore(lab, cur)
            else:
                fl.clear(lab, t[0], t[1], direction, t[2])

    def stop(self) -> None:
        self._stop.set()

    def finish(self, how: str) -> None:
        """Undo what the run still holds: the lab's faults back to what they were at its start, every node
        read back (faults.restore); then the timeline's schedule-end. Idempotent."""
        if self._finished:
            return
        self._finished = True
        lab = self.lab.name
        if isinstance(self.error, LabGone) or self._gone():
            return  # the lab is gone, and its timeline and this run's record with it: nothing to undo or write
        error = None
        drift: list[str] = []
        try:
            with self._origin():
                fl.restore(self.lab, self._base or fl.FaultState(lab))
            with contextlib.suppress(NslabError, OSError):
                drift = _drift(self.lab)
        except BaseException as exc:
            error = exc
        with self._origin():
            detail: dict[str, Any] = {"how": how, "performed": len(self.done), "of": len(self.actions),
                                      "seconds": round(time.monotonic() - self._t0, 3)}
            if drift:
                detail["drift"] = drift[:20]
            if self.error is not None:
                detail["cause"] = str(self.error) or type(self.error).__name__
            ev.append(lab, "schedule-end", result="ok" if error is None else "failed", detail=detail,
                      error=None if error is None else (str(error) or type(error).__name__))
        if error is None:
            _drop_run(lab, self.run_id)  # else left for repair_orphan: `lab heal` retries the restore
        else:
            raise error

    def run(self, on_start: Callable[[], None] | None = None) -> None:
        """In the foreground: start (every check; then ON_START, e.g. the CLI's "running" line), perform every
        action, and always finish (heal), shielded from a second signal. A SIGINT/SIGTERM (KeyboardInterrupt)
        or a failed step stops it; the heal runs, then it is raised again."""
        from ..shield import run_cleanup

        self.start()
        if on_start is not None:
            on_start()
        how = "completed"
        try:
            self.loop()
        except KeyboardInterrupt:
            how = "interrupted"
            raise
        except BaseException as exc:
            how = "failed"
            self.error = exc
            raise
        finally:
            run_cleanup(lambda: self.finish(how))

    # -- in the background
    def __enter__(self) -> Run:
        from .. import threads

        self.start()
        self._thread = threads.start(self._background, name=f"nslab-schedule-{self.lab.name}")
        return self

    def _background(self) -> None:
        try:
            self.loop()
        except BaseException as exc:  # reported by wait() / __exit__, in the caller's thread
            self.error = exc

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the schedule has run to its end (or TIMEOUT s), then heal; raise what a step raised."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the fault schedule of lab {self.lab.name!r} is still running after {timeout} s")
        self._close("failed" if self.error is not None else "completed")

    def __exit__(self, *exc: object) -> None:
        stopped = self._thread is not None and self._thread.is_alive()
        self.stop()
        err = exc[1]
        how = ("failed" if self.error is not None else "interrupted" if isinstance(err, KeyboardInterrupt)
               else f"stopped: the block raised {type(err).__name__}" if isinstance(err, BaseException)
               else "stopped" if stopped else "completed")
        self._close(how)

    def _close(self, how: str) -> None:
        from ..shield import run_cleanup

        def close() -> None:
            if self._thread is not None:
                self._thread.join()
            self.finish(how)

        run_cleanup(close)
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0


def _with(state: fl.FaultState, grudge: Mapping[str, Sequence[str]]) -> fl.FaultState:
    out = state.copy()
    out.grudge = {k: list(v) for k, v in grudge.items()}
    return out


def _impair_keys(plan: Plan, a: str, b: str, direction: str, iface: str | None) -> list[tuple[str, str, str, str]]:
    ea, eb = fl.find_link(plan, a, b, iface)
    ends = {a: ea, b: eb}
    return [(s, ends[s].ifname, d, ends[d].ifname) for s, d in fl.parse_direction(direction, a, b)]


def _drift(lab: LabView) -> list[str]:
    from . import reconcile

    plan = lab.plan
    state = fl.load_state(lab.name)
    rep = reconcile.reconcile(plan, fl.view(plan, state), None, dry_run=True)
    return rep.lines()
