"""The scaling curve: lab up, down, controller memory and reach for N = 10 ... 10 000 hosts, table and PNG.

  python bench/bench_curve.py [--max N] [--png PATH] [--json PATH]

Sizes (built-in topologies within the bridge's 1023-port limit):
  10, 100, 1000 hosts   single,N         (N+1 namespaces)
  4900 hosts            tree,2,70        (4 971 namespaces: a root switch, 70 switches, 70 hosts each)
  10000 hosts           tree,2,100       (10 101 namespaces)
Each size runs in a fresh Python process (import, plan, up, what it holds after up, reach, down), so
its memory is its own: VmHWM (peak RSS) after the import and after up, KiB per node of the difference.
reach: every pair for N <= 100 (N*(N-1) pairs); for bigger labs h1 to 99 hosts spread over the lab
(each first packet's ARP broadcast is flooded to every port of the LAN: h1 to all 4 899 other hosts of
tree,2,70 ran for minutes at load 15 and was stopped; h1 to the 999 of single,1000 took 28 s). Sizes above --max
(default 1000) are skipped: 4 900 and 10 000 load a shared machine heavily for a minute or more.
Mininet beside it: the figures of ../shared/research/mininet.md (measured on this VM kind with Linux
bridges, not in this run; Mininet is not runnable here: the PyPI wheel has no mnexec), marked as such.
Everything is named nslabb-*; an interrupted or failed size is taken down with `nslab lab down`, and the
script ends by checking that no nslabb-* namespace is left. The PNG needs matplotlib (`pip install
-e .[bench]`); without it the table is printed and the PNG skipped.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import subprocess
import sys

import _common as C
from bench_lab import leftover_lab

SIZES = [(10, "single", (10,)), (100, "single", (100,)), (1000, "single", (1000,)),
         (4900, "tree", (2, 70)), (10000, "tree", (2, 100))]
# research/mininet.md §4.3 (Mininet 2.3.1b4, LinuxBridge, no controller, this VM kind): build+start+stop,
# and the failure reported in mininet#788 at about 8 187 nodes (EMFILE).
MININET = {10: 0.44, 100: 4.29, 1000: 46.9}
MININET_FAILS_AT = 8187

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
from nslab.lab.lab import Lab
from nslab.reach import reach
kind, args, name = sys.argv[2], [int(a) for a in sys.argv[3].split(",")], sys.argv[4]
base = hwm()
lab = Lab.topo(kind, *args, name=name)
t = time.perf_counter(); plan = lab.plan; t_plan = time.perf_counter() - t
hosts = [n.name for n in plan.nodes if n.kind == "host"]
out = {"nodes": len(plan.nodes), "hosts": len(hosts), "plan": t_plan, "hwm_import_kb": base}
try:
    t = time.perf_counter(); lab.up(); out["up"] = time.perf_counter() - t
    out["hwm_up_kb"] = hwm()
    out["fds"] = len(os.listdir("/proc/self/fd")); out["threads"] = len(os.listdir("/proc/self/task"))
    me = str(os.getpid()); kids = 0
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as f:
                    kids += f.read().rsplit(")", 1)[1].split()[1] == me
            except OSError:
                pass
    out["children"] = kids
    if len(hosts) <= 100:
        r = reach(lab, one_way=False)
    else:
        step = max(1, (len(hosts) - 1) // 99)
        r = reach(lab, sources=[hosts[0]], targets=hosts[1::step][:99], one_way=False)
    out["reach_pairs"], out["reach_ok"], out["reach_s"] = len(r.pairs), r.reachable, r.seconds
finally:
    t = time.perf_counter(); lab.down(); out["down"] = time.perf_counter() - t
    out["hwm_peak_kb"] = hwm()
print(json.dumps(out))
"""


def run_size(kind: str, args: tuple[int, ...], timeout: float) -> dict[str, float]:
    name = C.PREFIX + secrets.token_hex(2)
    try:
        r = subprocess.run([sys.executable, "-c", CHILD, C.ROOT, kind, ",".join(map(str, args)), name],
                           capture_output=True, text=True, timeout=timeout)
    finally:
        leftover_lab(name)  # a killed or failed child: its lab goes (nslab lab down), nothing else is touched
    if r.returncode != 0:
        raise RuntimeError(f"{kind},{args}: {r.stderr.strip()[-1500:]}")
    data: dict[str, float] = json.loads(r.stdout.strip().splitlines()[-1])
    return data


def marginal(rows: list[dict[str, float]]) -> list[float]:
    """KiB of peak RSS after up per node added since the size before (a flat controller: constant)."""
    out = [float("nan")]
    for a, b in itertools.pairwise(rows):
        out.append((b["hwm_up_kb"] - a["hwm_up_kb"]) / (b["nodes"] - a["nodes"]))
    return out


def draw(rows: list[dict[str, float]], path: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "PNG skipped: matplotlib not installed (pip install -e .[bench])"
    hosts = [r["hosts"] for r in rows]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax.loglog(hosts, [r["up"] for r in rows], "o-", label="nslab lab up")
    ax.loglog(hosts, [r["down"] for r in rows], "s-", label="nslab lab down")
    ax.loglog(hosts, [r["up"] + r["down"] for r in rows], "^-", label="nslab up+down")
    mk = sorted(MININET)
    ax.loglog(mk, [MININET[k] for k in mk], "x--", color="grey",
              label="Mininet build+start+stop\n(research/mininet.md, not this run)")
    ax.axvline(MININET_FAILS_AT, color="grey", ls=":", lw=1)
    ax.text(MININET_FAILS_AT, ax.get_ylim()[0] * 1.5, " Mininet: EMFILE\n ~8 187 nodes (#788)", fontsize=7,
            color="grey")
    ax.set_xlabel("hosts")
    ax.set_ylabel("seconds (wall)")
    ax.set_title("lab up / down")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    bx.semilogx(hosts[1:], marginal(rows)[1:], "o-",
                label="controller KiB per extra node\n(peak RSS after up, from the size before)")
    bx.semilogx(hosts, [r["fds"] for r in rows], "s-", label="open fds after up")
    bx.semilogx(hosts, [r["threads"] for r in rows], "^-", label="threads after up")
    bx.set_xlabel("hosts")
    bx.set_title("what the controller holds")
    bx.grid(True, which="both", alpha=0.3)
    bx.legend(fontsize=7)
    fig.suptitle(f"nslab scaling, {C.loadavg()} load, {os.cpu_count()} CPUs (shared)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return f"PNG written: {path}"


def main() -> int:
    p = C.parser(__doc__)
    p.add_argument("--max", type=int, default=1000, help="largest host count to run (default 1000)")
    p.add_argument("--png", default=os.path.join(C.ROOT, "bench", "scale-curve.png"))
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = p.parse_args()
    C.sigterm_as_interrupt()
    if os.geteuid() != 0:
        print("bench_curve: needs root (network namespaces)", file=sys.stderr)
        return 1
    print(C.machine_info())
    if C.bench_netns_names():
        print(f"namespaces named {C.PREFIX}* exist already: delete them first", file=sys.stderr)
        return 1
    rows: list[dict[str, float]] = []
    ok = True
    try:
        for hosts, kind, a in SIZES:
            if hosts > args.max:
                continue
            load = C.loadavg()
            d = run_size(kind, a, timeout=1800)
            d["load"] = load  # type: ignore[assignment]
            d["spec"] = f"{kind},{','.join(map(str, a))}"  # type: ignore[assignment]
            rows.append(d)
            print(f"{d['spec']}: up {d['up']:.2f} s, down {d['down']:.2f} s (load {load})", flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        ok = False
    except RuntimeError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        ok = False
    finally:
        left = C.bench_netns_names()
        if left:
            print(f"deleting {len(left)} leftover {C.PREFIX}* namespaces", file=sys.stderr)
            C.delete_netns_exact(left)
        ok = C.check_clean() and ok
    if rows:
        marg = marginal(rows)
        table = [[r["spec"], int(r["hosts"]), int(r["nodes"]), r["up"], r["down"], r["up"] + r["down"],
                  r["up"] * 1e3 / r["nodes"], r["down"] * 1e3 / r["nodes"],
                  (r["hwm_up_kb"] - r["hwm_import_kb"]) / r["nodes"], "-" if i == 0 else f"{marg[i]:.1f}",
                  r["hwm_peak_kb"] / 1024,
                  int(r["fds"]), int(r["threads"]), int(r["children"]),
                  f"{int(r['reach_ok'])}/{int(r['reach_pairs'])} in {r['reach_s']:.2f} s",
                  f"{MININET[int(r['hosts'])]:.1f}*" if int(r["hosts"]) in MININET else "-", r["load"]]
                 for i, r in enumerate(rows)]
        print(C.table(["topology", "hosts", "namespaces", "up s", "down s", "up+down s", "up ms/node",
                       "down ms/node", "KiB/node", "KiB/extra node", "peak MiB", "fds", "threads", "children", "reach",
                       "Mininet s*", "load before"], table))
        print("* Mininet: research/mininet.md §4.3 (build+start+stop on this VM kind), not measured in this run")
        print(draw(rows, args.png))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
