"""10 000 hosts (tree,2,100: 10 101 namespaces) up, one ping across the tree, down; time and peak RSS.

    python bench/bench_big.py      # needs root; takes about a minute; lab name nbig (refused if taken)
"""

import time, resource, os
from nslab.lab.lab import Lab
lab = Lab.topo("tree", 2, 100, name="nbig")
t=time.perf_counter(); plan=lab.plan; print("plan", len(plan.nodes), "nodes", round(time.perf_counter()-t,2), "s", flush=True)
t=time.perf_counter()
try:
    lab.up(); print("up", round(time.perf_counter()-t,2), "s; fds", len(os.listdir("/proc/self/fd")), "threads", len(os.listdir("/proc/self/task")), flush=True)
    r = lab["h1"].run(["ping","-c1","-W2","h10000"], capture_output=True, text=True)
    print("h1 -> h10000:", [l for l in r.stdout.splitlines() if "ttl=" in l] or r.stdout[-200:], flush=True)
finally:
    t=time.perf_counter(); n=lab.down(); print("down", n, "namespaces", round(time.perf_counter()-t,2), "s", flush=True)
    print("peak RSS MiB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss//1024)
