"""Create and delete 100 namespaces wired to a bridge: nslab's kernel door against `ip -batch`.

Workload (research/netlink.md §3, with the bridge in a hub namespace instead of the root one):
  - hub namespace `nslabb-hub` (created once per run, shared by both methods) holding bridge
    `nslabb-br` with 10.200.0.1/16, up (bridge add/address/up is part of each setup);
  - per namespace `nslabb-<i>`: netns add; veth `nslabb-h<i>` (in the hub) <-> `nslabb-p<i>` created
    directly inside the namespace; host end enslaved to the bridge and up; lo up; 10.200.K.x/16 on the
    peer; peer up; default route via 10.200.0.1.
Setup is timed from nothing to all of it done (sockets and fds closed). Teardown deletes the 100
namespaces and is timed until the kernel has reaped the veths (the bridge has no ports left); the
bridge is then deleted untimed. Methods, interleaved round by round (order alternates):
  nslab     zero-fork netns.create(then=socket+fd), one batched Rtnl.run for the hub's 100 veths,
            one batched Rtnl.run per namespace; netns.delete per name.
  ip-batch  one `ip -b -` of 100 `netns add`, one `ip -n nslabb-hub -b -` (bridge + veths), one
            `ip -n nslabb-<i> -b -` per namespace; one `ip -b -` of 100 `netns del`.
After every setup a check (with `ip -j` as the oracle) confirms 100 bridge ports UP and, in three sampled
namespaces, lo UP, the peer UP with its address, the default route. No traffic is sent.
Everything created is named nslabb-* and deleted by exact name, also on failure or Ctrl-C.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import _common as C

from nslab.kernel import netns
from nslab.kernel.netlink import NetlinkSocket
from nslab.kernel.rtnl import RTM_GETLINK, Rtnl

HUB = C.PREFIX + "hub"
BR = C.PREFIX + "br"
BR_INDEX = 10  # explicit ifindex in the hub (ours alone): no lookup round trip
H_INDEX0 = 1000
GW = "10.200.0.1"
_HOST_TAG = (C.PREFIX + "h").encode()  # IFLA_IFNAME of a host end starts so
_BR_TAG = BR.encode() + b"\0"
FLOOR_MS = 1.6  # DESIGN.md §2: minimal own rtnetlink codec on zero-fork sockets, ms per namespace


def ns_name(i: int) -> str:
    return f"{C.PREFIX}{i}"


def host_if(i: int) -> str:
    return f"{C.PREFIX}h{i}"


def peer_if(i: int) -> str:
    return f"{C.PREFIX}p{i}"


def addr(i: int) -> str:
    k = i + 2
    return f"10.200.{k >> 8}.{k & 255}/16"


def _sock_and_fd() -> tuple[NetlinkSocket, int]:
    # Runs on the door thread while it is inside the new namespace.
    return NetlinkSocket(), os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


class Bench:
    def __init__(self, n: int) -> None:
        self.n = n
        self.hub: Rtnl | None = None
        self.phases: dict[str, list[float]] = {}

    # ---- fixture -------------------------------------------------------------------------------
    def open_hub(self) -> None:
        sock = netns.create(HUB, then=NetlinkSocket)
        assert sock is not None
        self.hub = Rtnl(sock, HUB)
        self.hub.run_all([Rtnl.req_set_link(1, "lo", up=True)])

    def hub_ports(self) -> int:
        """Veth host ends left in the hub, counted in a raw link dump (no decoding: polls stay cheap)."""
        assert self.hub is not None
        msgs = self.hub.nl.dump(RTM_GETLINK, bytes(16))
        return sum(_HOST_TAG in m.body for m in msgs)

    def delete_bridge(self) -> None:
        assert self.hub is not None
        msgs = self.hub.nl.dump(RTM_GETLINK, bytes(16))
        for m in msgs:
            if _BR_TAG in m.body:
                index = int.from_bytes(m.body[4:8], sys.byteorder, signed=True)
                self.hub.run_all([Rtnl.req_del_link(index, BR)])

    def wait_ports_gone(self, timeout: float = 10.0) -> None:
        if not C.wait_until(lambda: self.hub_ports() == 0, timeout):
            raise RuntimeError(f"veths still in {HUB} {timeout} s after deleting the namespaces")

    def _phase(self, name: str, t0: float) -> float:
        t = C.clock()
        self.phases.setdefault(name, []).append(t - t0)
        return t

    # ---- (a) nslab -------------------------------------------------------------------------------
    def setup_nslab(self) -> None:
        assert self.hub is not None
        hub = self.hub
        opened: list[tuple[NetlinkSocket, int]] = []
        try:
            t0 = t = C.clock()
            hub.run_all([
                Rtnl.req_add_link(BR, "bridge", index=BR_INDEX, up=True),
                Rtnl.req_addr(BR_INDEX, BR, GW + "/16"),
            ])
            t = self._phase("a.bridge", t)
            for i in range(self.n):
                got = netns.create(ns_name(i), then=_sock_and_fd)
                assert got is not None
                opened.append(got)
            t = self._phase("a.netns_create", t)
            hub.run_all([
                Rtnl.req_add_link(host_if(i), "veth", Rtnl.veth_peer(peer_if(i), netns_fd=fd),
                                  index=H_INDEX0 + i, master=BR_INDEX, up=True)
                for i, (_s, fd) in enumerate(opened)
            ])
            t = self._phase("a.hub_veths", t)
            for i, (sock, _fd) in enumerate(opened):
                r = Rtnl(sock, ns_name(i))
                p = peer_if(i)
                # The peer's index is looked up (one round trip): veth_peer(up=True) cannot bring the
                # peer up at creation (the kernel's veth_open answers ENOTCONN), and takes no index.
                pidx = r.index(p)
                r.run_all([
                    Rtnl.req_set_link(1, "lo", up=True),
                    Rtnl.req_set_link(pidx, p, up=True),
                    Rtnl.req_addr(pidx, p, addr(i)),
                    Rtnl.req_route("default", gateway=GW),
                ])
            t = self._phase("a.ns_config", t)
        finally:
            for sock, fd in opened:
                sock.close()
                os.close(fd)
        self._phase("a.close", t)
        self.phases.setdefault("a.total", []).append(C.clock() - t0)

    def teardown_nslab(self) -> None:
        for i in range(self.n):
            netns.delete(ns_name(i))

    # ---- (b) ip -batch ---------------------------------------------------------------------------
    def setup_ip(self) -> None:
        _ip(["-b", "-"], "".join(f"netns add {ns_name(i)}\n" for i in range(self.n)))
        lines = [f"link add {BR} type bridge", f"address add {GW}/16 dev {BR}", f"link set {BR} up"]
        for i in range(self.n):
            lines.append(f"link add {host_if(i)} type veth peer name {peer_if(i)} netns {ns_name(i)}")
            lines.append(f"link set {host_if(i)} master {BR} up")
        _ip(["-n", HUB, "-b", "-"], "\n".join(lines) + "\n")
        for i in range(self.n):
            p = peer_if(i)
            _ip(["-n", ns_name(i), "-b", "-"],
                f"link set lo up\naddress add {addr(i)} dev {p}\nlink set {p} up\n"
                f"route add default via {GW}\n")

    def teardown_ip(self) -> None:
        _ip(["-b", "-"], "".join(f"netns del {ns_name(i)}\n" for i in range(self.n)))

    # ---- checks and cleanup ------------------------------------------------------------------------
    def verify(self) -> None:
        """`ip -j` as the oracle: 100 ports UP on the bridge (with the bridge's index fixed for nslab,
        found by name for ip), and three sampled namespaces fully configured."""
        ports = _ip_json(["-n", HUB, "link", "show", "master", BR])
        up = [p for p in ports if "UP" in p["flags"]]
        if len(ports) != self.n or len(up) != self.n:
            raise RuntimeError(f"bridge {BR}: {len(ports)} ports, {len(up)} UP; want {self.n}")
        for i in sorted({0, self.n // 2, self.n - 1}):
            ns, p = ns_name(i), peer_if(i)
            links = {lk["ifname"]: lk for lk in _ip_json(["-n", ns, "-d", "link", "show"])}
            if "UP" not in links["lo"]["flags"] or "UP" not in links[p]["flags"]:
                raise RuntimeError(f"{ns}: lo or {p} not UP")
            if links[p].get("linkinfo", {}).get("info_kind") != "veth":
                raise RuntimeError(f"{ns}: {p} is not a veth")
            a = _ip_json(["-n", ns, "-4", "addr", "show", "dev", p])
            have = {f"{x['local']}/{x['prefixlen']}" for x in a[0]["addr_info"]}
            if addr(i) not in have:
                raise RuntimeError(f"{ns}: {p} lacks {addr(i)} (has {have})")
            routes = _ip_json(["-n", ns, "-4", "route", "show", "default"])
            if not any(r.get("gateway") == GW and r.get("dev") == p for r in routes):
                raise RuntimeError(f"{ns}: no default route via {GW} dev {p} ({routes})")

    def cleanup(self) -> None:
        names = [ns_name(i) for i in range(self.n)]
        C.delete_netns_exact(names)
        if self.hub is not None:
            try:
                C.wait_until(lambda: self.hub_ports() == 0, 5.0)
                self.delete_bridge()
            except Exception as exc:
                print(f"cleanup: {exc}", file=sys.stderr)


def _ip(args: list[str], stdin: str) -> None:
    res = subprocess.run(["ip", *args], input=stdin, text=True, capture_output=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {res.stderr.strip()}")


def _ip_json(args: list[str]) -> list[dict[str, Any]]:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")  # type: ignore[no-any-return]


def run_round(b: Bench, setup: Callable[[], None], teardown: Callable[[], None]) -> tuple[float, float, float]:
    t0 = C.clock()
    setup()
    t_setup = C.clock() - t0
    b.verify()
    t0 = C.clock()
    teardown()
    t_call = C.clock() - t0
    b.wait_ports_gone()
    t_gone = C.clock() - t0
    b.delete_bridge()
    time.sleep(0.3)  # let the kernel's asynchronous namespace cleanup finish before the next round
    return t_setup, t_call, t_gone


def main() -> int:
    p = C.parser(__doc__)
    p.add_argument("-n", type=int, default=100, help="namespaces per round (default 100)")
    p.add_argument("--rounds", type=int, help="rounds per method (default 5, --quick 2)")
    p.add_argument("--profile", action="store_true", help="also cProfile one extra nslab setup")
    args = p.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    C.sigterm_as_interrupt()
    print(C.machine_info())
    if C.bench_netns_names():
        print(f"namespaces named {C.PREFIX}* exist already (a previous run?): {C.bench_netns_names()}; "
              "delete them first", file=sys.stderr)
        return 1
    b = Bench(args.n)
    methods = {"nslab": (b.setup_nslab, b.teardown_nslab), "ip-batch": (b.setup_ip, b.teardown_ip)}
    res: dict[str, list[tuple[float, float, float]]] = {m: [] for m in methods}
    load0 = C.loadavg()
    try:
        b.open_hub()
        # Warm-up: one small round of each (imports, page cache for ip, first-use kernel paths).
        small = Bench(min(args.n, 5))
        small.hub = b.hub
        try:
            run_round(small, small.setup_nslab, small.teardown_nslab)
            run_round(small, small.setup_ip, small.teardown_ip)
        finally:
            small.cleanup()
        order = list(methods)
        for r in range(rounds):
            for m in order if r % 2 == 0 else order[::-1]:
                setup, teardown = methods[m]
                res[m].append(run_round(b, setup, teardown))
        if args.profile:
            pb = Bench(args.n)  # own phase records: the profiled run is not counted above
            pb.hub = b.hub
            prof = cProfile.Profile()
            prof.enable()
            pb.setup_nslab()
            prof.disable()
            pb.verify()
            pb.teardown_nslab()
            pb.wait_ports_gone()
            pb.delete_bridge()
    finally:
        b.cleanup()
        if b.hub is not None:
            b.hub.close()
        C.delete_netns_exact([HUB])
        clean = C.check_clean()

    n = args.n
    print(f"\n{n} namespaces (veth to a bridge in {HUB}, address, default route, links up); "
          f"{rounds} rounds per method, interleaved; load {load0} -> {C.loadavg()}")
    rows = []
    med = {m: [C.median([x[k] for x in rs]) for k in range(3)] for m, rs in res.items()}
    for m, rs in res.items():
        s = [x[0] for x in rs]
        rows.append([m, med[m][0] * 1e3 / n, f"{min(s) * 1e3 / n:.2f}-{max(s) * 1e3 / n:.2f}",
                     med[m][0], med[m][1] * 1e3 / n, med[m][2] * 1e3 / n, med[m][2],
                     med[m][0] / med["ip-batch"][0], med[m][2] / med["ip-batch"][2],
                     med[m][0] * 1e3 / n / FLOOR_MS])
    print(C.table(["method", "setup ms/ns", "[min-max]", "setup s", "del call ms/ns", "del+gone ms/ns",
                   "del+gone s", "setup/ip", "teardown/ip", "setup/floor"], rows))
    print(f"floor (DESIGN.md §2, minimal codec, bridge in root): {FLOOR_MS} ms/ns; setup/floor = nslab or ip "
          "setup ms/ns divided by it")
    print("\nnslab setup phases (median ms per round, ms per namespace):")
    print(C.table(["phase", "ms", "ms/ns"],
                  [[k[2:], C.median(v) * 1e3, C.median(v) * 1e3 / n] for k, v in b.phases.items()
                   if k.startswith("a.")]))
    if args.profile:
        print("\ncProfile of one nslab setup (top by own time):")
        st = pstats.Stats(prof)
        st.sort_stats("tottime").print_stats(18)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
