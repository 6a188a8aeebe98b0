"""Byte-table tests of the codec (nslab/kernel/rtnl.py, linkkinds.py, netlink.py, nfnl.py), without root and
without the kernel: every request builder against the request iproute2 (ip, tc, nft) sent for the same change,
every decoder against the kernel's recorded answer and what iproute2 printed from those very bytes.

The fixtures (tests/fixtures/netlink/<kernel>/*.txt) were recorded once from the real kernel by
tests/fixtures/netlink/record.py (strace of ip/tc/nft in two fresh namespaces; see its docstring for the format
and how to record again). nslab's own code played no part in recording them.

Requests go through nslab's real transport (NetlinkSocket framing, acks, extended-ack errors) over a socket
stand-in that replays the kernel's recorded answers; no socket of the host is ever opened here (a guard fails
the test if one is). A request is compared as a tree (header type and flags, the fixed struct, attributes by
type, nested ones as trees), ignoring what the kernel ignores: attribute order, the sequence number and port id,
the NLA_F_NESTED bit, a string's trailing NUL and the number of a namespace fd. Where nslab's request
differs from iproute2's in a way the kernel treats alike, the difference is one named RULE below, with why;
a rule that does not change anything in its case fails the test, so none can hide a real difference.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import TESTS

from nslab.errors import ExistsError, KernelError, NotFoundError, NslabError
from nslab.kernel import linkkinds, nfnl
from nslab.kernel.netlink import NetlinkSocket, _parse_error
from nslab.kernel.rtnl import Request, Rtnl, decode_route, parse_mac
from nslab.model import Link

FIXTURES = os.path.join(TESTS, "fixtures", "netlink")
KERNELS = sorted(d for d in os.listdir(FIXTURES) if os.path.isdir(os.path.join(FIXTURES, d)))
_HDR = struct.Struct("=IHHII")
NLMSG_ERROR, NLMSG_DONE = 2, 3

Tree = dict[Any, Any]  # header keys by name, attributes by type number


# ---- fixtures -----------------------------------------------------------------------------------------
@dataclass
class Fixture:
    name: str
    ifindex: dict[str, dict[str, int]] = field(default_factory=lambda: {"A": {}, "B": {}})
    exit: int = 0
    sent: list[bytes] = field(default_factory=list)
    answers: list[bytes] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def ix(self, dev: str, side: str = "A") -> int:
        return self.ifindex[side][dev]

    def json(self) -> Any:
        return json.loads("\n".join(self.stdout))


def load(kernel: str, name: str) -> Fixture:
    fx = Fixture(name)
    with open(os.path.join(FIXTURES, kernel, f"{name}.txt"), encoding="utf-8") as f:
        for line in f.read().splitlines():
            tag, _, rest = line.partition(" ")
            if tag == "@ifindex":
                side, dev, idx = rest.split()
                fx.ifindex[side][dev] = int(idx)
            elif tag == "@exit":
                fx.exit = int(rest)
            elif tag == ">":
                fx.sent.append(bytes.fromhex(rest))
            elif tag == "<":
                fx.answers.append(bytes.fromhex(rest))
            elif tag == "=":
                fx.stdout.append(rest)
            elif tag == "!":
                fx.stderr.append(rest)
    assert len(fx.sent) == 1, f"{name}: one recorded request"
    return fx


@pytest.fixture(params=KERNELS)
def kernel(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may reach the kernel: opening any socket fails the test."""

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("a byte-table test opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)


def test_fixtures_are_there() -> None:
    assert KERNELS, "no recorded kernel under tests/fixtures/netlink (run record.py as root)"
    for k in KERNELS:
        names = {n[:-4] for n in os.listdir(os.path.join(FIXTURES, k)) if n.endswith(".txt")}
        assert set(REQUESTS) | set(ERRORS) | READS <= names, (k, sorted(set(REQUESTS) | set(ERRORS) | READS - names))


# ---- a socket that replays the kernel's answers ---------------------------------------------------------
class Replay:
    """Stands in for the netlink socket: keeps what nslab sends, answers with the recorded messages, each given
    the sequence number of the request it answers (as the kernel would)."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = list(answers)
        self.sent: list[bytes] = []

    def setsockopt(self, *_a: object) -> None:
        pass

    def bind(self, _addr: object) -> None:
        pass

    def close(self) -> None:
        pass

    def fileno(self) -> int:
        return -1

    def send(self, data: bytes) -> int:
        off = 0
        while off < len(data):
            size = _HDR.unpack_from(data, off)[0]
            self.sent.append(data[off:off + size])
            off += (size + 3) & ~3
        return len(data)

    def recv(self, _n: int) -> bytes:
        assert self.sent, "recv before any request"
        seq = _HDR.unpack_from(self.sent[-1])[3]
        out = b""
        while self.answers:
            m = bytearray(self.answers.pop(0))
            struct.pack_into("=I", m, 8, seq)
            out += bytes(m) + b"\0" * (-len(m) % 4)
        assert out, "nslab waited for an answer the kernel did not give"
        return out


def replay_rtnl(answers: list[bytes]) -> tuple[Rtnl, Replay]:
    fake = Replay(answers)
    return Rtnl(NetlinkSocket(fake), "A"), fake  # type: ignore[arg-type]


# ---- requests as trees ----------------------------------------------------------------------------------
_FIXED = {16: "=BxHiII", 17: "=BxHiII", 18: "=BxHiII", 20: "=BBBBI", 21: "=BBBBI", 22: "=BBBBI",
          24: "=BBBBBBBBI", 25: "=BBBBBBBBI", 26: "=BBBBBBBBI", 29: "=BxxxiHBB", 38: "=BxxxiIII",
          (10 << 8) | 1: "=BBH"}
_STRINGS = {3, 20}  # IFLA_IFNAME, IFLA_IFALIAS
IFLA_LINKINFO, IFLA_NET_NS_FD, IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 18, 28, 1, 2, 1


def _attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    off = 0
    while off + 4 <= len(data):
        size, kind = struct.unpack_from("=HH", data, off)
        assert size >= 4, "attribute shorter than its header"
        yield kind & 0x3FFF, data[off + 4:off + size]
        off += (size + 3) & ~3


def _link_attrs(data: bytes) -> Tree:
    out: Tree = {}
    for kind, value in _attrs(data):
        assert kind not in out, f"attribute {kind} twice"
        if kind in _STRINGS:
            out[kind] = value.rstrip(b"\0").decode()
        elif kind == IFLA_NET_NS_FD:
            out[kind] = "fd"  # the number is the sender's own
        elif kind == IFLA_LINKINFO:
            info: Tree = {}
            for k, v in _attrs(value):
                info[k] = v.rstrip(b"\0").decode() if k == IFLA_INFO_KIND else v
            if IFLA_INFO_DATA in info:
                data_tree: Tree = {}
                for k, v in _attrs(info[IFLA_INFO_DATA]):
                    if info.get(IFLA_INFO_KIND) == "veth" and k == VETH_INFO_PEER:
                        data_tree[k] = {"fixed": list(struct.unpack_from("=BxHiII", v)), "attrs": _link_attrs(v[16:])}
                    else:
                        data_tree[k] = v.hex()
                info[IFLA_INFO_DATA] = data_tree
            out[kind] = info
        else:
            out[kind] = value.hex()
    return out


def tree(msg: bytes) -> Tree:
    size, kind, flags, _seq, _pid = _HDR.unpack_from(msg)
    body = msg[_HDR.size:size]
    fixed = struct.Struct(_FIXED[kind])
    attrs = body[fixed.size:]
    return {"type": kind, "flags": hex(flags), "fixed": list(fixed.unpack_from(body)),
            "attrs": _link_attrs(attrs) if kind in (16, 17, 18) else {k: v.hex() for k, v in _attrs(attrs)}}


# ---- the differences the kernel does not see, each with why --------------------------------------------
Rule = Callable[[Tree, Tree], None]  # edits nslab's tree (first) to iproute2's form, given iproute2's


def ifa_flags_attr(n: Tree, _ip: Tree) -> None:
    """nslab also sends the address flags as IFA_FLAGS (32 bits, the kernel reads it before ifa_flags); iproute2
    only when a flag needs more than 8 bits. Same value in both places."""
    assert int.from_bytes(bytes.fromhex(n["attrs"].pop(8)), "little") == n["fixed"][2]


def v6_scope(n: Tree, ip: Tree) -> None:
    """An IPv6 address's ifa_scope: the kernel derives it from the address (inet6_rtm_newaddr never reads it);
    nslab says link for fe80::/10, iproute2 says 0."""
    n["fixed"][3] = ip["fixed"][3]


def del_addr_extras(n: Tree, _ip: Tree) -> None:
    """A delete matches on local, address and prefix length (inet_rtm_deladdr, inet6_rtm_deladdr); nslab's
    delete carries the add's broadcast and nodad flag too, which the kernel does not compare."""
    n["attrs"].pop(4, None)
    n["attrs"].pop(8, None)
    n["fixed"][2] = 0


def rta_table(n: Tree, _ip: Tree) -> None:
    """nslab names the table twice, in rtm_table and RTA_TABLE (the kernel takes RTA_TABLE when present);
    iproute2 adds RTA_TABLE only for tables above 255. Same table."""
    assert int.from_bytes(bytes.fromhex(n["attrs"].pop(15)), "little") == n["fixed"][4]


def v6_default_dst(n: Tree, _ip: Tree) -> None:
    """iproute2 sends RTA_DST :: with a prefix length of 0 for an IPv6 default; nslab leaves it out. A zero-length
    prefix matches every address either way."""
    n["attrs"][1] = "00" * 16


def v6_del_scope(n: Tree, ip: Tree) -> None:
    """On an IPv6 route delete the kernel does not look at rtm_scope (ip6_route_del); nslab says NOWHERE for
    both families as `ip route del` does for IPv4, iproute2 leaves 0 for IPv6."""
    n["fixed"][6] = ip["fixed"][6]


def ndm_state(n: Tree, ip: Tree) -> None:
    """iproute2 puts NUD_PERMANENT in a delete's ndm_state; neigh_delete does not read it."""
    n["fixed"][2] = ip["fixed"][2]


def link_dump_filter(n: Tree, ip: Tree) -> None:
    """iproute2 asks links of family AF_PACKET with IFLA_EXT_MASK RTEXT_FILTER_VF (SR-IOV VF details, which no
    virtual device has); nslab asks AF_UNSPEC without a mask: the kernel returns the same links and attributes."""
    n["fixed"][0] = ip["fixed"][0]
    n["attrs"][29] = ip["attrs"][29]


def same_request(nslab: bytes, iproute2: bytes, rules: tuple[Rule, ...] = ()) -> None:
    n, ip = tree(nslab), tree(iproute2)
    for rule in rules:
        before = copy.deepcopy(n)
        rule(n, ip)
        assert n != before, f"rule {rule.__name__} changes nothing here: drop it from this case"
    assert n == ip


# ---- change requests: each case's nslab request, and the rules it needs ----------------------------------
Build = Callable[[Fixture], Request]
K = linkkinds.KINDS


def _mac(text: str) -> bytes:
    return parse_mac(text)


def _macvlan(mode: str) -> Build:
    return lambda f: K["macvlan"].request("mv0", {"lower": f.ix("v0"), "mode": mode})


REQUESTS: dict[str, tuple[Build, tuple[Rule, ...]]] = {
    "link_add_veth": (lambda f: K["veth"].request("x0", {"peer": "x1"}), ()),
    "link_add_veth_mtu": (lambda f: K["veth"].request("x0", {"peer": "x1", "mtu": 1400}), ()),
    "link_add_veth_peer_netns": (lambda f: K["veth"].request("x0", {"peer": "x1", "peer_ns": 9}), ()),
    # The lab's way (nslab/lab/apply.py): chosen indexes, up at birth, enslaved at birth, the peer elsewhere.
    "link_add_veth_lab": (lambda f: Rtnl.req_add_link(
        "x0", "veth", Rtnl.veth_peer("x1", netns_fd=9, mtu=1400, index=21), index=20, mtu=1400, up=True,
        master=f.ix("br0")), ()),
    "link_add_bridge": (lambda f: K["bridge"].request("br1", {}), ()),
    "link_add_bridge_index_up": (lambda f: Rtnl.req_add_link("br1", "bridge", index=2, up=True), ()),
    "link_add_bridge_address": (lambda f: Rtnl.req_add_link("br1", "bridge", address=_mac("02:00:00:00:00:01")),
                                ()),
    "link_add_vxlan_remote": (lambda f: K["vxlan"].request("vx0", {"vni": 42, "remote": "192.0.2.1",
                                                                   "port": 4790}), ()),
    "link_add_vxlan_remote6": (lambda f: K["vxlan"].request("vx0", {"vni": 16777215, "remote": "2001:db8::1"}),
                               ()),
    "link_add_vxlan_local_dev": (lambda f: K["vxlan"].request("vx0", {"vni": 0, "local": "10.9.0.1",
                                                                      "dev": f.ix("v0"), "port": 8472}), ()),
    "link_add_vxlan_group": (lambda f: K["vxlan"].request("vx0", {"vni": 7, "group": "239.1.1.1",
                                                                  "dev": f.ix("v0")}), ()),
    "link_add_vxlan_local6_ttl": (lambda f: Rtnl.req_add_link("vx0", "vxlan", linkkinds.vxlan_data(
        9, local="fd00:9::1", remote="fd00:9::2", ttl=5)), ()),
    "link_add_vxlan_nolearning": (lambda f: Rtnl.req_add_link("vx0", "vxlan", linkkinds.vxlan_data(
        8, remote="192.0.2.1", learning=False)), ()),
    **{f"link_add_macvlan_{mode}": (_macvlan(mode), ()) for mode in linkkinds.MACVLAN_MODES},
    "link_set_up": (lambda f: Rtnl.req_set_link(f.ix("v0"), "v0", up=True), ()),
    "link_set_down": (lambda f: Rtnl.req_set_link(f.ix("v0"), "v0", up=False), ()),
    "link_set_mtu": (lambda f: Rtnl.req_set_link(f.ix("v0"), "v0", mtu=1400), ()),
    "link_set_master": (lambda f: Rtnl.req_set_link(f.ix("v0"), "v0", master=f.ix("br0")), ()),
    "link_set_nomaster": (lambda f: Rtnl.req_set_link(f.ix("v0"), "v0", master=0), ()),
    "link_set_address": (lambda f: Rtnl.req_set_link(f.ix("v0"), "v0", address=_mac("02:00:00:00:00:42")), ()),
    "link_set_name": (lambda f: Rtnl.req_set_link(f.ix("v0"), "v0", new_name="w0"), ()),
    "link_set_alias": (lambda f: Rtnl.req_set_link(f.ix("v0"), "v0", alias="port one"), ()),
    # What bulk.create sends in every new lab namespace: lo up with nslab's ownership marker.
    "link_set_lo_up_alias": (lambda f: Rtnl.req_set_link(f.ix("lo", "B"), "lo", up=True, alias="nslab:lab:node"),
                             ()),
    "link_set_netns": (lambda f: Rtnl.req_set_link(f.ix("v0"), "v0", netns_fd=9), ()),
    "link_set_several": (lambda f: Rtnl.req_set_link(f.ix("v0"), "v0", mtu=1300, address=_mac("02:00:00:00:00:43"),
                                                     master=f.ix("br0"), up=True), ()),
    "link_del": (lambda f: Rtnl.req_del_link(f.ix("v0"), "v0"), ()),
    "addr_add_v4": (lambda f: Rtnl.req_addr(f.ix("v0"), "v0", "10.9.0.1/24"), ()),
    "addr_add_v4_31": (lambda f: Rtnl.req_addr(f.ix("v0"), "v0", "10.9.0.1/31"), ()),
    "addr_add_v4_32": (lambda f: Rtnl.req_addr(f.ix("v0"), "v0", "10.9.0.1/32"), ()),
    "addr_add_v4_lo": (lambda f: Rtnl.req_addr(f.ix("lo"), "lo", "127.0.0.2/8"), ()),
    "addr_add_v6_nodad": (lambda f: Rtnl.req_addr(f.ix("v0"), "v0", "fd00:9::1/64"), (ifa_flags_attr,)),
    "addr_add_v6_linklocal": (lambda f: Rtnl.req_addr(f.ix("v0"), "v0", "fe80::9/64"), (ifa_flags_attr, v6_scope)),
    "addr_del_v4": (lambda f: Rtnl.req_addr(f.ix("v0"), "v0", "10.9.0.1/24", add=False), (del_addr_extras,)),
    "addr_del_v6": (lambda f: Rtnl.req_addr(f.ix("v0"), "v0", "fd00:9::1/64", add=False), (del_addr_extras,)),
    "route_add_via": (lambda f: Rtnl.req_route("10.1.0.0/24", gateway="10.9.0.2"), (rta_table,)),
    "route_add_via_dev_proto": (lambda f: Rtnl.req_route("10.1.0.0/24", gateway="10.9.0.2", oif=f.ix("v0"),
                                                         protocol=94), (rta_table,)),
    "route_add_default": (lambda f: Rtnl.req_route("default", gateway="10.9.0.2"), (rta_table,)),
    "route_add_dev_metric": (lambda f: Rtnl.req_route("10.2.0.0/24", oif=f.ix("v0"), metric=7), (rta_table,)),
    "route_add_host": (lambda f: Rtnl.req_route("10.9.0.77", oif=f.ix("v0")), (rta_table,)),
    "route_replace": (lambda f: Rtnl.req_route("10.1.0.0/24", gateway="10.9.0.2", replace=True), (rta_table,)),
    "route_add_v6_via": (lambda f: Rtnl.req_route("fd00:1::/64", gateway="fd00:9::2"), (rta_table,)),
    "route_add_v6_default_dev": (lambda f: Rtnl.req_route("default", gateway="fd00:9::2", oif=f.ix("v0"),
                                                          protocol=94), (rta_table, v6_default_dst)),
    "route_del": (lambda f: Rtnl.req_route("10.1.0.0/24", add=False), (rta_table,)),
    "route_del_via_dev_proto": (lambda f: Rtnl.req_route("10.1.0.0/24", gateway="10.9.0.2", oif=f.ix("v0"),
                                                         protocol=94, add=False), (rta_table,)),
    "route_del_v6_default": (lambda f: Rtnl.req_route("::/0", add=False), (rta_table, v6_default_dst, v6_del_scope)),
    "neigh_del": (lambda f: Rtnl.req_del_neigh(f.ix("v0"), "10.9.0.2"), (ndm_state,)),
    "neigh_del_v6": (lambda f: Rtnl.req_del_neigh(f.ix("v0"), "fd00:9::2"), (ndm_state,)),
}


@pytest.mark.parametrize("case", sorted(REQUESTS))
def test_request_is_what_iproute2_sends(kernel: str, case: str) -> None:
    fx = load(kernel, case)
    build, rules = REQUESTS[case]
    rtnl, wire = replay_rtnl(fx.answers)
    rtnl.do(build(fx))  # through the transport; the recorded answer is the kernel's ack
    assert len(wire.sent) == 1
    same_request(wire.sent[0], fx.sent[0], rules)
    assert fx.exit == 0 and _parse_error_of(fx.answers[-1]) == (0, None)


def _parse_error_of(raw: bytes) -> tuple[int, str | None]:
    size, kind, flags, seq, _pid = _HDR.unpack_from(raw)
    assert kind == NLMSG_ERROR
    from nslab.kernel.netlink import Message

    return _parse_error(Message(kind, flags, seq, raw[_HDR.size:size]))


# ---- the kernel's refusals ------------------------------------------------------------------------------
ERRORS: dict[str, tuple[Build, type[NslabError], str]] = {
    "err_exists": (lambda f: K["bridge"].request("br0", {}), ExistsError, "cannot create bridge 'br0' in namespace "
                   "'A': File exists"),
    "err_mtu_extack": (lambda f: Rtnl.req_set_link(f.ix("v0"), "v0", mtu=70000), KernelError,
                       "cannot change device 'v0' in namespace 'A': Invalid argument: mtu greater than device maximum"),
    "err_gateway_extack": (lambda f: Rtnl.req_route("10.1.0.0/24", gateway="10.250.0.1"), KernelError,
                           "cannot add route 10.1.0.0/24 in namespace 'A': Network is unreachable: Nexthop has "
                           "invalid gateway"),
    "err_route_missing": (lambda f: Rtnl.req_route("10.6.0.0/16", add=False), KernelError,
                          "cannot delete route 10.6.0.0/16 in namespace 'A': No such process"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_kernel_refusal_becomes_the_users_message(kernel: str, case: str) -> None:
    fx = load(kernel, case)
    build, cls, text = ERRORS[case]
    # nslab's socket asks NETLINK_CAP_ACK: where the recorder replayed the request so, that answer is nslab's.
    rtnl, wire = replay_rtnl(fx.answers[-1:])
    with pytest.raises(cls) as info:
        rtnl.do(build(fx))
    assert info.value.message == text
    rules = (rta_table,) if tree(fx.sent[0])["type"] in (24, 25) else ()
    same_request(wire.sent[0], fx.sent[0], rules)
    # Every recorded answer (iproute2's, uncapped, and the capped one) decodes to the code and text ip printed.
    said = fx.stderr[-1]
    for raw in fx.answers:
        code, msg = _parse_error_of(raw)
        assert code and fx.exit != 0
        if said.startswith("Error: "):
            assert msg == said.removeprefix("Error: ").rstrip(".")
        else:
            assert msg is None and said == f"RTNETLINK answers: {os.strerror(code)}"


# ---- reads: nslab's dump request, and the decoders against what iproute2 printed from the same bytes ----
READS = {"dump_links", "dump_links_peer_side", "get_link_by_name", "dump_addrs", "dump_routes_v4", "dump_routes_v6",
         "dump_qdiscs", "dump_nft_tables"}


def _link_as_ip(lk: Link, names: dict[int, str]) -> dict[str, Any]:
    """nslab's record in ip -j's words, for the keys both know."""
    out = lk.to_json(with_stats=True)
    out["group"] = "default" if lk.group == 0 else str(lk.group)
    if "kind" in out:
        out["linkinfo"] = {"info_kind": out.pop("kind")}
    if lk.link_index is not None and lk.link_netnsid is None:
        del out["link_index"]
        out["link"] = names[lk.link_index]  # ip names a lower device of the same namespace
    return out


def _ip_view(ip: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    out = {k: v for k, v in ip.items() if k in keys}
    # ip adds M-DOWN when the device's lower one (IFLA_LINK) is down, from that device's flags: nslab's decoder
    # does not derive it (test_m_down_is_not_derived_yet).
    out["flags"] = [f for f in out["flags"] if f != "M-DOWN"]
    if "linkinfo" in out:
        out["linkinfo"] = {"info_kind": out["linkinfo"]["info_kind"]}
    if "stats64" in out:
        out["stats64"] = {d: {k: out["stats64"][d][k] for k in ("bytes", "packets", "errors", "dropped")}
                          for d in ("rx", "tx")}
    return out


@pytest.mark.parametrize("case", ["dump_links", "dump_links_peer_side"])
def test_link_dump_decodes_as_ip_shows_it(kernel: str, case: str) -> None:
    fx = load(kernel, case)
    rtnl, wire = replay_rtnl(fx.answers)
    links = rtnl.links()
    same_request(wire.sent[0], fx.sent[0], (link_dump_filter,))
    shown = fx.json()
    assert [lk.ifname for lk in links] == [e["ifname"] for e in shown]
    names = {lk.ifindex: lk.ifname for lk in links}
    keys = {"ifindex", "ifname", "flags", "mtu", "operstate", "link_type", "master", "address", "broadcast",
            "txqlen", "linkinfo", "link_index", "link", "link_netnsid", "ifalias", "group", "stats64"}
    for lk, ip in zip(links, shown, strict=True):
        assert _link_as_ip(lk, names) == _ip_view(ip, keys), lk.ifname
    kinds = {lk.kind for lk in links}
    if case == "dump_links":
        assert {"veth", "bridge", "vxlan", "macvlan", "tun"} <= kinds
        assert any(lk.stats64.rx.packets for lk in links), "the recording carries traffic counters"


@pytest.mark.xfail(strict=True, reason="nslab's link flags lack ip's M-DOWN (lower device down); reported")
def test_m_down_is_not_derived_yet(kernel: str) -> None:
    fx = load(kernel, "dump_links")
    rtnl, _wire = replay_rtnl(fx.answers)
    shown = {e["ifname"]: e["flags"] for e in fx.json()}
    assert any("M-DOWN" in f for f in shown.values())
    assert {lk.ifname: list(lk.flags) for lk in rtnl.links()} == shown


def test_link_by_name_request_and_answer(kernel: str) -> None:
    fx = load(kernel, "get_link_by_name")
    rtnl, wire = replay_rtnl(fx.answers)
    lk = rtnl.link("vx0")
    same_request(wire.sent[0], fx.sent[0], (link_dump_filter,))
    (ip,) = fx.json()
    assert lk.to_json()["ifname"] == ip["ifname"] == "vx0"
    assert (lk.ifindex, lk.kind, lk.address, lk.mtu) == (ip["ifindex"], ip["linkinfo"]["info_kind"], ip["address"],
                                                         ip["mtu"])


def test_address_dump_decodes_as_ip_shows_it(kernel: str) -> None:
    fx = load(kernel, "dump_addrs")
    rtnl, wire = replay_rtnl(fx.answers)
    addrs = rtnl.addresses()
    same_request(wire.sent[0], fx.sent[0])
    flags = {"nodad", "tentative", "dadfailed", "noprefixroute", "dynamic"}
    want = []
    for link in fx.json():
        for a in link.get("addr_info", []):
            view = {k: v for k, v in a.items() if k in {"family", "local", "prefixlen", "broadcast", "scope", "label",
                                                         "address"} or (k in flags and v is True)}
            want.append((link["ifindex"], json.dumps(view, sort_keys=True)))
    got = []
    for ad in addrs:
        view = ad.to_json()
        if ad.address:
            view["address"] = ad.address
        got.append((ad.ifindex, json.dumps(view, sort_keys=True)))
    assert sorted(got) == sorted(want)
    assert {"nodad", "label", "address", "broadcast"} <= {k for _i, v in got for k in json.loads(v)}


@pytest.mark.parametrize("case,family", [("dump_routes_v4", socket.AF_INET), ("dump_routes_v6", socket.AF_INET6)])
def test_route_dump_decodes_as_ip_shows_it(kernel: str, case: str, family: int) -> None:
    fx = load(kernel, case)
    names = {idx: dev for dev, idx in fx.ifindex["A"].items()}
    rtnl, wire = replay_rtnl(fx.answers)
    main = rtnl.routes(family, names=names)
    same_request(wire.sent[0], fx.sent[0])
    tables = {254: None, 255: "local"}
    replies = [m for m in fx.answers if _HDR.unpack_from(m)[1] == 24]
    decoded = [decode_route(_message(m), names) for m in replies]
    shown = fx.json()
    assert len(decoded) == len(shown)
    for r, ip in zip(decoded, shown, strict=True):
        mine = r.to_json()
        if r.type != "unicast":
            mine["type"] = r.type
        if tables.get(r.table, str(r.table)) is not None:
            mine["table"] = tables.get(r.table, str(r.table))
        view = {k: v for k, v in ip.items() if k in {"dst", "gateway", "dev", "protocol", "scope", "prefsrc",
                                                     "metric", "type", "table"}}
        assert mine == view, ip
    assert [r.dst for r in main] == [r.dst for r in decoded if r.table == 254]
    if family == socket.AF_INET:
        assert {"blackhole", "unreachable", "local", "broadcast"} <= {r.type for r in decoded}
        assert any(r.protocol == "94" for r in decoded) and any(r.prefsrc for r in decoded)


def _message(raw: bytes) -> Any:
    from nslab.kernel.netlink import Message

    size, kind, flags, seq, _pid = _HDR.unpack_from(raw)
    return Message(kind, flags, seq, raw[_HDR.size:size])


def test_qdisc_dump_decodes_as_tc_shows_it(kernel: str) -> None:
    fx = load(kernel, "dump_qdiscs")
    names = {idx: dev for dev, idx in fx.ifindex["A"].items()}
    rtnl, wire = replay_rtnl(fx.answers)
    got = rtnl.qdiscs()
    same_request(wire.sent[0], fx.sent[0])

    def handle(h: int) -> str:
        return f"{h >> 16:x}:" + (f"{h & 0xFFFF:x}" if h & 0xFFFF else "")

    mine = [{"kind": q.kind, "handle": handle(q.handle), "dev": names[q.ifindex], "root": q.parent == 0xFFFFFFFF}
            for q in got]
    shown = [{"kind": q["kind"], "handle": q["handle"], "dev": q["dev"], "root": q.get("root", False)}
             for q in fx.json()]
    assert mine == shown
    assert {"tbf", "htb", "ingress"} <= {q.kind for q in got}


def test_nft_table_dump_decodes_as_nft_shows_it(kernel: str) -> None:
    fx = load(kernel, "dump_nft_tables")
    fake = Replay(fx.answers)
    got = nfnl.read_tables(NetlinkSocket(fake), "A")  # type: ignore[arg-type]
    same_request(fake.sent[0], fx.sent[0])
    shown = {(e["table"]["family"], e["table"]["name"]) for e in fx.json()["nftables"] if "table" in e}
    assert got == shown == {("inet", "nslab"), ("netdev", "nslab"), ("ip", "other"), ("ip6", "six")}


def test_the_comparison_can_fail() -> None:
    fx = load(KERNELS[0], "link_set_up")

    def rta_table(n: Tree, ip: Tree) -> None:  # a rule that bites nowhere
        del n, ip

    up = _frame_of(Rtnl.req_set_link(fx.ix("v0"), "v0", up=True))
    same_request(up, fx.sent[0])
    with pytest.raises(AssertionError, match="rule rta_table changes nothing"):
        same_request(up, fx.sent[0], (rta_table,))
    with pytest.raises(AssertionError):
        same_request(_frame_of(Rtnl.req_set_link(fx.ix("v0"), "v0", up=False)), fx.sent[0])
    with pytest.raises(AssertionError):
        same_request(_frame_of(Rtnl.req_set_link(fx.ix("v0") + 1, "v0", up=True)), fx.sent[0])


def _frame_of(req: Request) -> bytes:
    return _HDR.pack(_HDR.size + len(req.payload), req.kind, req.flags | 0x5, 1, 0) + req.payload


def test_not_found_maps_to_not_found() -> None:
    # ENODEV from the kernel (a device gone between lookup and change) is the user's "not found".
    err = struct.pack("=i", -19) + _HDR.pack(16, 16, 5, 1, 0)
    raw = _HDR.pack(_HDR.size + len(err), NLMSG_ERROR, 0x100, 1, 0) + err
    rtnl, _wire = replay_rtnl([raw])
    with pytest.raises(NotFoundError):
        rtnl.do(Rtnl.req_set_link(3, "v0", up=True))
