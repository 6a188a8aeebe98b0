"""Text views in the shape of iproute2's `ip link`, `ip addr`, `ip route` and `ip neigh` output, with `ip -s`'s
counters and `ip -br`'s brief lines (used by the CLI and by nslab.testing)."""

from __future__ import annotations

from typing import Any

from .model import Address, Link, Neighbour, Route, Stats

Index = dict[int, Link]  # ifindex -> device, of the whole namespace: names and states of lower devices


def link_name(lk: Link, index: Index | None = None) -> str:
    """NAME@LINK as ip prints it (lib/utils.c print_name_and_link): @ifN for a peer in another namespace, the
    lower device's name in this one (ifN when unknown). Without INDEX, only what the record itself tells."""
    if lk.link_index is None:
        return lk.ifname
    if lk.link_netnsid is not None:
        return f"{lk.ifname}@if{lk.link_index}"
    if index is None:
        return lk.ifname
    lower = index.get(lk.link_index)
    return f"{lk.ifname}@{lower.ifname if lower else f'if{lk.link_index}'}"


def link_flags(lk: Link, index: Index | None = None) -> list[str]:
    """The flag words, and M-DOWN after them when the lower device in this namespace is down (as ip)."""
    lower = index.get(lk.link_index) if index is not None and lk.link_index is not None else None
    mdown = lower is not None and lk.link_netnsid is None and not lower.up
    return [*lk.flags, "M-DOWN"] if mdown else list(lk.flags)


def link_lines(lk: Link, index: Index | None = None, netns_names: dict[int, str] | None = None) -> list[str]:
    """`ip link` lines of one device. INDEX gives NAME@LOWER and M-DOWN; NETNS_NAMES (netnsid -> name in
    /run/netns) gives `link-netns NAME` where ip prints it, `link-netnsid N` otherwise."""
    head = f"{lk.ifindex}: {link_name(lk, index)}: <{','.join(link_flags(lk, index))}> mtu {lk.mtu}"
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
            peer = (netns_names or {}).get(lk.link_netnsid)
            line += (f" link-netns {peer}" if peer is not None else
                     f" link-netnsid {lk.link_netnsid}" if lk.link_netnsid >= 0 else " link-netnsid unknown")
        out.append(line)
    else:
        out.append(f"    link/{lk.link_type} ")  # ip prints "link/TYPE " and then the address, if any
    if lk.kind:
        out.append(" ".join([f"    {lk.kind}", *(f"{k} {v}" for k, v in lk.info_data)]))  # ip -d's first words
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


# ---- ip -s: the counters block (ip/ipaddress.c print_stats64): right-aligned columns, each as wide as its
# widest number or header word, the same widths for RX and TX.
def stats_lines(lk: Link, level: int = 1) -> list[str]:
    rx, tx = lk.stats64.rx, lk.stats64.tx
    cc = lk.carrier_changes
    cols = [len("*X errors:"), len("packets"), len("errors"), len("dropped"), len("heartbt"), len("overrun"),
            len("compressed"), len("otherhost")]

    def size(*values: int) -> None:
        for i, v in enumerate(values):
            cols[i] = max(cols[i], len(str(v)))

    size(rx.bytes, rx.packets, rx.errors, rx.dropped, rx.missed_errors, rx.multicast, rx.compressed, 0)
    if level > 1:
        size(0, rx.length_errors, rx.crc_errors, rx.frame_errors, rx.fifo_errors, rx.over_errors, rx.nohandler,
             rx.otherhost)
    size(tx.bytes, tx.packets, tx.errors, tx.dropped, tx.carrier_errors, tx.collisions, tx.compressed, 0)
    if level > 1:
        size(0, 0, tx.aborted_errors, tx.fifo_errors, tx.window_errors, tx.heartbeat_errors, cc or 0, 0)

    c = cols

    def nums(*pairs: tuple[int, int]) -> str:  # (column, value): print_num's "%*llu "
        return "".join(f"{v:>{c[i]}} " for i, v in pairs)

    rxc = [(6, rx.compressed)] if rx.compressed else []
    txc = [(6, tx.compressed)] if tx.compressed else []
    out = [f"    RX: {'bytes':>{c[0] - 4}} {'packets':>{c[1]}} {'errors':>{c[2]}} {'dropped':>{c[3]}} "
           f"{'missed':>{c[4]}} {'mcast':>{c[5]}} {'compressed' if rx.compressed else '':>{c[6]}}",
           "    " + nums((0, rx.bytes), (1, rx.packets), (2, rx.errors), (3, rx.dropped), (4, rx.missed_errors),
                         (5, rx.multicast), *rxc)]
    if level > 1:
        out.append(f"    RX errors:{'':>{c[0] - 10}} {'length':>{c[1]}} {'crc':>{c[2]}} {'frame':>{c[3]}} "
                   f"{'fifo':>{c[4]}} {'overrun':>{c[5]}}"
                   + (f"{' nohandler':>{c[6] + 1}}" if rx.nohandler else "")
                   + (f"{' otherhost':>{c[7] + 1}}" if rx.otherhost else ""))
        extra = ([(6, rx.nohandler)] if rx.nohandler else []) + ([(7, rx.otherhost)] if rx.otherhost else [])
        out.append(" " * (c[0] + 5) + nums((1, rx.length_errors), (2, rx.crc_errors), (3, rx.frame_errors),
                                           (4, rx.fifo_errors), (5, rx.over_errors), *extra))
    out += [f"    TX: {'bytes':>{c[0] - 4}} {'packets':>{c[1]}} {'errors':>{c[2]}} {'dropped':>{c[3]}} "
            f"{'carrier':>{c[4]}} {'collsns':>{c[5]}} {'compressed' if tx.compressed else '':>{c[6]}}",
            "    " + nums((0, tx.bytes), (1, tx.packets), (2, tx.errors), (3, tx.dropped), (4, tx.carrier_errors),
                          (5, tx.collisions), *txc)]
    if level > 1:
        out.append(f"    TX errors:{'':>{c[0] - 10}} {'aborted':>{c[1]}} {'fifo':>{c[2]}} {'window':>{c[3]}} "
                   f"{'heartbt':>{c[4]}} {'transns' if cc is not None else '':>{c[5]}}")
        out.append(" " * (c[0] + 5) + nums((1, tx.aborted_errors), (2, tx.fifo_errors), (3, tx.window_errors),
                                           (4, tx.heartbeat_errors), *([(5, cc)] if cc is not None else [])))
    return out


def _rx_json(s: Stats, level: int) -> dict[str, int]:
    out = {"bytes": s.bytes, "packets": s.packets, "errors": s.errors, "dropped": s.dropped,
           "over_errors": s.over_errors, "multicast": s.multicast}
    if s.compressed:
        out["compressed"] = s.compressed
    if level > 1:
        out.update(length_errors=s.length_errors, crc_errors=s.crc_errors, frame_errors=s.frame_errors,
                   fifo_errors=s.fifo_errors, missed_errors=s.missed_errors)
        if s.nohandler:
            out["nohandler"] = s.nohandler
        if s.otherhost:
            out["otherhost"] = s.otherhost
    return out


def stats64_json(lk: Link, level: int = 1) -> dict[str, Any]:
    """`ip -j -s link`'s stats64 object, key for key (`-s -s` adds the error details)."""
    tx = lk.stats64.tx
    txd = {"bytes": tx.bytes, "packets": tx.packets, "errors": tx.errors, "dropped": tx.dropped,
           "carrier_errors": tx.carrier_errors, "collisions": tx.collisions}
    if tx.compressed:
        txd["compressed"] = tx.compressed
    if level > 1:
        txd.update(aborted_errors=tx.aborted_errors, fifo_errors=tx.fifo_errors, window_errors=tx.window_errors,
                   heartbeat_errors=tx.heartbeat_errors)
        if lk.carrier_changes is not None:
            txd["carrier_changes"] = lk.carrier_changes
    return {"rx": _rx_json(lk.stats64.rx, level), "tx": txd}


# ---- ip -br: one line per device (ipaddress.c print_linkinfo_brief, print_addrinfo's brief path)
def brief_link_line(lk: Link, index: Index | None = None) -> str:
    line = f"{link_name(lk, index):<16} {lk.operstate:<14} "
    if lk.address is not None:
        line += f"{lk.address} "
    return line + f"<{','.join(link_flags(lk, index))}> "


def brief_addr_line(lk: Link, index: Index | None = None) -> str:
    line = f"{link_name(lk, index):<16} {lk.operstate:<14} "
    return line + "".join(f"{a.local}/{a.prefixlen} " for a in lk.addr_info)


def lower_json(lk: Link, index: Index | None) -> dict[str, Any]:
    """ip -j's keys for the lower device: link_index for a peer in another namespace, link (a name) here."""
    if lk.link_index is None:
        return {}
    if lk.link_netnsid is not None:
        return {"link_index": lk.link_index}
    lower = index.get(lk.link_index) if index is not None else None
    return {"link": lower.ifname if lower else f"if{lk.link_index}"}


def brief_link_json(lk: Link, index: Index | None = None, with_addrs: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {**lower_json(lk, index), "ifname": lk.ifname, "operstate": lk.operstate}
    if with_addrs:
        out["addr_info"] = [{"local": a.local, "prefixlen": a.prefixlen} for a in lk.addr_info]
    else:
        if lk.address is not None:
            out["address"] = lk.address
        out["flags"] = link_flags(lk, index)
    return out


def neigh_line(n: Neighbour, with_dev: bool = True, stats: bool = False) -> str:
    """One `ip neigh` line (ipneigh.c print_neigh), its trailing blank included (and, with -s, ip's spacing
    of the cache ages: ' ref N used A/B/C' then 'probes N ' with no blank between)."""
    line = f"{n.dst} " if n.dst is not None else ""
    if n.dev is not None and with_dev:
        line += f"dev {n.dev} "
    if n.lladdr is not None:
        line += f"lladdr {n.lladdr} "
    for key in ("router", "proxy", "extern_learn", "offload"):
        if getattr(n, key):
            line += f"{key} "
    if stats and n.cache is not None:
        refcnt, used, confirmed, updated = n.cache
        line += (f" ref {refcnt}" if refcnt else "") + f" used {used}/{confirmed}/{updated}"
    if stats and n.probes is not None:
        line += f"probes {n.probes} "
    return line + "".join(f"{s} " for s in n.state)
