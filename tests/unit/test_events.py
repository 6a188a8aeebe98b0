"""The fault timeline, without root: events as written and read back (the state directory moved to a temporary
one), who made a change, nested calls recorded once, bounded size, `--since`, and which schedule runs were
cut off."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nslab.errors import UsageError
from nslab.lab import events as ev
from nslab.lab import state as st


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(st, "STATE_DIR", str(tmp_path))
    st.save(st.LabState(lab="tl", status="up", pid=os.getpid(), created=time.time(),
                        created_mono=time.monotonic() - 10))
    return "tl"


def test_an_event_has_time_offset_what_where_who_and_result(lab: str) -> None:
    with ev.origin("schedule", run="r1", seed=42, step=3, line=7, at=2.0):
        ev.append(lab, "partition", nodes=["h1", "h2"], detail={"groups": [["h1"], ["h2"]]})
    ev.append(lab, "link-down", nodes=["r1", "r2"], links=[["r1", "r2"]], result="failed", error="boom")
    (a, b) = ev.read(lab)
    assert a["action"] == "partition" and a["by"] == "schedule" and (a["run"], a["seed"], a["step"]) == ("r1", 42, 3)
    assert a["line"] == 7 and a["at"] == 2.0 and a["result"] == "ok" and a["pid"] == os.getpid()
    assert 10 <= a["offset"] < 60  # seconds since the lab came up (monotonic)
    assert dt.datetime.fromisoformat(a["time"].replace("Z", "+00:00")).tzinfo is not None
    assert b["by"] == "python" and b["result"] == "failed" and b["error"] == "boom" and "run" not in b
    table = ev.format_table([a, b])
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in rows}) == 1  # a partition's groups do not add a column
    assert "h1 / h2" in table and "r1-r2" in table and "schedule r1 seed=42 step=3" in table and "error: boom" in table


def test_no_timeline_for_a_lab_that_is_not_up(lab: str) -> None:
    assert ev.append("other", "heal") is None
    assert not os.path.exists(st.events_path("other"))


def test_a_recorded_call_is_one_event_and_its_nested_calls_none(lab: str) -> None:
    @ev.recorded(lambda name, groups: ("partition", {"nodes": [n for g in groups for n in g]}))
    def inner(name: str, groups: list[list[str]]) -> None:
        pass

    @ev.recorded(lambda name: ("outer", {}))
    def outer(name: str) -> None:
        inner(name, [["a"], ["b"]])

    @ev.recorded(lambda name: ("flap-end", {}), inner=True, begin="flap-start")
    def flap(name: str) -> None:
        inner(name, [["c"], ["d"]])

    @ev.recorded(lambda name: ("boom", {}))
    def boom(name: str) -> None:
        raise ValueError("refused")

    outer(lab)
    flap(lab)
    with pytest.raises(ValueError):
        boom(lab)
    got = [(e["action"], e["result"]) for e in ev.read(lab)]
    assert got == [("outer", "ok"), ("flap-start", "ok"), ("partition", "ok"), ("flap-end", "ok"),
                   ("boom", "failed")]
    assert all("took" in e for e in ev.read(lab) if e["action"] != "flap-start")


def test_the_timeline_is_bounded_and_keeps_the_newest(lab: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ev, "MAX_BYTES", 20_000)
    for i in range(400):
        ev.append(lab, "heal", detail={"i": i})
    size = os.path.getsize(st.events_path(lab))
    assert size <= 20_000 + ev.MAX_LINE
    got = ev.read(lab)
    assert got[0]["action"] == "timeline-trimmed" and got[0]["detail"]["dropped"] > 0
    assert got[-1]["detail"] == {"i": 399} and [e["detail"]["i"] for e in got[1:]] == list(range(400 - len(got) + 1,
                                                                                                     400))


def test_a_huge_detail_is_cut_to_a_bounded_line(lab: str) -> None:
    ev.append(lab, "impair", detail={"x": "y" * 100_000}, error="e" * 5000)
    (e,) = ev.read(lab)
    assert e["cut"] and "detail" not in e and len(e["error"]) == 1000


def test_concurrent_writers_never_interleave_lines(lab: str, tmp_path: Path) -> None:
    code = ("import sys, os; sys.path[:0] = [sys.argv[1]]; from nslab.lab import state as st, events as ev; "
            "st.STATE_DIR = sys.argv[2]\nfor i in range(200): ev.append('tl', 'heal', detail={'w': os.getpid(), "
            "'i': i, 'pad': 'x' * 500})")
    repo = str(Path(__file__).parents[2])
    procs = [subprocess.Popen([sys.executable, "-c", code, repo, str(tmp_path)]) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    with open(st.events_path(lab), "rb") as f:
        lines = f.read().splitlines()
    assert len(lines) == 800 and all(json.loads(ln)["action"] == "heal" for ln in lines)


def test_since_takes_an_age_or_an_iso_time() -> None:
    now = dt.datetime(2026, 12, 1, 16, 0, 0, tzinfo=dt.UTC)
    assert ev.parse_since("30s", now) == now - dt.timedelta(seconds=30)
    assert ev.parse_since("5m", now) == now - dt.timedelta(minutes=5)
    assert ev.parse_since("2026-12-01T15:00:00", now) == dt.datetime(2026, 12, 1, 15, tzinfo=dt.UTC)
    for bad in ("yesterday", "-5m", "5x", ""):
        with pytest.raises(UsageError, match="invalid --since"):
            ev.parse_since(bad, now)
    evs = [{"time": "2026-12-01T15:59:00.000Z", "action": "a"}, {"time": "2026-12-01T15:59:45.000Z", "action": "b"}]
    assert [e["action"] for e in ev.since(evs, ev.parse_since("30s", now))] == ["b"]


def test_runs_tell_completed_interrupted_and_cut_off_ones() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = os.getpid()
    with open(f"/proc/{me}/stat") as f:
        start = int(f.read().rsplit(")", 1)[1].split()[19])
    evs = [
        {"action": "schedule-start", "run": "ok1", "pid": me, "seed": 1, "detail": {"pid_start": start}},
        {"action": "schedule-end", "run": "ok1", "result": "ok", "detail": {"how": "interrupted"}},
        {"action": "schedule-start", "run": "gone", "pid": dead.pid, "seed": 2, "detail": {"pid_start": 1}},
        {"action": "schedule-start", "run": "live", "pid": me, "seed": 3, "detail": {"pid_start": start}},
        {"action": "schedule-start", "run": "reused", "pid": me, "seed": 4, "detail": {"pid_start": start + 1}},
    ]
    assert {r["run"]: r["state"] for r in ev.runs(evs)} == {"ok1": "interrupted", "gone": "killed", "live": "running",
                                                           "reused": "killed"}
    notes = ev.notes(evs, "lab1")
    assert len(notes) == 2 and "seed 2" in notes[0] and "'nslab lab heal lab1'" in notes[0]
