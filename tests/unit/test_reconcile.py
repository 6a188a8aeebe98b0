"""The reconcile engine's pure parts, without root: desired state, diff, the requests it would send, the
fault-change scope. The kernel side is measured in test_heal.py, test_drift.py and test_fault_kill.py."""

from __future__ import annotations

import dataclasses
import socket
import struct

import pytest

from nslab import faults as fl
from nslab.kernel.nft import reset_script
from nslab.kernel.rtnl import RTM_DELROUTE, RTM_NEWROUTE, RTPROT_NSLAB
from nslab.lab import reconcile as rc
from nslab.lab.lab import Lab
from nslab.lab.plan import Plan

RESET = reset_script()


@pytest.fixture(scope="module")
def plan() -> Plan:
    return Lab.topo("ring", 3, name="rcx").plan


@pytest.fixture(scope="module")
def star() -> Plan:
    return Lab.topo("single", 2, name="rcs").plan


def as_kernel(want: rc.WantNode) -> rc.SeenNode:
    """The kernel state of a node that is exactly WANT (every route nslab's)."""
    links = {i.ifname: rc.SeenLink(10 + k, "veth", i.up, i.master) for k, i in enumerate(want.ifaces)}
    if want.bridge:
        links[want.bridge] = rc.SeenLink(2, "bridge", True, None)
    routes = tuple(rc.SeenRoute(r.family, r.dst, r.via, r.dev, links[r.dev].ifindex, rc.NSLAB_PROTO, r.metric)
                   for r in want.routes if links[r.dev].up)
    return rc.SeenNode(links=links, addresses={i.ifname: frozenset(i.addresses) for i in want.ifaces if i.up},
                       routes=routes, nft=want.nft is not None, shaped=frozenset(want.rates))


def kinds(changes: list[rc.Change]) -> list[tuple[str, str]]:
    return [(c.kind, c.ifname) for c in changes]


def test_desired_is_the_plan(plan: Plan) -> None:
    want = rc.desired(plan, rc.Faults())
    assert set(want) == {n.name for n in plan.nodes}
    r1 = want["r1"]
    assert [i.ifname for i in r1.ifaces] == ["eth0", "eth1", "eth2"] and all(i.up for i in r1.ifaces)
    assert len(r1.routes) == len(plan.routes_of("r1")) == 6
    assert {r.family for r in r1.routes} == {4, 6}
    h1 = want["h1"]
    assert {(r.dst, r.metric) for r in h1.routes} == {("0.0.0.0/0", 0), ("::/0", 1024)}
    assert h1.routes[0].text() == "default via 10.255.0.1 dev eth0"
    assert r1.nft is None and r1.rates == {}


def test_in_sync_means_no_change(plan: Plan, star: Plan) -> None:
    for p in (plan, star):
        want = rc.desired(p, rc.Faults())
        rep = rc.diff(want, {n: as_kernel(w) for n, w in want.items()}, RESET)
        assert rep.changes == [] and rep.notes == [] and not rep.drifted


def test_missing_route_and_address_are_restored(plan: Plan) -> None:
    w = rc.desired(plan, rc.Faults(), ["h1"])["h1"]
    seen = as_kernel(w)
    seen = dataclasses.replace(seen, routes=seen.routes[1:], addresses={"eth0": frozenset(w.ifaces[0].addresses[:1])})
    ch, notes = rc.diff_node(w, seen, RESET)
    assert notes == []
    assert [(c.kind, c.cidr or (c.route.text() if c.route else "")) for c in ch] == [
        ("address", w.ifaces[0].addresses[1]), ("route-add", "default via 10.255.0.1 dev eth0")]
    assert [c.line() for c in ch] == ["h1: address fd00:6e73::2/64 on eth0 restored",
                                      "h1: route default via 10.255.0.1 dev eth0 restored"]
    assert ch[1].line(done=False) == "h1: route default via 10.255.0.1 dev eth0 is missing"


def test_a_users_route_on_a_planned_destination_is_left_alone(plan: Plan) -> None:
    w = rc.desired(plan, rc.Faults(), ["h1"])["h1"]
    seen = as_kernel(w)
    users = dataclasses.replace(seen.routes[0], protocol="boot", gateway="10.255.0.1")
    ch, notes = rc.diff_node(w, dataclasses.replace(seen, routes=(users, *seen.routes[1:])), RESET)
    assert ch == []
    assert len(notes) == 1 and not notes[0].fatal and "nslab did not make" in notes[0].text
    # A user's route elsewhere, and a user's address: not even mentioned.
    extra = rc.SeenRoute(4, "192.0.2.0/24", "10.255.0.1", "eth0", 10, "boot", 0)
    addrs = {"eth0": seen.addresses["eth0"] | {"198.51.100.7/32"}}
    assert rc.diff_node(w, dataclasses.replace(seen, routes=(*seen.routes, extra), addresses=addrs), RESET) == ([], [])


def test_own_routes_are_corrected_and_unplanned_ones_removed(plan: Plan) -> None:
    w = rc.desired(plan, rc.Faults(), ["r1"])["r1"]
    seen = as_kernel(w)
    wrong = dataclasses.replace(seen.routes[0], gateway="10.255.0.22", dev="eth2", oif=12)
    stale = rc.SeenRoute(4, "10.99.0.0/24", "10.255.0.14", "eth1", 11, rc.NSLAB_PROTO, 0)
    ch, notes = rc.diff_node(w, dataclasses.replace(seen, routes=(wrong, *seen.routes[1:], stale)), RESET)
    assert notes == []
    assert [c.kind for c in ch] == ["route-replace", "route-del"]
    assert ch[0].line() == ("r1: route 10.255.0.4/30 via 10.255.0.14 dev eth1 corrected "
                            "(was 10.255.0.4/30 via 10.255.0.22 dev eth2)")
    assert ch[1].old == stale


def test_a_down_end_has_no_routes_or_addresses_to_restore(plan: Plan) -> None:
    ea, eb = fl.find_link(plan, "r1", "r2")
    down = frozenset({("r1", ea.ifname), ("r2", eb.ifname)})
    want = rc.desired(plan, rc.Faults(down=down), ["r1"])["r1"]
    up_seen = as_kernel(rc.desired(plan, rc.Faults(), ["r1"])["r1"])
    ch, _ = rc.diff_node(want, up_seen, RESET)
    assert kinds(ch) == [("link-down", ea.ifname)]  # its routes: the kernel drops them with the device
    # The kernel as a down device leaves it: no route through it, no IPv6 address. Nothing else to do.
    down_seen = dataclasses.replace(
        up_seen, links={**up_seen.links, ea.ifname: dataclasses.replace(up_seen.links[ea.ifname], up=False)},
        routes=tuple(r for r in up_seen.routes if r.dev != ea.ifname),
        addresses={k: v for k, v in up_seen.addresses.items() if k != ea.ifname})
    assert rc.diff_node(want, down_seen, RESET) == ([], [])
    # And back up: the device, then its address, then every route through it.
    ch, _ = rc.diff_node(rc.desired(plan, rc.Faults(), ["r1"])["r1"], down_seen, RESET)
    assert [c.kind for c in ch] == ["link-up", "address", "address", "route-add", "route-add", "route-add",
                                    "route-add"]


def test_switch_port_out_of_its_bridge_and_bridge_down(star: Plan) -> None:
    w = rc.desired(star, rc.Faults(), ["s1"])["s1"]
    seen = as_kernel(w)
    links = dict(seen.links)
    links["eth1"] = dataclasses.replace(links["eth1"], master=None)
    links["br0"] = dataclasses.replace(links["br0"], up=False)
    ch, _ = rc.diff_node(w, dataclasses.replace(seen, links=links), RESET)
    assert kinds(ch) == [("link-up", "br0"), ("master", "eth1")] and ch[1].master == 2


def test_what_cannot_be_repaired_is_fatal(star: Plan) -> None:
    w = rc.desired(star, rc.Faults(), ["s1"])["s1"]
    seen = as_kernel(w)
    assert rc.diff_node(w, rc.SeenNode(gone=True), RESET)[1][0].fatal
    no_bridge = {k: v for k, v in seen.links.items() if k != "br0"}
    notes = rc.diff_node(w, dataclasses.replace(seen, links=no_bridge), RESET)[1]
    assert [n.fatal for n in notes] == [True] and "bridge br0" in notes[0].text
    alien = {**seen.links, "eth0": rc.SeenLink(50, "macvlan", True, None)}
    notes = rc.diff_node(w, dataclasses.replace(seen, links=alien), RESET)[1]
    assert notes[0].fatal and "nslab did not make" in notes[0].text
    missing = {k: v for k, v in seen.links.items() if k != "eth1"}
    assert "eth1 is missing" in rc.diff_node(w, dataclasses.replace(seen, links=missing), RESET)[1][0].text


def test_fault_rules_by_presence_and_force(plan: Plan) -> None:
    state = fl.FaultState("rcx", grudge={"h1": ["h2"]})
    ea, _ = fl.find_link(plan, "h2", "r2")
    state.impair[("h2", ea.ifname, "r2", "eth0")] = fl.Impairment(rate=10**7)
    view = fl.view(plan, state)
    assert set(view.nft) == {"h1"} and view.rates == {("h2", ea.ifname): 10**7}
    want = rc.desired(plan, view)
    clean = {n: as_kernel(w) for n, w in rc.desired(plan, rc.Faults()).items()}
    rep = rc.diff(want, clean, RESET)
    assert [(c.node, c.kind, c.ifname) for c in rep.changes] == [("h1", "nft", ""), ("h2", "rate", ea.ifname)]
    assert rep.changes[0].line() == "h1: nslab's nftables rules rewritten"
    # In the kernel already: nothing, unless the content must change (force).
    there = {n: as_kernel(w) for n, w in want.items()}
    assert rc.diff(want, there, RESET).changes == []
    forced = rc.diff(want, there, RESET, force_nft=["h1"], force_rates=[("h2", ea.ifname)]).changes
    assert [(c.node, c.kind) for c in forced] == [("h1", "nft"), ("h2", "rate")]
    # Rules the kernel holds that no fault needs (whatever the record says): removed.
    back = rc.diff(rc.desired(plan, rc.Faults()), there, RESET).changes
    assert [(c.node, c.kind, c.script == RESET) for c in back] == [("h1", "nft", True), ("h2", "unrate", False)]
    assert back[0].line(done=False) == "h1: nslab's nftables rules are there, with no fault that needs them"


def test_affected_adds_the_routers_routing_through_a_node(plan: Plan) -> None:
    assert rc.affected(plan, ["h1"]) == {"h1"}  # hosts are nobody's gateway
    assert rc.affected(plan, ["r1"]) == {"r1", "h1", "r2", "r3"}


def _rtmsg(payload: bytes) -> tuple[int, int, int]:
    fam, _dl, _sl, _tos, _table, proto, _scope, _type, _fl = struct.unpack_from("=BBBBBBBBI", payload)
    return fam, proto, _type


def test_route_requests_carry_nslabs_protocol(plan: Plan) -> None:
    w = rc.desired(plan, rc.Faults(), ["h1"])["h1"]
    add = rc.Change("h1", "route-add", "eth0", 2, route=w.routes[1])
    req = rc._request(add)
    assert req is not None and req.kind == RTM_NEWROUTE
    assert _rtmsg(req.payload) == (socket.AF_INET6, RTPROT_NSLAB, 1)
    undo = rc._request(add, undo=True)
    # The kernel deletes only a route of the protocol named in the request: never a user's.
    assert undo is not None and undo.kind == RTM_DELROUTE and _rtmsg(undo.payload)[1] == RTPROT_NSLAB
    old = rc.SeenRoute(4, "10.99.0.0/24", "10.255.0.1", "eth0", 2, rc.NSLAB_PROTO, 0)
    delete = rc._request(rc.Change("h1", "route-del", "eth0", 2, old=old))
    assert delete is not None and delete.kind == RTM_DELROUTE and _rtmsg(delete.payload)[1] == RTPROT_NSLAB
    addr = rc._request(rc.Change("h1", "address", "eth0", 2, cidr="10.0.0.1/24"), undo=True)
    assert addr is not None and addr.kind == 21  # RTM_DELADDR: an address is only ever deleted to undo its add


def test_scope_of_a_fault_change(plan: Plan) -> None:
    ea, eb = fl.find_link(plan, "h1", "r1")
    old = fl.FaultState("rcx", links_down=[("h1", ea.ifname, "r1", eb.ifname)])
    new = fl.FaultState("rcx")
    nodes, nft, rates = fl._scope(plan, old, new, False, [])
    assert nodes == {"h1", "r1", "r2", "r3"} and nft == set() and rates == set()  # r2, r3 route via r1
    # A change cut off by kill -9: every node, every rule rewritten.
    cut = fl.FaultState("rcx", grudge={"h1": ["h2"]}, pending=True)
    nodes, nft, _ = fl._scope(plan, cut, cut.copy(), False, [])
    assert nodes == {n.name for n in plan.nodes} and nft == {"h1"}
    nodes, _, _ = fl._scope(plan, new, new, True, [])
    assert nodes == {n.name for n in plan.nodes}


def test_fault_record_keeps_process_identities_and_intent() -> None:
    state = fl.FaultState("rcx", stopped={"h1": [10, 11]}, procs={"h1": [(10, 555), (11, 556)]}, pending=True)
    back = fl.FaultState.from_json(state.to_json())
    assert back == state and back.procs["h1"][0] == (10, 555) and back.pending
    old = fl.FaultState.from_json({"lab": "rcx", "stopped": {"h1": [10]}})  # a record of an older nslab
    assert old.procs == {} and not old.pending
