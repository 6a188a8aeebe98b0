"""How close a fault schedule keeps to its plan: when each change began (the lab's timeline) minus when the
schedule planned it, and how long a change takes, on a ring,3 lab.

  python bench/bench_schedule.py [--quick]

A random schedule (partition, node-stop, impair, link-down every 0.5 s, each for 0.25 s: four changes a
second; seed 1) for 15 s (--quick: 5 s). A change is never skipped for being late: when the machine cannot
keep up, the lateness grows through the run. The baseline is the plan itself (lateness 0). Needs root; the
lab is named nslabb-* and taken down in a `finally`.
"""

from __future__ import annotations

import os
import secrets
import statistics

import _common as C

from nslab.lab import events as ev
from nslab.lab.lab import Lab


def main() -> int:
    args = C.parser(__doc__).parse_args()
    C.sigterm_as_interrupt()
    print(C.machine_info())
    lab = Lab.topo("ring", 3, name=C.PREFIX + secrets.token_hex(2))
    lab.up()
    try:
        faults = [{"every": "0.5s", "random": ["partition", "node-stop", "impair", "link-down"],
                   "until": "5s" if args.quick else "15s", "for": "0.25s"}]
        with lab.schedule(faults=faults, seed=1) as run:
            run.wait()
        evs = [e for e in ev.read(lab.name) if e.get("run") == run.run_id]
        t0 = evs[0]["offset"]
        late = [e["offset"] - t0 - e["at"] for e in evs if e.get("at") is not None]
        took = [e["took"] for e in evs if "took" in e and e.get("at") is not None]
        healed = any(lab.reach().ok and lab.reach(family=6).ok for _ in range(10))  # ND may take a moment
    finally:
        lab.down()
    left = [n for n in os.listdir("/run/netns") if n.startswith(lab.name + "-")]
    print(C.table(["changes", "late median ms", "late max ms", "change median ms", "change max ms", "healed"],
                  [[len(late), f"{statistics.median(late) * 1e3:.0f}", f"{max(late) * 1e3:.0f}",
                    f"{statistics.median(took) * 1e3:.0f}", f"{max(took) * 1e3:.0f}", healed]]))
    print(f"load after: {C.loadavg()}")
    if left:
        print(f"LEFTOVERS of this run: {left}")
    return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(main())
