"""single,N through the Lab API, phase by phase, against the kernel's floor and `ip -batch`, in one run.

  python bench/bench_scale.py [--quick] [-n N ...] [--rounds R]

Three methods, interleaved round by round (order rotated), for each N (default 1000, then 100):
  lab       Lab.topo("single", N).up() then .down(), each phase timed from the progress reports:
            namespaces (lo up + ownership marker, two door threads), links (N veths into the bridge),
            addresses (per host: eth0 up, IPv4, IPv6), finish (record), down (ownership proof,
            delete, names gone).
  ip-batch  the same kernel work through `ip -b` (bench_lab.py's method; research/netlink.md (b)).
  floor     the kernel's floor per operation, from a minimal batch of N operations of one kind with
            every request built before the clock starts, one socket, one thread:
              namespace   file + unshare + bind mount (netns.create with nothing inside)
              veth pair   created in a hub namespace with its peer straight in another namespace,
                          the hub end a bridge port and up in the same request (what a lab link needs)
              link up     IFF_UP of the second end of a veth pair whose first end is an up bridge
                          port: carrier comes on (as a lab host's eth0 goes up)
              address     an IPv4 /32 (and an IPv6 /128, nodad) on a link
              route       a /32 route via a link
              delete      umount + unlink of /run/netns/NAME, one thread (as `ip -b netns del`)
            A phase's floor is the sum of its operations: namespaces = (N+1) x (namespace + link up),
            links = N x veth pair, addresses = N x (link up + address v4 + address v6),
            down = (N+1) x delete.
The table prints nslab / floor per phase (below 1 where nslab uses two CPUs or several threads and the
floor one) and the ratios to ip-batch. Everything is named nslabb-* and deleted by exact name in a
finally, also on Ctrl-C or SIGTERM; the script ends by checking that nothing is left. Exit 0 means the
run completed and cleaned up; a missed goal is printed, not an error.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable

import _common as C
from bench_lab import cycle_ip

from nslab.kernel import bulk, netns
from nslab.kernel.rtnl import Request, Rtnl
from nslab.lab.lab import Lab

GOAL_CYCLE_RATIO = 0.3  # issue 14: single,1000 up+down <= 0.3x ip-batch
GOAL_CYCLE_1000 = 2.4  # seconds, on a quiet machine


# ---- nslab, phase by phase -------------------------------------------------------------------------------
def cycle_lab(n: int) -> dict[str, float]:
    lab = Lab.topo("single", n, name=C.PREFIX + secrets.token_hex(2))
    _ = lab.plan  # planned before the clock, as both other methods get their work ready-made
    marks: dict[str, float] = {}

    def progress(phase: str, done: int, total: int) -> None:
        if done >= total:
            marks[phase] = C.clock()  # the last report of a phase: its end

    t0 = C.clock()
    try:
        lab.up(progress=progress)
        t_up = C.clock()
    finally:
        t1 = C.clock()
        lab.down()
        t_down = C.clock() - t1
    t_ns, t_links, t_addr = marks["namespaces"], marks["links"], marks["addresses"]
    return {"namespaces": t_ns - t0, "links": t_links - t_ns, "addresses": t_addr - t_links,
            "finish": t_up - t_addr, "up": t_up - t0, "down": t_down}


def cycle_ipb(n: int) -> dict[str, float]:
    up, down = cycle_ip(n)
    return {"up": up, "down": down}


# ---- the floor ---------------------------------------------------------------------------------------------
def _timed_batch(r: Rtnl, reqs: list[Request]) -> float:
    t0 = C.clock()
    errs = r.run(reqs)
    dt = C.clock() - t0
    bad = [e for e in errs if e is not None]
    if bad:
        raise RuntimeError(f"floor batch failed: {bad[0]}")
    return dt


def floor(n: int) -> dict[str, float]:
    """Seconds per operation (see the module doc)."""
    tag = C.PREFIX + "f" + secrets.token_hex(2)
    hub = f"{tag}-hub"
    names = [f"{tag}-{i}" for i in range(n)]
    made: list[str] = []
    out: dict[str, float] = {}
    try:
        netns.create(hub)
        made.append(hub)
        t0 = C.clock()
        for name in names:
            netns.create(name)
            made.append(name)
        out["namespace"] = (C.clock() - t0) / n
        r = Rtnl.open(hub)
        try:
            r.run_all([Rtnl.req_set_link(1, "lo", up=True), Rtnl.req_add_link("br0", "bridge", index=2, up=True)])
            fds = {name: netns.open_fd(name) for name in names}
            try:
                veths = [Rtnl.req_add_link(f"v{i}", "veth", Rtnl.veth_peer("eth0", netns_fd=fds[name], index=2),
                                           index=3 + i, up=True, master=2) for i, name in enumerate(names)]
                out["veth pair"] = _timed_batch(r, veths) / n
            finally:
                for fd in fds.values():
                    os.close(fd)
            # Link up as a lab host's eth0 goes up: the second end of a pair whose first end is an up
            # bridge port, so carrier comes on (port forwarding, IPv6 autoconf on both ends). Pairs x/y
            # with both ends in the hub, made before the clock; x enslaved and up without carrier.
            base = 3 + n
            br1 = base + 2 * n  # a second bridge: one takes at most 1023 ports
            r.run_all([Rtnl.req_add_link("br1", "bridge", index=br1, up=True)])
            _timed_batch(r, [Rtnl.req_add_link(f"x{i}", "veth", Rtnl.veth_peer(f"y{i}", index=base + n + i),
                                               index=base + i, master=br1) for i in range(n)])
            _timed_batch(r, [Rtnl.req_set_link(base + i, f"x{i}", up=True) for i in range(n)])
            out["link up"] = _timed_batch(r, [Rtnl.req_set_link(base + n + i, f"y{i}", up=True)
                                              for i in range(n)]) / n
            out["address v4"] = _timed_batch(
                r, [Rtnl.req_addr(3 + i, f"v{i}", f"10.{(i >> 8) & 255}.{i & 255}.1/32") for i in range(n)]) / n
            out["address v6"] = _timed_batch(
                r, [Rtnl.req_addr(3 + i, f"v{i}", f"fd00:6e74::{i + 1:x}/128") for i in range(n)]) / n
            out["route"] = _timed_batch(
                r, [Rtnl.req_route(f"172.{16 + ((i >> 16) & 15)}.{(i >> 8) & 255}.{i & 255}/32", oif=3 + i)
                    for i in range(n)]) / n
        finally:
            r.close()
        t0 = C.clock()
        for name in names:
            netns.delete(name)
        out["delete"] = (C.clock() - t0) / n
        made = [hub]
    finally:
        bulk.delete(made, kill=False)
        C.wait_until(lambda: not any(os.path.lexists(netns.path(m)) for m in made), 10)
    return out


def phase_floor(n: int, f: dict[str, float]) -> dict[str, float]:
    return {"namespaces": (n + 1) * (f["namespace"] + f["link up"]), "links": n * f["veth pair"],
            "addresses": n * (f["link up"] + f["address v4"] + f["address v6"]), "down": (n + 1) * f["delete"]}


# ---- the run -----------------------------------------------------------------------------------------------
def main() -> int:
    p = C.parser(__doc__)
    p.add_argument("-n", type=int, nargs="+", default=[1000, 100], help="host counts (default 1000 100)")
    p.add_argument("--rounds", type=int, default=None, help="rounds per N (default 3, --quick 1)")
    args = p.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    C.sigterm_as_interrupt()
    if os.geteuid() != 0:
        print("bench_scale: needs root (network namespaces)", file=sys.stderr)
        return 1
    print(C.machine_info())
    if C.bench_netns_names():
        print(f"namespaces named {C.PREFIX}* exist already: delete them first", file=sys.stderr)
        return 1
    methods: list[tuple[str, Callable[[int], dict[str, float]]]] = [
        ("lab", cycle_lab), ("ip-batch", cycle_ipb), ("floor", floor)]
    ok = True
    load0 = C.loadavg()
    try:
        cycle_lab(5)  # warm-up: imports, first-use kernel paths
        cycle_ipb(5)
        for n in args.n:
            res: dict[str, list[dict[str, float]]] = {m: [] for m, _ in methods}
            for r in range(rounds):
                for m, fn in methods[r % 3:] + methods[: r % 3]:
                    res[m].append(fn(n))
                    time.sleep(0.3)  # let the kernel's asynchronous namespace cleanup settle
            report(n, res, rounds, load0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        ok = False
    finally:
        from bench_lab import leftover_lab

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


def med(rows: list[dict[str, float]], key: str) -> float:
    return C.median([r[key] for r in rows])


def report(n: int, res: dict[str, list[dict[str, float]]], rounds: int, load0: str) -> None:
    print(f"\nsingle,{n}: median of {rounds} round(s), interleaved; load {load0} -> {C.loadavg()}")
    f = {k: med(res["floor"], k) for k in res["floor"][0]}
    print("floor per operation (us): " + ", ".join(f"{k} {v * 1e6:.0f}" for k, v in f.items()))
    pf = phase_floor(n, f)
    lab = res["lab"]
    rows = []
    for ph in ("namespaces", "links", "addresses", "finish", "down"):
        v = med(lab, ph)
        fl = pf.get(ph)
        rows.append([ph, v, v * 1e3 / n, "" if fl is None else fl, "" if fl is None else f"{v / fl:.2f}x"])
    fl_up = sum(pf[k] for k in ("namespaces", "links", "addresses"))
    up, down = med(lab, "up"), med(lab, "down")
    rows.append(["up (total)", up, up * 1e3 / n, fl_up, f"{up / fl_up:.2f}x"])
    rows.append(["up+down", up + down, (up + down) * 1e3 / n, fl_up + pf["down"],
                 f"{(up + down) / (fl_up + pf['down']):.2f}x"])
    print(C.table(["lab phase", "s", "ms/host", "floor s", "lab/floor"], rows))
    iu, idn = med(res["ip-batch"], "up"), med(res["ip-batch"], "down")
    ratio = (up + down) / (iu + idn)
    print(f"ip-batch: up {iu:.3f} s, down {idn:.3f} s, sum {iu + idn:.3f} s; lab/ip: up {up / iu:.2f}x, "
          f"down {down / idn:.2f}x, up+down {ratio:.2f}x")
    print(f"goal down <= ip-batch down: {down:.3f} vs {idn:.3f} s {'MET' if down <= idn else 'MISSED'}")
    if n == 1000:
        print(f"goal up+down <= {GOAL_CYCLE_RATIO}x ip-batch: {ratio:.2f}x "
              f"{'MET' if ratio <= GOAL_CYCLE_RATIO else 'MISSED'}; <= {GOAL_CYCLE_1000} s (quiet machine): "
              f"{up + down:.2f} s {'MET' if up + down <= GOAL_CYCLE_1000 else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
