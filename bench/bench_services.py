"""`lab up` of single,N with one service per host (a tiny TCP listener, ready by port) against single,N without
services, interleaved in the same run; the supervisor's memory (RSS) with N views and N services.

  python bench/bench_services.py [--quick] [-n N] [--rounds R]

Both arms have the supervisor and the N+1 node views (hostname, /sys, /etc/hosts); the service arm adds N
`busybox nc -ll -p 8080 -e echo hi` started through the supervisor, each waited for until its port listens.
Timed: Lab.up() (until every service is ready) and Lab.down() (services stopped first). Labs are named
nslabb-sv*, deleted by exact name also on failure.
"""

from __future__ import annotations

import secrets
import shutil
import time

import _common as C

from nslab.lab import builtin, client
from nslab.lab.lab import Lab
from nslab.lab.svcspec import ServiceSpec


def make(n: int, services: bool) -> Lab:
    t = builtin.topo("single", n, name=f"nslabb-sv{secrets.token_hex(2)}"[:12])
    if services:
        for node in t.nodes.values():
            if node.kind == "host":
                node.services = [ServiceSpec("web", ["busybox", "nc", "-ll", "-p", "8080", "-e", "echo", "hi"],
                                             ready={"tcp": 8080}, timeout=60)]
    return Lab(t)


def one(n: int, services: bool) -> tuple[float, float, int, int]:
    lab = make(n, services)
    t0 = time.perf_counter()
    try:
        lab.up()
        t_up = time.perf_counter() - t0
        with client.Client.connect(lab.name) as c:
            hello = c.call("hello")
            running = sum(r["state"] == "running" for r in c.call("svc.ps"))
        t1 = time.perf_counter()
    finally:
        lab.down()
    return t_up, time.perf_counter() - t1, int(hello["rss_kb"]), running


def main() -> int:
    p = C.parser(__doc__)
    p.add_argument("-n", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if shutil.which("busybox") is None:
        print("busybox not installed: no listener to run")
        return 1
    rounds = 1 if args.quick else args.rounds
    print(C.machine_info())
    res: dict[bool, list[tuple[float, float, int, int]]] = {False: [], True: []}
    for _ in range(rounds):
        for services in (False, True):
            res[services].append(one(args.n, services))
    rows = []
    for services in (False, True):
        r = res[services]
        rows.append([f"single,{args.n} " + ("+ 1 service/host" if services else "no services"),
                     f"{C.median([x[0] for x in r]):.2f}", f"{C.median([x[1] for x in r]):.2f}",
                     f"{C.median([x[2] for x in r]) / 1024:.1f}", f"{r[-1][3]}"])
    print(C.table(["lab", "up s (median)", "down s", "supervisor RSS MiB", "services running"], rows))
    small = one(1, False)  # the supervisor with 2 views: what N views add to it
    print(f"supervisor RSS with single,1 (2 views): {small[2] / 1024:.1f} MiB; "
          f"+{(C.median([x[2] for x in res[False]]) - small[2]) / (args.n - 1):.1f} KiB per view")
    base, svc = (C.median([x[0] for x in res[s]]) for s in (False, True))
    rss0, rss1 = (C.median([x[2] for x in res[s]]) for s in (False, True))
    print(f"up with services / without: {svc / base:.2f}x; +{(svc - base) / args.n * 1000:.1f} ms per service; "
          f"supervisor RSS +{(rss1 - rss0) / args.n:.1f} KiB per service ({C.loadavg()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
