"""A lab's fault timeline: every fault change (partition, heal, link down/up, flap, node stop/start, impair
set/clear, a schedule's start and end), whoever made it, appended as one JSON line to
/run/nslab/labs/LAB.events.jsonl (next to the lab's record; removed with it by `lab down`).

Each line: time (UTC wall clock, ISO 8601) and offset (seconds since the lab came up, CLOCK_MONOTONIC, so
lines of several processes compare), what (the action), where (nodes and links), who (cli, python or
schedule; with the schedule's run id, seed and step) and the result (ok, failed, interrupted).

Appending does not take the lab's lock: the fault calls hold it already (an flock is not re-entrant), and
an event must be written also when the change failed. Each line is ONE write(2) to a file opened O_APPEND,
so lines of concurrent writers never interleave. The file is bounded (MAX_BYTES): a writer that finds it
larger keeps the newer half, rewriting it to a temporary file renamed over it, under an flock of the file
itself (so two writers never both trim, and a line written meanwhile is not lost: see _append).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import fcntl
import functools
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from . import state as st

MAX_BYTES = 1 << 20  # ~5000 events; then the older half goes
MAX_LINE = 8192  # one event's JSON; longer details are cut (an error message quoting a huge nft script)
VERSION = 1

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Origin:
    """Who makes the fault changes of this thread (or context) now."""

    by: str = "python"  # cli | python | schedule
    run: str | None = None  # a schedule run's id
    seed: int | None = None
    step: int | None = None  # the schedule entry's index in its list (faults[i])
    line: int | None = None  # that entry's line in its file
    at: float | None = None  # when the schedule planned it (seconds from the run's start)


_origin: contextvars.ContextVar[Origin] = contextvars.ContextVar(
    "nslab_event_origin", default=Origin())  # noqa: B039  (frozen: never changed in place)
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("nslab_event_inside", default=False)


@contextlib.contextmanager
def origin(by: str, **kw: Any) -> Iterator[Origin]:
    """Fault changes made inside the block are recorded as BY's (cli, python, schedule)."""
    o = Origin(by, **kw)
    token = _origin.set(o)
    try:
        yield o
    finally:
        _origin.reset(token)


def current_origin() -> Origin:
    return _origin.get()


# ---- writing ------------------------------------------------------------------------------------------------
def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _offset(rec: st.LabState | None, mono: float) -> float | None:
    if rec is None or not rec.created_mono:
        return None
    return round(mono - rec.created_mono, 3)


_records: dict[str, tuple[tuple[int, int, int, int], st.LabState]] = {}  # lab -> (its record file's identity, record)


def _record(lab: str) -> st.LabState | None:
    """The lab's record, parsed again only when its file changed (a large lab's record is a large JSON file and
    the record is read for every event)."""
    try:
        info = os.stat(os.path.join(st.STATE_DIR, f"{st.check_name(lab)}.json"))
    except FileNotFoundError:
        _records.pop(lab, None)
        return None
    key = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
    hit = _records.get(lab)
    if hit is not None and hit[0] == key:
        return hit[1]
    rec = st.load(lab)
    if rec is None:
        return None
    if len(_records) > 64:
        _records.clear()
    _records[lab] = (key, rec)
    return rec


def make(lab: str, action: str, *, nodes: Sequence[str] = (), links: Sequence[Sequence[str]] = (),
         detail: Mapping[str, Any] | None = None, result: str = "ok", error: str | None = None,
         mono: float | None = None, wall: str | None = None, took: float | None = None,
         who: Origin | None = None, rec: st.LabState | None = None) -> dict[str, Any]:
    """One event as a dict (pure but for the clock when MONO/WALL are not given)."""
    o = who or _origin.get()
    m = time.monotonic() if mono is None else mono
    ev: dict[str, Any] = {"v": VERSION, "time": wall or _now_iso(), "offset": _offset(rec, m), "action": action,
                          "nodes": list(nodes), "links": [list(lk) for lk in links], "by": o.by,
                          "pid": os.getpid(), "result": result}
    if detail:
        ev["detail"] = dict(detail)
    if took is not None:
        ev["took"] = round(took, 3)
    for key in ("run", "seed", "step", "line", "at"):
        value = getattr(o, key)
        if value is not None:
            ev[key] = value
    if error:
        ev["error"] = error
    return ev


def append(lab: str, action: str, **kw: Any) -> dict[str, Any] | None:
    """Record one event of LAB (see `make`). Nothing is written for a lab that is not up (no record): its
    timeline would outlive it. Never raises for the timeline's sake: a fault change that succeeded is not
    turned into a failure because /run is full."""
    rec = _record(lab)
    if rec is None:
        return None
    ev = make(lab, action, rec=rec, **kw)
    line = json.dumps(ev, separators=(",", ":"), default=str)
    if len(line) > MAX_LINE:
        ev.pop("detail", None)
        ev["error"] = (ev.get("error") or "")[:1000]
        ev["cut"] = True
        line = json.dumps(ev, separators=(",", ":"), default=str)
    with contextlib.suppress(OSError):
        _append(st.events_path(lab), line + "\n")
    return ev


def _append(path: str, line: str) -> None:
    data = line.encode()
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A trimmer renamed a new file over the one we opened: write to the new one (as state.locked()).
            try:
                if not os.path.samestat(os.fstat(fd), os.stat(path)):
                    continue
            except FileNotFoundError:  # the lab went down meanwhile: its timeline is gone with it
                return
            os.write(fd, data)
            if os.fstat(fd).st_size > MAX_BYTES:
                _trim(path)
            return
        finally:
            os.close(fd)


def _trim(path: str) -> None:
    """Keep the newer half of the file (whole lines), with a first line saying how many were dropped."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.splitlines(keepends=True)
    keep: list[bytes] = []
    size = 0
    for ln in reversed(lines):
        if size + len(ln) > MAX_BYTES // 2:
            break
        keep.append(ln)
        size += len(ln)
    keep.reverse()
    dropped = len(lines) - len(keep)
    note = json.dumps({"v": VERSION, "time": _now_iso(), "offset": None, "action": "timeline-trimmed",
                       "nodes": [], "links": [], "by": "nslab", "pid": os.getpid(), "result": "ok",
                       "detail": {"dropped": dropped}}, separators=(",", ":")) + "\n"
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(note.encode() + b"".join(keep))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def recorded(describe: Callable[..., tuple[str, Mapping[str, Any]]], *, inner: bool = False,
             begin: str | None = None) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorate a fault function `fn(lab, ...)`: its call is recorded as one event once it returns or raises
    (at the time it started, with how long it took and its result). DESCRIBE(*args, **kwargs) gives
    (action, {"nodes": [...], "links": [[a, b]], "detail": {...}}). A call made inside another recorded call
    (partition -> grudge) is part of it and not recorded again, unless the outer one says INNER (flap: each
    link transition is a fault change of its own); BEGIN records an event at the start too (flap-start)."""

    def wrap(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            if _inside.get():
                return fn(*args, **kwargs)
            lab = args[0]
            name = lab if isinstance(lab, str) else str(getattr(lab, "name", ""))
            try:
                action, where = describe(*args, **kwargs)
            except Exception:  # a malformed call: fn itself will say what is wrong
                action, where = fn.__name__.replace("_", "-"), {}
            wall, mono = _now_iso(), time.monotonic()
            if begin is not None:
                append(name, begin, **where)
            token = _inside.set(not inner)
            try:
                out = fn(*args, **kwargs)
            except BaseException as exc:
                _inside.reset(token)
                result = "failed" if isinstance(exc, Exception) else "interrupted"
                append(name, action, **where, result=result, error=str(exc) or type(exc).__name__, wall=wall,
                       mono=mono, took=time.monotonic() - mono)
                raise
            _inside.reset(token)
            append(name, action, **where, wall=wall, mono=mono, took=time.monotonic() - mono)
            return out

        return call

    return wrap


# ---- reading ------------------------------------------------------------------------------------------------
def read(lab: str) -> list[dict[str, Any]]:
    """The events of LAB, oldest first (lines that do not parse are skipped)."""
    try:
        with open(st.events_path(lab), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return parse(data)


def parse(data: bytes) -> list[dict[str, Any]]:
    out = []
    for ln in data.splitlines():
        try:
            ev = json.loads(ln)
        except ValueError:
            continue
        if isinstance(ev, dict) and isinstance(ev.get("action"), str):
            out.append(ev)
    return out


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """`--since`: an age ('30s', '5m', '2h', '1d') or an ISO time ('2026-12-01T15:00:00', UTC unless it says
    otherwise) -> the UTC time from which events are shown. Pure given NOW."""
    from ..errors import UsageError

    t = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if t and t[-1] in units and t[:-1].replace(".", "", 1).isdigit() and t.isascii():
        base = now or dt.datetime.now(dt.UTC)
        return base - dt.timedelta(seconds=float(t[:-1]) * units[t[-1]])
    try:
        when = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"invalid --since {text!r}",
                         "give an age (30s, 5m, 2h, 1d) or an ISO time (2026-12-01T15:00:00)") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def since(events: Sequence[Mapping[str, Any]], when: dt.datetime) -> list[Mapping[str, Any]]:
    out = []
    for ev in events:
        try:
            t = dt.datetime.fromisoformat(str(ev["time"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            continue
        if t >= when:
            out.append(ev)
    return out


def where_text(ev: Mapping[str, Any]) -> str:
    """Where an event acted, in a few words: links as a-b, then nodes; groups of a partition as a,b / c
    (not |, the table's column separator)."""
    detail = ev.get("detail") or {}
    if isinstance(detail, Mapping) and detail.get("groups"):
        return " / ".join(",".join(g) for g in detail["groups"])
    parts = ["-".join(str(x) for x in lk) for lk in ev.get("links") or []]
    if not parts:
        parts = [str(n) for n in ev.get("nodes") or []]
    return ", ".join(parts)


def who_text(ev: Mapping[str, Any]) -> str:
    out = str(ev.get("by", "?"))
    if ev.get("run"):
        out += f" {ev['run']}"
    if ev.get("seed") is not None:
        out += f" seed={ev['seed']}"
    if ev.get("step") is not None:
        out += f" step={ev['step']}"
    return out


def detail_text(ev: Mapping[str, Any]) -> str:
    detail = ev.get("detail") or {}
    bits = [f"{k}={v}" for k, v in detail.items() if k != "groups"] if isinstance(detail, Mapping) else []
    if ev.get("error"):
        bits.append(f"error: {ev['error']}")
    return " ".join(bits)


def rows(events: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for ev in events:
        off = ev.get("offset")
        t = str(ev.get("time", ""))
        out.append((t[11:23] if len(t) >= 23 else t, f"{off:.3f}" if isinstance(off, int | float) else "",
                    str(ev.get("action", "")), where_text(ev), who_text(ev), str(ev.get("result", "")),
                    detail_text(ev)))
    return out


HEADER = ("Time (UTC)", "+s (up)", "What", "Where", "Who", "Result", "Detail")


def format_table(events: Sequence[Mapping[str, Any]], header: bool = True) -> str:
    """An ASCII table as the other lab views draw it (+---+ borders), one line per event."""
    body = rows(events)
    widths = [max(len(c) for c in col) for col in zip(HEADER, *body, strict=True)]
    widths[-1] = min(widths[-1], 100)

    def line(cells: tuple[str, ...]) -> str:
        cut = (*cells[:-1], cells[-1][:97] + "..." if len(cells[-1]) > 100 else cells[-1])
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cut, widths, strict=True)) + " |"

    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [rule, line(HEADER), rule] if header else []
    out += [line(b) for b in body]
    if header:
        out.append(rule)
    return "\n".join(out)


def format_line(ev: Mapping[str, Any]) -> str:
    """One event as a line (what `lab events -f` and `run-faults` print as they happen)."""
    (t, off, what, where, who, result, detail), = rows([ev])
    return " ".join(x for x in (t, f"+{off}s" if off else "", what, where, f"[{who}]", result, detail) if x)


# ---- schedule runs: which ended, which were cut off ------------------------------------------------------------
def runs(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The schedule runs the timeline shows: {run, seed, pid, started, ended: event or None, state}, where
    state is 'running' (no end yet, its process alive), 'killed' (no end and its process gone: kill -9, so its
    faults may still be in place), 'repaired' (killed, then undone by `lab heal` / `lab up` / the next run), or
    how it ended: completed, stopped, interrupted (SIGINT/SIGTERM: healed), failed (a step failed: healed)."""
    found: dict[str, dict[str, Any]] = {}
    for ev in events:
        run = ev.get("run")
        if not isinstance(run, str):
            continue
        if ev.get("action") == "schedule-start":
            found[run] = {"run": run, "seed": ev.get("seed"), "pid": ev.get("pid"), "started": ev.get("time"),
                          "ended": None, "state": "running", "detail": ev.get("detail") or {}}
        elif ev.get("action") in ("schedule-end", "schedule-repaired") and run in found:
            found[run]["ended"] = ev
            found[run]["state"] = ("repaired" if ev.get("action") == "schedule-repaired"
                                   else str((ev.get("detail") or {}).get("how", ev.get("result"))))
    for r in found.values():
        if r["ended"] is None and not _alive(r["pid"], (r["detail"] or {}).get("pid_start")):
            r["state"] = "killed"
    return list(found.values())


def _alive(pid: object, start: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return start is None or (len(fields) > 19 and fields[19] == str(start))


def notes(events: Sequence[Mapping[str, Any]], lab: str) -> list[str]:
    """Lines saying which schedule runs were cut off, and how to put the lab back and replay them."""
    out = []
    for r in runs(events):
        if r["state"] == "killed":
            out.append(f"schedule run {r['run']} (pid {r['pid']}, seed {r['seed']}) was cut off: its process is gone "
                       f"and it did not undo its faults; 'nslab lab heal {lab}' or 'nslab lab up' undoes what it left")
    return out


# ---- what each fault call of nslab.faults is, for `recorded` (same signatures as the functions) ----------------
Where = tuple[str, dict[str, Any]]


def _given(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def on_link_state(lab: object, a: str, b: str, up: bool, iface: str | None = None) -> Where:
    return ("link-up" if up else "link-down"), {"nodes": [a, b], "links": [[a, b]], "detail": _given(iface=iface)}


def on_flap(lab: object, a: str, b: str, period: float, count: int, iface: str | None = None) -> Where:
    return "flap-end", {"nodes": [a, b], "links": [[a, b]],
                        "detail": _given(period=period, count=count, iface=iface)}


def on_node_stop(lab: object, node: str) -> Where:
    return "node-stop", {"nodes": [node]}


def on_node_start(lab: object, node: str) -> Where:
    return "node-start", {"nodes": [node]}


def on_grudge(lab: object, mapping: Mapping[str, Sequence[str]]) -> Where:
    clean = {k: sorted(set(v)) for k, v in mapping.items()}
    nodes = sorted(set(clean) | {s for v in clean.values() for s in v})
    return "partition", {"nodes": nodes, "detail": {"grudge": clean}}


def on_partition(lab: object, groups: Sequence[Sequence[str]]) -> Where:
    gs = [list(g) for g in groups]
    return "partition", {"nodes": [n for g in gs for n in g], "detail": {"groups": gs}}


def on_partition_oneway(lab: object, src: str | Sequence[str], dst: str | Sequence[str]) -> Where:
    s = [src] if isinstance(src, str) else list(src)
    d = [dst] if isinstance(dst, str) else list(dst)
    return "partition", {"nodes": s + d, "detail": {"from": s, "to": d}}


def on_heal(lab: object) -> Where:
    return "heal", {}


def on_impair(lab: object, a: str, b: str, direction: str | None = "both", **kw: Any) -> Where:
    iface = kw.pop("iface", None)
    return "impair", {"nodes": [a, b], "links": [[a, b]],
                      "detail": {"dir": direction or "both", **_given(iface=iface, **kw)}}


def on_clear(lab: object, a: str, b: str, direction: str | None = "both", iface: str | None = None) -> Where:
    return "impair-clear", {"nodes": [a, b], "links": [[a, b]],
                            "detail": {"dir": direction or "both", **_given(iface=iface)}}


def on_clear_all(lab: object) -> Where:
    return "clear-all", {}


def on_restore(lab: object, state: object) -> Where:
    return "restore", {}
