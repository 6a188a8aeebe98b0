"""`nslab lab events|run-faults`: a lab's fault timeline, and running a fault schedule in the foreground
(docs/schedules.md).

`register(verbs)` adds them to the lab object's verb sub-parsers (the ones `nslab/cli/lab.py` makes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..errors import NotFoundError, UsageError
from ..lab import events as ev
from ..lab import state as st
from .common import ascii_arg, emit_json, file_arg, int_arg, lab_arg, verb_parser

FOLLOW_POLL = 0.2  # seconds between two looks at the timeline with -f


def register(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = verb_parser(verbs, "events", "the lab's fault timeline: every partition, heal, link, node and impair "
                                     "change, by whom (cli, python, schedule + seed), and its result")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("--since", metavar="T", type=ascii_arg("--since", ev.parse_since),
                   help="only events from T on: an age (30s, 5m, 2h) or an ISO time (2026-12-01T15:00:00, UTC)")
    p.add_argument("-f", "--follow", action="store_true", help="then print new events as they come (Ctrl-C ends)")
    p.set_defaults(handler=events)
    p = verb_parser(verbs, "run-faults", "run a fault schedule on a lab in the foreground (the file's faults:); "
                                         "every fault is undone at its end, and on Ctrl-C")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("file", metavar="FILE", nargs="?", type=file_arg("FILE"),
                   help="a file with a faults: list (default: the lab's own topology file)")
    p.add_argument("--seed", type=int_arg("--seed", 0, 2**63 - 1), metavar="N",
                   help="seed of the random picks (default: a new one, printed): the same seed replays a run")
    p.add_argument("--dry-run", action="store_true",
                   help="print the faults the schedule would make (time, fault, targets) and change nothing")
    p.set_defaults(handler=run_faults)


def events(args: argparse.Namespace) -> int:
    if st.load(args.name) is None:
        raise NotFoundError(f"no lab named {args.name!r} is up", "see 'nslab lab list'")
    when = ev.parse_since(args.since) if args.since else None
    shown = ev.read(args.name)
    out = ev.since(shown, when) if when is not None else shown
    if args.json and not args.follow:
        emit_json({"lab": args.name, "events": list(out), "runs": ev.runs(shown)})
        return 0
    if args.json:
        for e in out:
            print(json.dumps(e), flush=True)
    else:
        print(ev.format_table(out) if out else f"lab {args.name}: no fault events"
              + (" in that time" if when is not None else ""))
        for note in ev.notes(shown, args.name):
            print(note)
        sys.stdout.flush()
    if not args.follow:
        return 0
    return _follow(args, shown)


def _follow(args: argparse.Namespace, seen: list[dict[str, Any]]) -> int:
    """Print each new event as a line (or JSON line), until the lab goes down or Ctrl-C."""
    last = seen[-1] if seen else None
    while True:
        time.sleep(FOLLOW_POLL)
        if st.load(args.name) is None:
            print(f"lab {args.name} is down", file=sys.stderr)
            return 0
        now = ev.read(args.name)
        start = 0
        if last is not None:
            # The last event printed, found again (the file may have been trimmed: its older half dropped).
            start = next((i + 1 for i in range(len(now) - 1, -1, -1) if now[i] == last), 0)
        for e in now[start:]:
            print(json.dumps(e) if args.json else ev.format_line(e), flush=True)
        if now[start:]:
            last = now[-1]


def run_faults(args: argparse.Namespace) -> int:
    from ..lab.lab import Lab
    from ..lab.schedule import Action, Run, from_file

    try:
        lab = Lab.attach(args.name)
    except NotFoundError:
        if not (args.dry_run and args.file):
            raise
        lab = Lab.from_file(args.file, args.name)  # a dry run of a topology file's own schedule: no lab needed
    source = args.file or lab.source
    if source is None:
        raise UsageError(f"lab {args.name!r} was made from a built-in topology: it has no file with faults:",
                         f"give a file: 'nslab lab run-faults {args.name} FILE' (docs/schedules.md)")
    sched = from_file(source)

    def said(act: Action, at: float) -> None:
        if act.phase in ("down", "up"):
            what = f"link {act.step.targets[0]}-{act.step.targets[1]} {act.phase} (flap)"
        else:
            what = ("start " if act.phase == "begin" else "end ") + act.step.what()
        if args.json:
            emit_json({"t": round(at, 3), "planned": round(act.t, 3), "phase": act.phase, "fault": act.step.kind,
                       "what": act.step.what(), "entry": act.step.entry})
        else:
            print(f"+{at:7.3f}s  {what}  (faults[{act.step.entry}]"
                  + (f", line {act.step.line})" if act.step.line else ")"), flush=True)

    run = Run(lab, sched, args.seed, on_action=said)
    if args.dry_run:
        steps = [s.to_json() for s in run.steps]
        if args.json:
            emit_json({"lab": args.name, "seed": run.seed, "seconds": run.horizon, "steps": steps})
        else:
            print(f"lab {args.name}: schedule {source}, seed {run.seed}, {len(steps)} faults over "
                  f"{run.horizon:g} s (nothing done: --dry-run)")
            for s in run.steps:
                end = f"for {s.duration:g}s" if s.duration is not None else "until the end"
                print(f"  +{s.at:8.3f}s  {s.what()}  {end}  (faults[{s.entry}])")
        return 0
    def started() -> None:  # printed once every check passed (a refused run prints only why)
        if not args.json:
            print(f"lab {args.name}: running {len(run.steps)} faults over {run.horizon:g} s from {source}, "
                  f"seed {run.seed} (replay: --seed {run.seed}); Ctrl-C stops and heals", flush=True)

    try:
        run.run(on_start=started)
    except KeyboardInterrupt:
        print(f"lab {args.name}: schedule stopped; every fault it made was undone (seed {run.seed})",
              file=sys.stderr)
        raise
    result: dict[str, Any] = {"lab": args.name, "seed": run.seed, "run": run.run_id, "performed": len(run.done),
                              "ok": True}
    if args.json:
        emit_json(result)
    else:
        print(f"lab {args.name}: schedule done, {len(run.done)} actions, every fault undone (seed {run.seed})")
    return 0
