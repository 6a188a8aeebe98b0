"""Reachability matrix of a star lab (single,100: 9 900 pairs) with `nslab.reach` against serial `ping -c1`.

  python bench/bench_reach.py [--quick] [--hosts N] [--sample K]

Workload: `Lab.topo("single", N)` up (not timed), then
  cold    the first reach() after up: every pair also resolves its neighbour (ARP) entry
  warm    reach() again, median of R runs (R=5, --quick 2)
  ping    serial `ping -c1 -W1 DST` run in the source node (LabNode.run, the fast spawn path) for a
          random sample of K pairs (K=40), timed one by one, EXTRAPOLATED to all N*(N-1) pairs: this is
          Mininet's pingall method; running 9 900 pings for real would take minutes.
Goal (DESIGN.md §6): 100 hosts (9 900 pairs) within 1 s; Mininet's serial pingall took 16 s here
(quoted from DESIGN.md, not measured in this run). Prints the neighbour-table cap (gc_thresh3): the
kernel shares one ARP table among all namespaces, and when it is too small for all pairs reach() probes
in waves and evicts each wave's entries (see docs/observe.md). Traffic flows only between lab namespaces.
The lab is named nslabb-XXXX and taken down in a finally.
"""

from __future__ import annotations

import random
import secrets
import sys

import _common as C

from nslab.lab.lab import Lab
from nslab.reach import _wave_size, reach

GOAL_S = 1.0
MININET_S = 16.0


def main() -> int:
    p = C.parser(__doc__)
    p.add_argument("--hosts", type=int, default=100)
    p.add_argument("--sample", type=int, default=40, help="pairs pinged serially for the baseline")
    args = p.parse_args()
    rounds = 2 if args.quick else 5
    C.sigterm_as_interrupt()
    if C.bench_netns_names():
        print(f"refusing to start: {C.PREFIX}* namespaces exist: {C.bench_netns_names()}", file=sys.stderr)
        return 1
    print(C.machine_info())
    with open("/proc/sys/net/ipv4/neigh/default/gc_thresh3") as f:
        cap = int(f.read())
    n = args.hosts
    pairs = n * (n - 1)
    print(f"neighbour table: gc_thresh3={cap}; {pairs} pairs; reach() waves of {_wave_size(4)} entries now"
          f" ({'one burst' if _wave_size(4) >= pairs else 'waves, entries evicted after each'})")
    lab = Lab.topo("single", n, name=C.PREFIX + secrets.token_hex(2))
    try:
        lab.up()
        cold = reach(lab)
        warm = []
        for _ in range(rounds):
            r = reach(lab)
            assert r.ok, r.matrix_text()
            warm.append(r.seconds)
        hosts = [f"h{i}" for i in range(1, n + 1)]
        rng = random.Random(1)
        sample = [tuple(rng.sample(hosts, 2)) for _ in range(args.sample)]
        times = []
        for s, d in sample:
            t0 = C.clock()
            res = lab[s].run(["ping", "-c1", "-W1", "-q", d], capture_output=True)
            times.append(C.clock() - t0)
            assert res.returncode == 0, (s, d, res.stderr)
        per_ping = C.median(times)
        serial = per_ping * pairs
    finally:
        lab.down()
    ok = "ok" if cold.ok else f"FAILED {len(cold.failed)} pairs"
    rows = [
        ["nslab reach, cold (first after up)", pairs, cold.seconds, serial / cold.seconds, MININET_S / cold.seconds],
        [f"nslab reach, warm (median of {rounds})", pairs, C.median(warm), serial / C.median(warm),
         MININET_S / C.median(warm)],
        [f"serial ping -c1 (median {per_ping * 1000:.2f} ms x {pairs}, extrapolated)", pairs, serial, 1.0,
         MININET_S / serial],
    ]
    print(C.table(["method", "pairs", "seconds", "x faster than serial ping", "x faster than Mininet 16 s"], rows))
    print(f"cold run: {cold.summary()} ({ok})")
    for label, secs in (("cold", cold.seconds), ("warm", C.median(warm))):
        verdict = "met" if secs <= GOAL_S else "MISSED"
        print(f"goal {n} hosts all pairs within {GOAL_S:.0f} s, {label}: {secs:.2f} s ({verdict})")
    print(f"load after: {C.loadavg()}")
    return 0 if C.check_clean() else 1


if __name__ == "__main__":
    sys.exit(main())
