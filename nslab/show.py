"""Text views in the shape of iproute2's `ip link`, `ip addr` and `ip route` output (used by the CLI and by
nslab.testing)."""

from __future__ import annotations

from .model import Address, Link, Route


def link_lines(lk: Link) -> list[str]:
    name = lk.ifname
    if lk.link_index is not None and lk.kind in ("veth", "macvlan", "vxlan"):
        name += f"@if{lk.link_index}" if lk.link_netnsid is not None else ""
    head = f"{lk.ifindex}: {name}: <{','.join(lk.flags)}> mtu {lk.mtu}"
    if lk.master:
        head += f" master {lk.master}"
    head += f" state {lk.operstate}"
    if lk.txqlen:
        head += f" qlen {lk.txqlen}"
    out = [head]
    if lk.address is not None:
        line = f"    link/{lk.link_type} {lk.address}"
        if lk.broadcast is not None:
            line += f" brd {lk.broadcast}"
        if lk.link_netnsid is not None:
            line += f" link-netnsid {lk.link_netnsid}"
        out.append(line)
    else:
        out.append(f"    link/{lk.link_type}")
    if lk.kind:
        out.append(f"    {lk.kind}")
    return out


def addr_line(a: Address) -> str:
    line = f"    {a.family} {a.local}/{a.prefixlen}"
    if a.broadcast:
        line += f" brd {a.broadcast}"
    line += f" scope {a.scope}"
    flags = [f for f in a.flags if f != "dynamic"]
    if flags:
        line += " " + " ".join(flags)
    if a.label and a.family == "inet":
        line += f" {a.label}"
    return line


def route_line(r: Route) -> str:
    parts = [r.dst]
    if r.type != "unicast":
        parts.insert(0, r.type)
    if r.gateway:
        parts += ["via", r.gateway]
    if r.dev:
        parts += ["dev", r.dev]
    if r.protocol != "boot":
        parts += ["proto", r.protocol]
    if r.scope != "global":
        parts += ["scope", r.scope]
    if r.prefsrc:
        parts += ["src", r.prefsrc]
    if r.metric is not None:
        parts += ["metric", str(r.metric)]
    return " ".join(parts)
