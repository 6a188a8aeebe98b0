"""The node table `lab up` ends with, as containerlab's deploy does: node, kind, namespace, interfaces and
addresses. Pure: made from the plan (what `up` has just created and checked)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..lab.plan import Plan

MAX_ROWS = 200  # nodes shown; the rest are counted (--json and `lab status` have them all)


def node_rows(plan: Plan) -> list[dict[str, Any]]:
    """One entry per node: {node, kind, netns, interfaces: [{ifname, ipv4: [...], ipv6: [...]}]}."""
    rows = []
    for n in plan.nodes:
        ifaces = []
        for i in plan.interfaces_of(n.name):
            v4 = [a for a in i.addresses if ipaddress.ip_interface(a).version == 4]
            v6 = [a for a in i.addresses if ipaddress.ip_interface(a).version == 6]
            ifaces.append({"ifname": i.ifname, "ipv4": v4, "ipv6": v6})
        if n.loopback:  # the file's `loopback:` addresses
            ifaces.append({"ifname": "lo", "ipv4": [a for a in n.loopback if ":" not in a],
                           "ipv6": [a for a in n.loopback if ":" in a]})
        rows.append({"node": n.name, "kind": n.kind, "netns": n.netns, "interfaces": ifaces})
    return rows


def node_settings(plan: Plan, node: str) -> dict[str, Any]:
    """What the topology file gave NODE besides links (`lab status --json`): env, sysctls, its declared
    routes, loopback addresses and exec commands, as planned (`${...}` expanded)."""
    n = plan.node(node)
    return {"env": dict(n.env), "sysctls": dict(n.sysctls),
            "static_routes": [{"to": r.dst, "via": r.via, "dev": r.dev} for r in plan.routes_of(node) if r.static],
            "loopback": list(n.loopback), "exec": [list(c) for c in n.exec]}


def _lines(row: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(interface, IPv4, IPv6) lines of a node: a switch in one line (its bridge and port count)."""
    ifaces = row["interfaces"]
    if row["kind"] == "switch":
        return [(f"br0, {len(ifaces)} port{'s' if len(ifaces) != 1 else ''}", "", "")]
    out = []
    for i in ifaces:
        for k in range(max(1, len(i["ipv4"]), len(i["ipv6"]))):
            out.append((i["ifname"] if k == 0 else "", i["ipv4"][k] if k < len(i["ipv4"]) else "",
                        i["ipv6"][k] if k < len(i["ipv6"]) else ""))
    return out or [("", "", "")]


def format_table(rows: list[dict[str, Any]], max_rows: int = MAX_ROWS) -> str:
    """An ASCII table: +---+ borders, a header, one line per interface (the node's cells on its first)."""
    header = ("#", "Node", "Kind", "Netns", "Interface", "IPv4", "IPv6")
    body: list[tuple[str, ...]] = []
    for k, row in enumerate(rows[:max_rows], 1):
        for j, (ifname, v4, v6) in enumerate(_lines(row)):
            first = (str(k), row["node"], row["kind"], row["netns"]) if j == 0 else ("", "", "", "")
            body.append((*first, ifname, v4, v6))
    widths = [max(len(c) for c in col) for col in zip(header, *body, strict=True)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [rule, line(header), rule, *(line(b) for b in body), rule]
    if len(rows) > max_rows:
        out.append(f"... and {len(rows) - max_rows} more nodes (all of them: --json, or 'nslab lab status')")
    return "\n".join(out)
