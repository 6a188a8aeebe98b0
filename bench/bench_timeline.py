"""What the fault timeline costs a fault call: one event appended (nslab.lab.events.append), against a bare
O_APPEND write of the same line, for a small lab's record and a 1000-node one.

  python bench/bench_timeline.py [--quick]

No kernel object is made and no root is needed: the lab records live in a temporary state directory
(removed at the end). A fault call itself costs 10-100 ms here (nft, netlink, the reconcile engine's read
back; bench_reconcile.py): the goal is an event well under 1 ms, whatever the lab's size.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

import _common as C

from nslab.lab import builtin
from nslab.lab import events as ev
from nslab.lab import state as st
from nslab.lab.lab import topology_to_data
from nslab.lab.spec import Topology


def bench(name: str, topo: Topology, n: int) -> list[object]:
    st.save(st.LabState(lab=name, status="up", pid=os.getpid(), topology=topology_to_data(topo),
                        created_mono=time.monotonic()))
    size = os.path.getsize(os.path.join(st.STATE_DIR, f"{name}.json"))
    line = (json.dumps(ev.make(name, "heal", detail={"i": 0})) + "\n").encode()
    path = os.path.join(st.STATE_DIR, f"{name}.bare.jsonl")
    bare, append = [], []
    for i in range(n):
        t0 = C.clock()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.write(fd, line)
        os.close(fd)
        bare.append(C.clock() - t0)
        t0 = C.clock()
        ev.append(name, "heal", detail={"i": i})
        append.append(C.clock() - t0)
    b, a = C.median(bare), C.median(append)
    return [name, len(topo.nodes), size, f"{b * 1e3:.3f}", f"{a * 1e3:.3f}", f"{a / b:.1f}x"]


def main() -> int:
    args = C.parser(__doc__).parse_args()
    n = 200 if args.quick else 2000
    print(C.machine_info())
    st.STATE_DIR = tempfile.mkdtemp(prefix="nslabb-timeline-")
    try:
        rows = [bench("small", builtin.topo("ring", 3, name="small"), n),
                bench("big", builtin.topo("leafspine", 4, 20, 48, name="big"), n)]
    finally:
        shutil.rmtree(st.STATE_DIR)
    print(C.table(["lab", "nodes", "record B", "bare write ms", "ev.append ms", "ratio"], rows))
    worst = max(float(str(r[4])) for r in rows)
    print(f"goal: an event under 1 ms: {'met' if worst < 1.0 else 'MISSED'} (worst median {worst:.3f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
