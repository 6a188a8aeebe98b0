"""Star labs (single,N) through the Lab API against `ip -batch` doing the same kernel work; memory; --big.

  python bench/bench_lab.py [--quick] [--big] [--profile]

Workload per N (100 and 1000): a switch namespace with bridge br0, N host namespaces, a veth per host
(eth0 in the host, the port in the switch namespace enslaved to br0), IPv4 + IPv6 (nodad) address on
eth0, lo up and everything up. Methods, interleaved round by round:
  lab       Lab.topo("single", N).up() then .down() (state file, marker, sysctls included; down waits
            until the names are gone, as `lab down` does).
  ip-batch  one `ip -b -` of N+1 `netns add`; one `ip -n SW -b -` (lo up, bridge); per host one
            `ip -n H -b -` (lo up, veth with its peer made in SW, addresses, eth0 up); one `ip -n SW -b -`
            (ports into br0, up); down: one `ip -b -` of N+1 `netns del` (research/netlink.md method (b)).
Then: peak RSS of a fresh process doing up+down for N=100 and N=1000 (a flat controller: similar), and
the processes, threads and fds the API holds after up returns. --big: 10 000 hosts up and down.
Goals (DESIGN.md §6): 100 hosts up within 0.25 s; 1000 hosts up+down within 2.4 s (1.5x the 1.7 s floor).
Everything is named nslabb-* and deleted by exact name, also on failure or Ctrl-C.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import secrets
import subprocess
import sys
import time
from collections.abc import Callable

import _common as C

from nslab.errors import UsageError
from nslab.lab.lab import Lab

GOAL_UP_100 = 0.25
GOAL_CYCLE_1000 = 2.4


def lab_name() -> str:
    return C.PREFIX + secrets.token_hex(2)  # nslabb-XXXX: 11 characters, a valid lab name


# ---- the two methods ---------------------------------------------------------------------------------
def cycle_lab(n: int) -> tuple[float, float]:
    lab = Lab.topo("single", n, name=lab_name())
    t0 = C.clock()
    try:
        lab.up()
        t_up = C.clock() - t0
    finally:
        t1 = C.clock()
        lab.down()
        t_down = C.clock() - t1
    return t_up, t_down


def _ip_batch(args: list[str], lines: list[str]) -> None:
    r = subprocess.run(["ip", *args, "-b", "-"], input="\n".join(lines) + "\n", capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} -b: {r.stderr.strip()}")


def cycle_ip(n: int) -> tuple[float, float]:
    base = C.PREFIX + "r" + secrets.token_hex(2)
    sw = f"{base}-s1"
    hosts = [f"{base}-h{i}" for i in range(1, n + 1)]
    t0 = C.clock()
    try:
        _ip_batch([], [f"netns add {ns}" for ns in [sw, *hosts]])
        _ip_batch(["-n", sw], ["link set lo up", "link add br0 type bridge", "link set br0 up"])
        for i, h in enumerate(hosts, 1):
            _ip_batch(["-n", h], [
                "link set lo up",
                f"link add eth0 type veth peer name eth{i} netns {sw}",
                f"addr add 10.0.{i // 250}.{i % 250 + 1}/16 dev eth0",
                f"addr add fd00:6e73::{i:x}/64 dev eth0 nodad",
                "link set eth0 up",
            ])
        _ip_batch(["-n", sw], [f"link set eth{i} master br0 up" for i in range(1, n + 1)])
        t_up = C.clock() - t0
    finally:
        t1 = C.clock()
        existing = [ns for ns in [sw, *hosts] if os.path.lexists(os.path.join(C.NETNS_DIR, ns))]
        _ip_batch([], [f"netns del {ns}" for ns in existing])
        t_down = C.clock() - t1
    return t_up, t_down


# ---- memory and leftovers in a fresh process ------------------------------------------------------------
CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
from nslab.lab.lab import Lab
n, name = int(sys.argv[2]), sys.argv[3]
def hwm():
    # VmHWM, not ru_maxrss: ru_maxrss survives execve, so a child forked from a big parent starts
    # with the parent's peak; VmHWM belongs to this process' own address space.
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
base = hwm()
lab = Lab.topo("single", n, name=name)
t0 = time.perf_counter()
lab.up()
t_up = time.perf_counter() - t0
me = os.getpid()
children = []
for e in os.listdir("/proc"):
    if e.isdigit():
        try:
            with open(f"/proc/{e}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                    children.append(int(e))
        except OSError:
            pass
threads = len(os.listdir("/proc/self/task"))
fds = len(os.listdir("/proc/self/fd"))
after_up = hwm()
t1 = time.perf_counter()
lab.down()
t_down = time.perf_counter() - t1
print(json.dumps({"n": n, "rss_import_kb": base, "rss_after_up_kb": after_up,
                  "rss_peak_kb": hwm(), "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "children": len(children), "threads": threads, "fds": fds, "up": t_up, "down": t_down}))
"""


def child_run(n: int, timeout: float = 600) -> dict[str, float]:
    name = lab_name()
    r = subprocess.run([sys.executable, "-c", CHILD, C.ROOT, str(n), name], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        leftover_lab(name)
        raise RuntimeError(f"child up+down of single,{n} failed: {r.stderr.strip()[-2000:]}")
    data: dict[str, float] = json.loads(r.stdout.strip().splitlines()[-1])
    return data


def leftover_lab(name: str) -> None:
    """Take lab NAME down through nslab if its state exists (e.g. a failed child)."""
    from nslab.lab import state as st

    if st.load(name) is not None:
        subprocess.run([sys.executable, "-m", "nslab", "lab", "down", name], capture_output=True, cwd=C.ROOT)


def processes_in_labs() -> int:
    """Processes whose network namespace is one of ours (nslabb-*): a lab runs none."""
    inodes = set()
    for n in C.bench_netns_names():
        try:
            s = os.stat(os.path.join(C.NETNS_DIR, n))
            inodes.add((s.st_dev, s.st_ino))
        except OSError:
            pass
    count = 0
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                s = os.stat(f"/proc/{e}/ns/net")
            except OSError:
                continue
            count += (s.st_dev, s.st_ino) in inodes
    return count


def limits() -> str:
    out = []
    for p in ("/proc/sys/fs/file-max", "/proc/sys/fs/nr_open", "/proc/sys/fs/inotify/max_user_instances",
              "/proc/sys/user/max_net_namespaces", "/proc/sys/kernel/threads-max",
              "/proc/sys/net/core/somaxconn"):
        try:
            with open(p) as f:
                out.append(f"{p.split('/proc/sys/')[1]}={f.read().strip()}")
        except OSError:
            out.append(f"{p}=?")
    import resource

    out.append(f"RLIMIT_NOFILE={resource.getrlimit(resource.RLIMIT_NOFILE)}")
    with open("/proc/meminfo") as f:
        out.append(" ".join(f.readline().split()[:2]) + " kB")
    return "; ".join(out)


def profile_up(n: int) -> str:
    lab = Lab.topo("single", n, name=lab_name())
    prof = cProfile.Profile()
    try:
        prof.enable()
        lab.up()
        prof.disable()
    finally:
        lab.down()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
    return buf.getvalue()


def measure(fn: Callable[[int], tuple[float, float]], n: int) -> tuple[float, float]:
    t_up, t_down = fn(n)
    time.sleep(0.2)  # let the kernel's asynchronous namespace cleanup settle between rounds
    return t_up, t_down


def main() -> int:
    p = C.parser(__doc__)
    p.add_argument("--big", action="store_true", help="also 10 000 hosts up and down")
    p.add_argument("--profile", action="store_true", help="cProfile lab.up for N=1000 even if goals are met")
    args = p.parse_args()
    C.sigterm_as_interrupt()
    if os.geteuid() != 0:
        print("bench_lab: needs root (network namespaces)", file=sys.stderr)
        return 1
    print(C.machine_info())
    if C.bench_netns_names():
        print(f"namespaces named {C.PREFIX}* exist already: delete them first", file=sys.stderr)
        return 1
    sizes = {100: 3 if args.quick else 5, 1000: 1 if args.quick else 3}
    res: dict[tuple[str, int], list[tuple[float, float]]] = {}
    load0 = C.loadavg()
    ok = True
    try:
        measure(cycle_lab, 5)  # warm-up (imports, first-use kernel paths)
        measure(cycle_ip, 5)
        for n, rounds in sizes.items():
            for r in range(rounds):
                order = [("lab", cycle_lab), ("ip-batch", cycle_ip)]
                for m, fn in order if r % 2 == 0 else order[::-1]:
                    res.setdefault((m, n), []).append(measure(fn, n))
        print(f"\nstar labs single,N: median of rounds (lab: {sizes}), interleaved; load {load0} -> {C.loadavg()}")
        rows = []
        for n in sizes:
            lab, ipb = res[("lab", n)], res[("ip-batch", n)]
            lu, ld = C.median([x[0] for x in lab]), C.median([x[1] for x in lab])
            iu, idn = C.median([x[0] for x in ipb]), C.median([x[1] for x in ipb])
            rows.append([f"{n}", lu, ld, lu + ld, iu, idn, iu + idn, lu / iu, ld / idn, (lu + ld) / (iu + idn),
                         f"{min(x[0] for x in lab):.3f}-{max(x[0] for x in lab):.3f}"])
        print(C.table(["N", "lab up s", "lab down s", "lab sum", "ip up s", "ip down s", "ip sum",
                       "up/ip", "down/ip", "sum/ip", "lab up [min-max]"], rows))
        up100 = C.median([x[0] for x in res[("lab", 100)]])
        cyc1000 = sum(C.median([x[k] for x in res[("lab", 1000)]]) for k in (0, 1))
        g1, g2 = up100 <= GOAL_UP_100, cyc1000 <= GOAL_CYCLE_1000
        print(f"goal: 100 hosts up <= {GOAL_UP_100} s: {up100:.3f} s {'MET' if g1 else 'MISSED'}; "
              f"1000 hosts up+down <= {GOAL_CYCLE_1000} s: {cyc1000:.3f} s {'MET' if g2 else 'MISSED'} "
              f"(Mininet here: 47 s -> {47 / cyc1000:.0f}x)")

        print("\ncontroller in a fresh process (up then down): peak RSS, what it holds after up returns")
        kids = {n: child_run(n) for n in (100, 1000)}
        mrows = [[n, d["rss_import_kb"] / 1024, d["rss_after_up_kb"] / 1024, d["rss_peak_kb"] / 1024,
                  d["children"], d["threads"], d["fds"], d["up"], d["down"]] for n, d in kids.items()]
        print(C.table(["N", "HWM import MiB", "HWM after up MiB", "peak (VmHWM) MiB", "child procs", "threads",
                       "open fds", "up s", "down s"], mrows))
        growth = (kids[1000]["rss_peak_kb"] - kids[100]["rss_peak_kb"]) / 1024
        print(f"peak RSS 1000 vs 100 hosts: +{growth:.1f} MiB "
              f"({growth * 1024 / 900:.1f} KiB per extra host); processes left in lab namespaces now: "
              f"{processes_in_labs()}")

        if not (g1 and g2) or args.profile:
            print("\ncProfile of Lab.up() for single,1000 (cumulative):")
            print(profile_up(1000))

        if args.big:
            print(f"\n--big: limits: {limits()}")
            for spec in ("single,10000", "tree,2,100"):
                kind, *a = spec.split(",")
                name = lab_name()
                lab = Lab.topo(kind, *map(int, a), name=name)
                try:
                    print(f"{spec}: {len(lab.plan.nodes)} namespaces, {len(lab.plan.links)} veths ...", flush=True)
                except UsageError as exc:  # single,10000: a bridge takes at most 1023 ports
                    print(f"{spec}: refused by the planner: {exc}")
                    continue
                t0 = C.clock()
                try:
                    lab.up()
                    t_up = C.clock() - t0
                    import resource

                    print(f"  up {t_up:.2f} s; namespaces {len(C.bench_netns_names())}; "
                          f"processes in them {processes_in_labs()}; this process peak RSS "
                          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB", flush=True)
                except Exception as exc:
                    print(f"  up FAILED after {C.clock() - t0:.2f} s: {type(exc).__name__}: {exc}")
                finally:
                    t1 = C.clock()
                    lab.down()
                    print(f"  down {C.clock() - t1:.2f} s; left {len(C.bench_netns_names())}", flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        ok = False
    finally:
        from nslab.lab import state as st

        for name in st.names():
            if name.startswith(C.PREFIX):
                leftover_lab(name)
        left = C.bench_netns_names()
        if left:
            print(f"deleting {len(left)} leftover {C.PREFIX}* namespaces", file=sys.stderr)
            C.delete_netns_exact(left)
        ok = C.check_clean() and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
