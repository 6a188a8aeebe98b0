"""10 000 hosts (tree,2,100: 10 101 namespaces) up, one ping across the tree, down; time and peak RSS.

    python bench/bench_big.py      # needs root; takes about a minute; lab name nbig
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nslab.lab.lab import Lab


def main() -> int:
    lab = Lab.topo("tree", 2, 100, name="nbig")
    t = time.perf_counter()
    plan = lab.plan
    print(f"plan: {len(plan.nodes)} nodes, {len(plan.links)} links in {time.perf_counter() - t:.2f} s", flush=True)
    t = time.perf_counter()
    try:
        lab.up()
        fds, threads = len(os.listdir("/proc/self/fd")), len(os.listdir("/proc/self/task"))
        print(f"up {time.perf_counter() - t:.1f} s; after up: {fds} fds, {threads} threads", flush=True)
        r = lab["h1"].run(["ping", "-c1", "-W2", "h10000"], capture_output=True, text=True)
        line = next((ln for ln in r.stdout.splitlines() if "ttl=" in ln), "no reply")
        print(f"h1 -> h10000: {line}", flush=True)
    finally:
        t = time.perf_counter()
        n = lab.down()
        print(f"down: {n} namespaces in {time.perf_counter() - t:.1f} s", flush=True)
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
