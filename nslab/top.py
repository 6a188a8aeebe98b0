"""Live counters of a lab: per-interface packet and byte rates, errors and drops, node by node.

`sample(lab)` reads every node's links once (one rtnetlink dump per namespace, socket closed right
after: nothing stays open between readings, so a lab can go down while `top` runs). `rates(prev, cur,
dt)` turns two samples into per-second rates. `lo` is left out: lab traffic never crosses it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .errors import NslabError
from .kernel.rtnl import Rtnl

if TYPE_CHECKING:
    from .lab.view import LabView

COUNTERS = ("bytes", "packets", "errors", "dropped")


def sample(lab: LabView) -> dict[str, Any]:
    """{"lab", "time" (monotonic s), "nodes": {node: {"kind", "interfaces": {ifname: {...}}}}}."""
    nodes: dict[str, Any] = {}
    for node in lab.plan.nodes:
        ifaces: dict[str, Any] = {}
        try:
            with Rtnl.open(node.netns) as rtnl:
                links = rtnl.links()
        except NslabError:
            links = []  # the node is gone (lab going down): shown without interfaces
        for lk in links:
            if lk.ifname == "lo":
                continue
            st = lk.stats64
            ifaces[lk.ifname] = {
                "operstate": lk.operstate,
                "stats64": {d: {c: getattr(getattr(st, d), c) for c in COUNTERS} for d in ("rx", "tx")},
            }
        nodes[node.name] = {"kind": node.kind, "interfaces": ifaces}
    return {"lab": lab.name, "time": time.monotonic(), "nodes": nodes}


def rates(prev: dict[str, Any], cur: dict[str, Any], dt: float | None = None) -> dict[str, Any]:
    """Per-second rates between two samples (an interface new in `cur` counts from zero)."""
    dt = dt if dt is not None else cur["time"] - prev["time"]
    dt = max(dt, 1e-6)
    out: dict[str, Any] = {"lab": cur["lab"], "interval": round(dt, 4), "nodes": []}
    for name, node in cur["nodes"].items():
        old = prev["nodes"].get(name, {}).get("interfaces", {})
        ifaces = []
        for ifname, cnt in node["interfaces"].items():
            before = old.get(ifname, {}).get("stats64", {})
            per_s = {
                d: {c: round(max(0, cnt["stats64"][d][c] - before.get(d, {}).get(c, 0)) / dt, 2) for c in COUNTERS}
                for d in ("rx", "tx")
            }
            ifaces.append({"ifname": ifname, "operstate": cnt["operstate"], "stats64": cnt["stats64"],
                           "rates": per_s})
        out["nodes"].append({"node": name, "kind": node["kind"], "interfaces": ifaces})
    return out


def _human(x: float, unit: str) -> str:
    for prefix in ("", "k", "M", "G"):
        if abs(x) < 1000:
            return f"{x:.0f}{prefix}{unit}" if not prefix else f"{x:.1f}{prefix}{unit}"
        x /= 1000
    return f"{x:.1f}T{unit}"


def table(r: dict[str, Any], max_rows: int | None = None) -> str:
    """The rates as a terminal table; past max_rows, the busiest interfaces are shown."""
    rows = []
    for node in r["nodes"]:
        for i in node["interfaces"]:
            rx, tx = i["rates"]["rx"], i["rates"]["tx"]
            busy = rx["bytes"] + tx["bytes"]
            err = rx["errors"] + tx["errors"]
            drop = rx["dropped"] + tx["dropped"]
            rows.append((busy, [node["node"], i["ifname"], i["operstate"],
                                _human(rx["packets"], "p/s"), _human(8 * rx["bytes"], "b/s"),
                                _human(tx["packets"], "p/s"), _human(8 * tx["bytes"], "b/s"),
                                _human(err, "/s"), _human(drop, "/s"),
                                str(i["stats64"]["rx"]["errors"] + i["stats64"]["tx"]["errors"]),
                                str(i["stats64"]["rx"]["dropped"] + i["stats64"]["tx"]["dropped"])]))
    hidden = 0
    if max_rows is not None and len(rows) > max_rows:
        keep = {id(r) for r in sorted(rows, key=lambda x: -x[0])[:max_rows]}
        hidden = len(rows) - max_rows
        rows = [r for r in rows if id(r) in keep]
    head = ["NODE", "IFACE", "STATE", "RX", "RX", "TX", "TX", "ERR", "DROP", "ERRS", "DROPS"]
    cells = [head] + [r[1] for r in rows]
    widths = [max(len(c[k]) for c in cells) for k in range(len(head))]
    lines = ["  ".join(c.ljust(w) if k < 3 else c.rjust(w) for k, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in cells]
    if hidden:
        lines.append(f"... {hidden} quieter interfaces not shown (a bigger terminal, or --json --once)")
    return "\n".join(lines)
