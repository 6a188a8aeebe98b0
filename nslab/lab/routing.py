"""Static routes for `routing: auto` (pure).

- A host with a router on one of its segments gets `default via` that router (v4 and v6): the first such
  segment in interface order, the first router by name on it (the one that holds .1).
- A router gets a route to every segment it is not on, via the next hop of a shortest path through routers
  (BFS by hop count; ties go to the lower router name, then the earlier segment), so every host reaches
  every other host whenever routers connect their segments (rings and leaf-spine included).
- Hosts never forward, so a segment reachable only through a host is not routed, and hosts on a segment
  without a router get no default route.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..names import natural_key
from .addressing import Addressing, Port


@dataclass(frozen=True)
class RoutePlan:
    node: str
    dst: str  # "default" or a CIDR; the family is that of `via`
    via: str
    dev: str
    static: bool = False  # declared by the file (`routes:`), not computed by routing: auto


def compute_routes(addr: Addressing) -> list[RoutePlan]:
    kinds = dict(addr.nodes)
    segs = addr.segments
    # ports of each node by segment, in interface order
    node_ports: dict[str, dict[int, Port]] = {}
    for p in addr.ports:
        if p.segment is not None:
            node_ports.setdefault(p.node, {})[p.segment] = p
    seg_routers = [sorted((p.node for p in s.members if p.kind == "router"), key=natural_key) for s in segs]
    routes: dict[str, list[RoutePlan]] = {}

    for name, kind in addr.nodes:
        if kind != "host":
            continue
        for seg, port in node_ports.get(name, {}).items():
            if seg_routers[seg]:
                gw = node_ports[seg_routers[seg][0]][seg]
                routes[name] = [RoutePlan(name, "default", a.address, port.ifname) for a in (gw.ipv4, gw.ipv6) if a]
                break

    # router adjacency: neighbour -> first shared segment, neighbours in name order
    adj: dict[str, dict[str, int]] = {}
    for s, routers in enumerate(seg_routers):
        for r in routers:
            for n in routers:
                if n != r:
                    adj.setdefault(r, {}).setdefault(n, s)
    order = {r: sorted(nbrs, key=natural_key) for r, nbrs in adj.items()}
    rank = {name: i for i, name in enumerate(sorted(kinds, key=natural_key))}

    for name, kind in addr.nodes:
        if kind != "router":
            continue
        first_hop: dict[str, str] = {name: name}
        dist = {name: 0}
        queue = deque([name])
        while queue:
            x = queue.popleft()
            for y in order.get(x, []):
                if y not in dist:
                    dist[y] = dist[x] + 1
                    first_hop[y] = y if x == name else first_hop[x]
                    queue.append(y)
        mine = node_ports.get(name, {})
        v4: list[RoutePlan] = []
        v6: list[RoutePlan] = []
        for s, segment in enumerate(segs):
            if s in mine:
                continue
            reached = [r for r in seg_routers[s] if r in dist]
            if not reached:
                continue
            target = min(reached, key=lambda r: (dist[r], rank[r]))
            hop = first_hop[target]
            shared = adj[name][hop]
            gw, dev = node_ports[hop][shared], mine[shared].ifname
            if segment.ipv4 is not None and gw.ipv4 is not None:
                v4.append(RoutePlan(name, str(segment.ipv4), gw.ipv4.address, dev))
            if segment.ipv6 is not None and gw.ipv6 is not None:
                v6.append(RoutePlan(name, str(segment.ipv6), gw.ipv6.address, dev))
        routes[name] = v4 + v6

    return [r for name, _ in addr.nodes for r in routes.get(name, [])]
