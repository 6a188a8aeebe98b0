"""Oracles for "the lab is its plan again": the kernel read with iproute2 (`ip -j`), nftables (`nft list ruleset`)
and tc (`tc -j qdisc`), and reachability measured with iputils `ping` — none of them nslab's code.

Shared by the heal, drift and kill tests (`from .lab_oracle import ...`).
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
from collections.abc import Iterable

from conftest import ipj

from nslab.lab.lab import Lab
from nslab.lab.plan import Plan
from nslab.reach import ReachResult, reach

NSLAB_PROTO = "94"  # rtnl.RTPROT_NSLAB as `ip -j route` prints it
End = tuple[str, str]


def _cidr(text: str) -> str:
    return str(ipaddress.ip_interface(text))


def _dst(text: str, family: int) -> str:
    if text == "default":
        return "default"
    net = ipaddress.ip_network(text if "/" in text else f"{text}/{32 if family == 4 else 128}", strict=False)
    return str(net)


def routes_of(netns: str) -> list[dict[str, object]]:
    """Main-table routes of both families, from `ip -j route` (each tagged with its family)."""
    out: list[dict[str, object]] = []
    for fam, flag in ((4, "-4"), (6, "-6")):
        for r in ipj(netns, flag, "route", "show", "table", "main"):
            r["family"] = fam
            out.append(r)
    return out


def plan_differences(plan: Plan, down: Iterable[End] = (), nodes: Iterable[str] | None = None) -> list[str]:
    """How the kernel (read with `ip -j`) differs from PLAN: planned interfaces up (except DOWN ends) and in
    their bridge, planned addresses on every up interface, exactly the planned routes carrying nslab's protocol.
    An empty list: the lab is its plan."""
    held = set(down)
    names = [n.name for n in plan.nodes] if nodes is None else list(nodes)
    out: list[str] = []
    for name in names:
        ns = plan.node(name).netns
        links = {e["ifname"]: e for e in ipj(ns, "addr")}
        up_devs = set()
        for i in plan.interfaces_of(name):
            e = links.get(i.ifname)
            if e is None:
                out.append(f"{name}: {i.ifname} missing")
                continue
            want_up = (name, i.ifname) not in held
            if ("UP" in e["flags"]) != want_up:
                out.append(f"{name}: {i.ifname} {'down' if want_up else 'up'}")
            if i.master and e.get("master") != i.master:
                out.append(f"{name}: {i.ifname} not in {i.master}")
            if e.get("mtu") != (i.mtu or 1500):
                out.append(f"{name}: {i.ifname} mtu {e.get('mtu')}")
            if not want_up:
                continue
            up_devs.add(i.ifname)
            have = {_cidr(f"{a['local']}/{a['prefixlen']}") for a in e.get("addr_info", [])}
            out += [f"{name}: address {c} missing on {i.ifname}" for c in i.addresses if _cidr(c) not in have]
        node = plan.node(name)
        if node.forwarding:  # read by procps' sysctl inside the namespace
            fwd = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward",
                                  "net.ipv6.conf.all.forwarding"], capture_output=True, text=True, check=True)
            if fwd.stdout.split() != ["1", "1"]:
                out.append(f"{name}: forwarding {' '.join(fwd.stdout.split())}")
        if node.bridge and "UP" not in links.get(node.bridge, {}).get("flags", []):
            out.append(f"{name}: bridge {node.bridge} not up")
        want = sorted((_dst(r.dst, ipaddress.ip_address(r.via).version), r.via, r.dev)
                      for r in plan.routes_of(name) if r.dev in up_devs)
        have_routes = sorted((_dst(str(r["dst"]), int(str(r["family"]))), str(r.get("gateway")), str(r.get("dev")))
                             for r in routes_of(ns) if str(r.get("protocol")) == NSLAB_PROTO)
        for r in want:
            if r not in have_routes:
                out.append(f"{name}: route {r} missing")
        for r in have_routes:
            if r not in want:
                out.append(f"{name}: route {r} is nslab's and not planned")
    return out


def nslab_rules_left(plan: Plan) -> list[str]:
    """Nodes whose kernel still holds a table named nslab (`nft list ruleset`) or a qdisc 5e1a: (`tc -j qdisc`).
    The programs are the oracle; they are started in each node through nslab's fast spawn path (a parked
    thread: `ip netns exec` costs ~10 ms a call here)."""
    from nslab.kernel import nft, tc

    out = []
    for n in plan.nodes:
        rules = nft.ruleset(n.netns)
        if any(line.startswith("table ") and line.split()[2] == "nslab" for line in rules.splitlines()):
            out.append(f"{n.name}: nft table nslab")
        out += [f"{n.name}: qdisc 5e1a: on {q.get('dev')}" for q in tc.qdiscs(n.netns) if q.get("handle") == "5e1a:"]
    return out


def hosts(plan: Plan) -> list[str]:
    return [n.name for n in plan.nodes if n.kind == "host"]


def address(plan: Plan, node: str, family: int) -> str:
    return next(str(ipaddress.ip_interface(c).ip) for c in plan.addresses_of(node)
                if ipaddress.ip_interface(c).version == family)


def ping_matrix(lab: Lab, family: int) -> list[tuple[str, str]]:
    """Every host pings every other host's first address (iputils ping, all at once); the pairs that failed."""
    plan = lab.plan
    hs = hosts(plan)
    procs = {}
    for s in hs:
        for d in hs:
            if s != d:
                argv = ["ping", "-n", "-q", f"-{family}", "-c", "1", "-i", "0.2", "-w", "5", address(plan, d, family)]
                procs[(s, d)] = lab[s].popen(argv, resolve=False, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)
    return [p for p, proc in procs.items() if proc.wait(timeout=20) != 0]


def converge(lab: Lab, within: float = 5.0) -> tuple[float, ReachResult, ReachResult]:
    """Probe the full matrix, IPv4 and IPv6, in rounds until one round finds every pair reachable; returns
    (when that round started, in seconds after the call; its v4 result; its v6 result). A round that starts
    after WITHIN is not tried: then the last results are returned, with the time they were taken."""
    t0 = time.monotonic()
    while True:
        start = time.monotonic() - t0
        r4 = reach(lab, timeout=0.5, one_way=False)
        r6 = reach(lab, family=6, timeout=0.5, one_way=False)
        if r4.ok and r6.ok:
            return start, r4, r6
        if time.monotonic() - t0 > within:
            return time.monotonic() - t0, r4, r6
        time.sleep(0.05)
