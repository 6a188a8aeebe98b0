"""What reading a lab back costs: the reconcile engine on star labs (single,N), N = 100 and 1000.

  python bench/bench_reconcile.py [--quick]

Per N, after `up` (medians of R rounds, R = 3, --quick 1):
  observe   reconcile.observe of every node (links, addresses, routes, qdiscs, nft tables), nothing changed
  up again  Lab.up() of the running lab: observe + diff + report (nothing drifted)
  repair    the same after deleting every host's IPv6 address by hand (RTM_DELADDR, outside the timing)
  heal      faults.heal: every node read back (no partition to remove)
  link      faults.link_state down then up of one host's link (the nodes concerned only)
  up        the first Lab.up() (the baseline the others compare to)
Everything is named nslabb-* and deleted by exact name, also on failure or Ctrl-C.
"""

from __future__ import annotations

import secrets
import sys

import _common as C

from nslab import faults as fl
from nslab.kernel.rtnl import Rtnl
from nslab.lab import reconcile
from nslab.lab.lab import Lab


def rounds(n: int, quick: bool) -> dict[str, float]:
    lab = Lab.topo("single", n, name=C.PREFIX + secrets.token_hex(2))
    out: dict[str, list[float]] = {k: [] for k in ("up", "observe", "up again", "repair", "heal", "link")}
    try:
        t0 = C.clock()
        lab.up()
        out["up"].append(C.clock() - t0)
        netns = {x.name: x.netns for x in lab.plan.nodes}
        for _ in range(1 if quick else 3):
            t0 = C.clock()
            reconcile.observe(netns, netns)
            out["observe"].append(C.clock() - t0)
            t0 = C.clock()
            assert not lab.up().changed
            out["up again"].append(C.clock() - t0)
            for h in (x for x in lab.plan.nodes if x.kind == "host"):
                cidr = next(a for a in lab.plan.addresses_of(h.name) if ":" in a)
                with Rtnl.open(h.netns) as r:
                    r.run_all([Rtnl.req_addr(r.index("eth0"), "eth0", cidr, add=False)])
            t0 = C.clock()
            res = lab.up()
            out["repair"].append(C.clock() - t0)
            assert len(res.repaired) == n, res.repaired[:3]
            t0 = C.clock()
            fl.heal(lab)
            out["heal"].append(C.clock() - t0)
            t0 = C.clock()
            fl.link_state(lab, "h1", "s1", up=False)
            fl.link_state(lab, "h1", "s1", up=True)
            out["link"].append(C.clock() - t0)
    finally:
        fl.forget(lab.name)
        lab.down()
    return {k: C.median(v) for k, v in out.items()}


def main() -> int:
    args = C.parser(__doc__).parse_args()
    C.sigterm_as_interrupt()
    print(C.machine_info())
    rows = []
    for n in (100, 1000):
        r = rounds(n, args.quick)
        rows.append([n, r["up"], r["observe"], r["up again"], r["repair"], r["heal"], r["link"],
                     r["up again"] / r["up"]])
    print(C.table(["N", "up s", "observe s", "up again s", "repair s", "heal s", "link down+up s",
                   "up again / up"], rows))
    print(f"load after: {C.loadavg()}")
    ok = C.check_clean()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
