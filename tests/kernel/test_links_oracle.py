"""Links, addresses, routes and counters made through nslab, checked against `ip -j` on the same state.

Traffic only flows between namespaces these tests create, or on loopback inside one of them.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from conftest import CliResult, NetnsFactory, ip, ipj, settled

from nslab.kernel.netns import run_in_netns
from nslab.namespace import Namespace

pytestmark = pytest.mark.kernel

Cli = Callable[..., CliResult]
LINK_KEYS = ("ifindex", "ifname", "flags", "mtu", "operstate", "link_type", "address", "broadcast", "master",
             "txqlen")
ADDR_KEYS = ("family", "local", "prefixlen", "scope", "broadcast")


def _name(ns: Namespace) -> str:
    assert ns.name is not None
    return ns.name


def ip_link(ns: Namespace, dev: str, details: bool = False) -> dict[str, Any]:
    args = ["-d", "link", "show", dev] if details else ["link", "show", dev]
    (lk,) = ipj(_name(ns), *args)
    assert isinstance(lk, dict)
    return lk


def has_dev(ns: Namespace, dev: str) -> bool:
    return ip(_name(ns), "link", "show", dev, check=False).returncode == 0


@pytest.fixture
def pair(netns_factory: NetnsFactory, cli: Cli) -> tuple[Namespace, Namespace]:
    """Two namespaces joined by veth v0 (in A) — v1 (in B), both up, with IPv4 and IPv6 addresses."""
    a, b = netns_factory(), netns_factory()
    assert cli("-n", _name(a), "link", "add", "v0", "type", "veth", "peer", "v1", "peer-netns", _name(b)).rc == 0
    for ns, dev, v4, v6 in ((a, "v0", "10.99.0.1/24", "fd00:99::1/64"), (b, "v1", "10.99.0.2/24", "fd00:99::2/64")):
        for cidr in (v4, v6):
            res = cli("-n", _name(ns), "addr", "add", cidr, "dev", dev)
            assert res.rc == 0, res.err
        for d in (dev, "lo"):
            assert cli("-n", _name(ns), "link", "set", d, "up").rc == 0
    return a, b


def udp_roundtrip(src: Namespace, dst: Namespace, dst_ip: str, n: int = 3, size: int = 100) -> None:
    """Send n datagrams from src to dst_ip (in dst) and get each echoed back. Raises on loss or timeout."""
    fam = socket.AF_INET6 if ":" in dst_ip else socket.AF_INET

    def sock() -> socket.socket:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(2.0)
        return s

    server = run_in_netns(_name(dst), sock)
    client = run_in_netns(_name(src), sock)
    try:
        server.bind((dst_ip, 0))
        port = server.getsockname()[1]
        for i in range(n):
            payload = bytes([i % 256]) * size
            client.sendto(payload, (dst_ip, port))
            data, peer = server.recvfrom(65536)
            assert data == payload
            server.sendto(data, peer)
            assert client.recvfrom(65536)[0] == payload
    finally:
        server.close()
        client.close()


# ---- links --------------------------------------------------------------------------------------
def test_veth_peer_created_in_other_namespace(netns_factory: NetnsFactory, cli: Cli) -> None:
    a, b = netns_factory(), netns_factory()
    res = cli("-n", _name(a), "link", "add", "v0", "type", "veth", "peer", "v1", "peer-netns", _name(b))
    assert res.rc == 0, res.err
    v0, v1 = ip_link(a, "v0", details=True), ip_link(b, "v1", details=True)
    assert v0["linkinfo"]["info_kind"] == v1["linkinfo"]["info_kind"] == "veth"
    assert "link_netnsid" in v0 and "link_netnsid" in v1
    assert v1["link_index"] == v0["ifindex"] and v0["link_index"] == v1["ifindex"]
    assert not has_dev(a, "v1") and not has_dev(b, "v0")
    # nslab reports the same peer facts
    (mine,) = cli("-n", _name(b), "--json", "link", "show", "v1").json()
    assert mine["link_netnsid"] == v1["link_netnsid"] and mine["link_index"] == v1["link_index"]


def test_veth_both_ends_here_and_api(netns_factory: NetnsFactory) -> None:
    a = netns_factory()
    a.add_veth("x0", "x1", mtu=1400)
    x0, x1 = ip_link(a, "x0"), ip_link(a, "x1")
    assert x0["mtu"] == x1["mtu"] == 1400
    assert "link_netnsid" not in x0
    assert x0["link"] == "x1" if "link" in x0 else x0["link_index"] == x1["ifindex"]


def test_bridge_and_tap(netns_factory: NetnsFactory, cli: Cli) -> None:
    a = netns_factory()
    assert cli("-n", _name(a), "link", "add", "br0", "type", "bridge").rc == 0
    assert cli("-n", _name(a), "link", "add", "tap0", "type", "tap").rc == 0
    assert ip_link(a, "br0", details=True)["linkinfo"]["info_kind"] == "bridge"
    tap = ip_link(a, "tap0", details=True)
    assert tap["linkinfo"]["info_kind"] == "tun"
    assert tap["linkinfo"]["info_data"]["type"] == "tap"
    assert tap["linkinfo"]["info_data"]["persist"] is True
    assert tap["link_type"] == "ether"


VXLAN_CASES = [
    (["id", "42", "remote", "192.0.2.1", "dstport", "4790"], {"id": 42, "remote": "192.0.2.1", "port": 4790}),
    (["id", "16777215", "remote", "2001:db8::1"], {"id": 16777215, "remote6": "2001:db8::1", "port": 4789}),
    (["id", "0", "local", "10.99.0.1", "dev", "v0", "dstport", "8472"],
     {"id": 0, "local": "10.99.0.1", "link": "v0", "port": 8472}),
    (["id", "7", "group", "239.1.1.1", "dev", "v0"], {"id": 7, "group": "239.1.1.1", "link": "v0"}),
]


def _check_vxlan(ns: Namespace, want: dict[str, Any]) -> None:
    lk = ip_link(ns, "vx0", details=True)
    assert lk["linkinfo"]["info_kind"] == "vxlan"
    data = lk["linkinfo"]["info_data"]
    for key, value in want.items():
        assert data.get(key) == value, (key, data)


@pytest.mark.parametrize(("args", "want"), VXLAN_CASES)
def test_vxlan_api(netns_factory: NetnsFactory, args: list[str], want: dict[str, Any]) -> None:
    a = netns_factory()
    a.add_veth("v0", "v1")
    opts = dict(zip(args[::2], args[1::2], strict=True))
    a.add_vxlan("vx0", int(opts["id"]), remote=opts.get("remote"), group=opts.get("group"),
                local=opts.get("local"), dev=opts.get("dev"), port=int(opts.get("dstport", "4789")))
    _check_vxlan(a, want)



@pytest.mark.parametrize(("args", "want"), VXLAN_CASES)
def test_vxlan_cli(netns_factory: NetnsFactory, cli: Cli, args: list[str], want: dict[str, Any]) -> None:
    a = netns_factory()
    a.add_veth("v0", "v1")
    res = cli("-n", _name(a), "link", "add", "vx0", "type", "vxlan", *args)
    assert res.rc == 0, res.err
    _check_vxlan(a, want)


@pytest.mark.parametrize("kind", [["veth", "peer", "x1"], ["bridge"]])
def test_link_add_with_mtu_cli(netns_factory: NetnsFactory, cli: Cli, kind: list[str]) -> None:
    a = netns_factory()
    res = cli("-n", _name(a), "link", "add", "x0", "type", *kind, "mtu", "1400")
    assert res.rc == 0, res.err
    assert ip_link(a, "x0")["mtu"] == 1400


@pytest.mark.parametrize("mode", ["bridge", "private", "vepa", "passthru", "source"])
def test_macvlan_mode(netns_factory: NetnsFactory, cli: Cli, mode: str) -> None:
    a = netns_factory()
    a.add_veth("v0", "v1")
    res = cli("-n", _name(a), "link", "add", "mv0", "type", "macvlan", "link", "v0", "mode", mode)
    assert res.rc == 0, res.err
    lk = ip_link(a, "mv0", details=True)
    assert lk["linkinfo"]["info_kind"] == "macvlan"
    assert lk["linkinfo"]["info_data"]["mode"] == mode
    assert lk["link"] == "v0"


def test_macvlan_default_mode_is_bridge(netns_factory: NetnsFactory, cli: Cli) -> None:
    a = netns_factory()
    a.add_veth("v0", "v1")
    assert cli("-n", _name(a), "link", "add", "mv0", "type", "macvlan", "link", "v0").rc == 0
    assert ip_link(a, "mv0", details=True)["linkinfo"]["info_data"]["mode"] == "bridge"


def test_up_down_mtu_address_master(netns_factory: NetnsFactory, cli: Cli) -> None:
    a = netns_factory()
    n = _name(a)
    a.add_veth("v0", "v1")
    a.add_bridge("br0")
    assert cli("-n", n, "link", "set", "v0", "up").rc == 0
    assert "UP" in ip_link(a, "v0")["flags"]
    assert cli("-n", n, "link", "set", "v0", "down").rc == 0
    assert "UP" not in ip_link(a, "v0")["flags"]

    assert cli("-n", n, "link", "set", "v0", "mtu", "1400").rc == 0
    assert ip_link(a, "v0")["mtu"] == 1400
    assert cli("-n", n, "link", "set", "v0", "address", "02:11:22:33:44:55").rc == 0
    assert ip_link(a, "v0")["address"] == "02:11:22:33:44:55"
    assert cli("-n", n, "link", "set", "v0", "address", "02:AA:BB:CC:DD:EE").rc == 0
    assert ip_link(a, "v0")["address"] == "02:aa:bb:cc:dd:ee"

    assert cli("-n", n, "link", "set", "v0", "master", "br0").rc == 0
    assert ip_link(a, "v0")["master"] == "br0"
    assert "master" not in ip_link(a, "v1")
    assert cli("-n", n, "link", "set", "v0", "nomaster").rc == 0
    assert "master" not in ip_link(a, "v0")

    # several changes in one command
    res = cli("-n", n, "link", "set", "v1", "mtu", "1300", "master", "br0", "up", "address", "02:00:00:00:01:01")
    assert res.rc == 0, res.err
    v1 = ip_link(a, "v1")
    assert (v1["mtu"], v1.get("master"), "UP" in v1["flags"], v1["address"]) == (1300, "br0", True,
                                                                                  "02:00:00:00:01:01")


def test_move_to_other_namespace(netns_factory: NetnsFactory, cli: Cli) -> None:
    a, b = netns_factory(), netns_factory()
    a.add_veth("v0", "v1")
    a.add_bridge("br0")
    res = cli("-n", _name(a), "link", "set", "v1", "netns", _name(b))
    assert res.rc == 0, res.err
    assert not has_dev(a, "v1") and has_dev(b, "v1")
    assert "link_netnsid" in ip_link(b, "v1") and "link_netnsid" in ip_link(a, "v0")
    # changes in the same command apply too
    a.add_veth("p0", "p1")
    res = cli("-n", _name(a), "link", "set", "p0", "mtu", "1400", "netns", _name(b))
    assert res.rc == 0, res.err
    assert ip_link(b, "p0")["mtu"] == 1400 and not has_dev(a, "p0")
    # the Python API, back again
    handle = b.link("p0").move_to(a)
    assert handle.ns.name == a.name and has_dev(a, "p0") and not has_dev(b, "p0")
    # a bridge cannot leave its namespace: exit 1 with the kernel's reason, as ip gets it (6.18 sends the
    # extack "The interface netns is immutable.", 6.1 a bare EINVAL)
    res = cli("-n", _name(a), "link", "set", "br0", "netns", _name(b))
    oracle = ip(_name(a), "link", "set", "br0", "netns", _name(b), check=False)
    reason = oracle.stderr.strip().removeprefix("Error: ").removeprefix("RTNETLINK answers: ").rstrip(".")
    assert oracle.returncode != 0 and reason and res.rc == 1 and "br0" in res.err and reason in res.err, res.err
    assert has_dev(a, "br0")


def test_delete_link(netns_factory: NetnsFactory, cli: Cli) -> None:
    a = netns_factory()
    a.add_veth("v0", "v1")
    assert cli("-n", _name(a), "link", "del", "v0").rc == 0
    assert not has_dev(a, "v0") and not has_dev(a, "v1")


def test_names_the_kernel_takes_at_the_limit(netns_factory: NetnsFactory, cli: Cli) -> None:
    a = netns_factory()
    for name in ("a" * 15, "é" * 7, "x.y-z_1", "..."):
        res = cli("-n", _name(a), "link", "add", name, "type", "bridge")
        assert res.rc == 0, (name, res.err)
        assert ip_link(a, name)["ifname"] == name


def _lab(a: Namespace, b: Namespace) -> None:
    """A namespace with one of each: veth (peer elsewhere), bridge with a port, tap, vxlan, macvlan."""
    a.link("lo").up()
    a.add_veth("v0", "v1", b)
    a.add_veth("p0", "p1")
    a.add_bridge("br0")
    a.link("p0").set_master("br0").up()
    a.link("p1").set_mtu(1400).up()
    a.link("br0").up()
    a.add_tap("tap0")
    a.link("tap0").up()  # up without carrier: NO-CARRIER
    a.add_vxlan("vx0", 100, remote="192.0.2.9")
    a.add_macvlan("mv0", "p1", "private")
    a.link("v0").set_address("02:00:00:00:00:0a").up()


def _pick(d: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: d.get(k) for k in keys}


def test_link_show_json_equals_ip(netns_factory: NetnsFactory, cli: Cli) -> None:
    a, b = netns_factory(), netns_factory()
    _lab(a, b)
    n = _name(a)
    theirs, mine = settled(lambda: ipj(n, "link", "show"), lambda: cli("-n", n, "--json", "link", "show").json())
    assert [lk["ifname"] for lk in mine] == [lk["ifname"] for lk in theirs]
    for t, m in zip(theirs, mine, strict=True):
        assert _pick(m, LINK_KEYS) == _pick(t, LINK_KEYS), t["ifname"]
    # one device, and the flag words ip prints for odd states
    for dev in ("tap0", "br0", "p0", "lo"):
        def one_ip(d: str = dev) -> Any:
            return ipj(n, "link", "show", d)

        def one_mine(d: str = dev) -> Any:
            return cli("-n", n, "--json", "link", "show", d).json()

        theirs, mine = settled(one_ip, one_mine)
        assert [_pick(x, LINK_KEYS) for x in mine] == [_pick(x, LINK_KEYS) for x in theirs]
    assert "NO-CARRIER" in ip_link(a, "tap0")["flags"]


def test_link_show_json_vs_ip_in_root_of_a_fresh_namespace(netns_factory: NetnsFactory, cli: Cli) -> None:
    a = netns_factory()
    (t,) = ipj(_name(a), "link", "show")
    (m,) = cli("-n", _name(a), "--json", "link", "show").json()
    assert _pick(m, LINK_KEYS) == _pick(t, LINK_KEYS)


def _stats(links: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("bytes", "packets", "errors", "dropped")
    return {lk["ifname"]: {d: {k: lk["stats64"][d][k] for k in keys} for d in ("rx", "tx")} for lk in links}


def test_stats_after_traffic_equal_ip(pair: tuple[Namespace, Namespace], cli: Cli) -> None:
    a, b = pair
    udp_roundtrip(a, b, "10.99.0.2", n=5, size=200)
    udp_roundtrip(a, a, "127.0.0.1", n=4, size=300)  # loopback inside A
    n = _name(a)
    theirs, mine = settled(lambda: _stats(ipj(n, "-s", "link", "show")),
                           lambda: _stats(cli("-n", n, "--json", "link", "show", "-s").json()))
    assert mine == theirs
    assert theirs["v0"]["tx"]["packets"] >= 5 and theirs["v0"]["tx"]["bytes"] >= 5 * 200
    assert theirs["v0"]["rx"]["packets"] >= 5
    assert theirs["lo"]["rx"]["packets"] >= 8 and theirs["lo"]["tx"]["bytes"] >= 8 * 300
    # and the Python API reads the same counters
    lo = a.link("lo").info().stats64
    assert lo.rx.packets >= 8 and lo.tx.bytes >= 8 * 300


# ---- addresses ----------------------------------------------------------------------------------
def test_addr_add_del_v4_v6(netns_factory: NetnsFactory, cli: Cli) -> None:
    a = netns_factory()
    n = _name(a)
    a.add_veth("v0", "v1")
    for cidr, fam in (("10.5.0.1/24", "inet"), ("fd00:5::1/64", "inet6")):
        assert cli("-n", n, "addr", "add", cidr, "dev", "v0").rc == 0
        local, plen = cidr.split("/")
        infos = ipj(n, "addr", "show", "dev", "v0")[0]["addr_info"]
        assert any(i["family"] == fam and i["local"] == local and i["prefixlen"] == int(plen) for i in infos)
        assert cli("-n", n, "addr", "del", cidr, "dev", "v0").rc == 0
        infos = ipj(n, "addr", "show", "dev", "v0")[0]["addr_info"]
        assert not any(i["local"] == local for i in infos)


def test_ipv6_usable_at_once(pair: tuple[Namespace, Namespace]) -> None:
    a, b = pair  # the fixture added the addresses and brought the links up just now
    for ns in (a, b):
        for lk in ipj(_name(ns), "-6", "addr", "show"):
            for info in lk["addr_info"]:
                if info["local"].startswith("fd00:99::"):
                    assert "tentative" not in info and "dadfailed" not in info, info
    udp_roundtrip(a, b, "fd00:99::2", n=1)
    udp_roundtrip(b, a, "fd00:99::1", n=1)


def test_addr_show_json_equals_ip(pair: tuple[Namespace, Namespace], cli: Cli) -> None:
    a, _ = pair
    n = _name(a)
    for cidr in ("10.77.0.1/32", "10.78.0.1/31", "10.79.1.1/16", "fd00:77::1/128", "fe80::77/64"):
        assert cli("-n", n, "addr", "add", cidr, "dev", "v0").rc == 0, cidr

    def theirs() -> list[Any]:
        return [(lk["ifname"], [_pick(i, ADDR_KEYS) for i in lk["addr_info"]]) for lk in ipj(n, "addr", "show")]

    def mine() -> list[Any]:
        out = cli("-n", n, "--json", "addr", "show").json()
        return [(lk["ifname"], [_pick(i, ADDR_KEYS) for i in lk["addr_info"]]) for lk in out]

    t, m = settled(theirs, mine)
    assert m == t
    v0 = dict(t)["v0"]
    assert {"family": "inet", "local": "10.99.0.1", "prefixlen": 24, "scope": "global",
            "broadcast": "10.99.0.255"} in v0
    t1, m1 = settled(lambda: [_pick(i, ADDR_KEYS) for i in ipj(n, "addr", "show", "dev", "lo")[0]["addr_info"]],
                     lambda: [_pick(i, ADDR_KEYS) for i in cli("-n", n, "--json", "addr", "show", "lo")
                              .json()[0]["addr_info"]])
    assert m1 == t1 and {"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host",
                         "broadcast": None} in t1


# ---- routes -------------------------------------------------------------------------------------
ROUTE4_KEYS = ("dst", "gateway", "dev", "protocol", "scope", "prefsrc")
ROUTE6_KEYS = ("dst", "gateway", "dev")


def test_route_add_del(pair: tuple[Namespace, Namespace], cli: Cli) -> None:
    a, _ = pair
    n = _name(a)
    assert cli("-n", n, "route", "add", "10.50.0.0/16", "via", "10.99.0.2").rc == 0
    (r,) = ipj(n, "route", "show", "10.50.0.0/16")
    assert (r["gateway"], r["dev"]) == ("10.99.0.2", "v0")
    assert cli("-n", n, "route", "add", "10.60.0.0/24", "dev", "v0").rc == 0
    (r,) = ipj(n, "route", "show", "10.60.0.0/24")
    assert r["dev"] == "v0" and r["scope"] == "link" and "gateway" not in r
    assert cli("-n", n, "route", "add", "10.61.0.7", "dev", "v0").rc == 0
    assert ipj(n, "route", "show", "10.61.0.7")[0]["dst"] == "10.61.0.7"
    assert cli("-n", n, "route", "add", "fd00:50::/48", "via", "fd00:99::2").rc == 0
    (r,) = ipj(n, "-6", "route", "show", "fd00:50::/48")
    assert (r["gateway"], r["dev"]) == ("fd00:99::2", "v0")

    for dst in ("10.50.0.0/16", "10.60.0.0/24", "10.61.0.7", "fd00:50::/48"):
        res = cli("-n", n, "route", "del", dst)
        assert res.rc == 0, res.err
        fam = "-6" if ":" in dst else "-4"
        assert ipj(n, fam, "route", "show", dst) == []


def test_default_routes_v4_v6(pair: tuple[Namespace, Namespace], cli: Cli) -> None:
    a, _ = pair
    n = _name(a)
    assert cli("-n", n, "route", "add", "default", "via", "10.99.0.2").rc == 0
    assert cli("-n", n, "route", "add", "default", "via", "fd00:99::2").rc == 0
    (r4,) = ipj(n, "route", "show", "default")
    assert (r4["dst"], r4["gateway"], r4["dev"]) == ("default", "10.99.0.2", "v0")
    (r6,) = ipj(n, "-6", "route", "show", "default")
    assert (r6["dst"], r6["gateway"], r6["dev"]) == ("default", "fd00:99::2", "v0")
    # and it routes: B answers A's datagrams to an off-link address once B has it on lo
    assert cli("-n", n, "route", "del", "default").rc == 0
    assert ipj(n, "route", "show", "default") == []
    assert ipj(n, "-6", "route", "show", "default") != []


def test_default_route_carries_traffic(pair: tuple[Namespace, Namespace], cli: Cli) -> None:
    a, b = pair
    assert cli("-n", _name(b), "addr", "add", "172.31.255.1/32", "dev", "lo").rc == 0
    assert cli("-n", _name(a), "route", "add", "default", "via", "10.99.0.2").rc == 0
    udp_roundtrip(a, b, "172.31.255.1", n=1)


def test_route_show_json_equals_ip(pair: tuple[Namespace, Namespace], cli: Cli) -> None:
    a, _ = pair
    n = _name(a)
    for argv in (["10.50.0.0/16", "via", "10.99.0.2"], ["10.60.0.0/24", "dev", "v0"],
                 ["default", "via", "10.99.0.2"], ["10.70.0.0/24", "via", "10.99.0.2", "metric", "20"],
                 ["fd00:50::/48", "via", "fd00:99::2"], ["default", "via", "fd00:99::2"],
                 ["fd00:60::/64", "dev", "v0"]):
        res = cli("-n", n, "route", "add", *argv)
        assert res.rc == 0, (argv, res.err)

    t4, m4 = settled(lambda: [_pick(r, ROUTE4_KEYS) for r in ipj(n, "route", "show")],
                     lambda: [_pick(r, ROUTE4_KEYS) for r in cli("-n", n, "--json", "route", "show", "-4").json()])
    assert m4 == t4
    assert {"dst": "10.99.0.0/24", "gateway": None, "dev": "v0", "protocol": "kernel", "scope": "link",
            "prefsrc": "10.99.0.1"} in t4
    t6, m6 = settled(lambda: [_pick(r, ROUTE6_KEYS) for r in ipj(n, "-6", "route", "show")],
                     lambda: [_pick(r, ROUTE6_KEYS) for r in cli("-n", n, "--json", "route", "show", "-6").json()])
    assert m6 == t6
    assert {"dst": "fd00:50::/48", "gateway": "fd00:99::2", "dev": "v0"} in t6
    # metric as ip reports it
    (r,) = ipj(n, "route", "show", "10.70.0.0/24")
    mine = [x for x in cli("-n", n, "--json", "route", "show", "-4").json() if x["dst"] == "10.70.0.0/24"]
    assert mine[0].get("metric") == r["metric"] == 20


@pytest.mark.parametrize("kind", [["bridge"], ["vxlan", "id", "5"], ["macvlan", "link", "v0"], ["tap"]])
def test_link_add_mtu_in_the_create(netns_factory: NetnsFactory, cli: Cli, kind: list[str]) -> None:
    a = netns_factory()
    a.add_veth("v0", "v1")
    res = cli("-n", _name(a), "link", "add", "x0", "type", *kind, "mtu", "1400")
    assert res.rc == 0, res.err
    assert ip_link(a, "x0")["mtu"] == 1400


@pytest.mark.parametrize("kind,mtu", [(["macvlan", "link", "v0"], "9000"), (["tap"], "65535")])
def test_link_add_refused_mtu_leaves_nothing(netns_factory: NetnsFactory, cli: Cli, kind: list[str],
                                             mtu: str) -> None:
    # macvlan: above its lower device's 1500 (refused in the create request); tap: above its maximum (refused
    # after TUNSETIFF made it: nslab removes it again). No device is left half-made.
    a = netns_factory()
    a.add_veth("v0", "v1")
    before = [lk["ifname"] for lk in ipj(_name(a), "link", "show")]
    res = cli("-n", _name(a), "link", "add", "x0", "type", *kind, "mtu", mtu)
    assert res.rc == 1 and "Invalid argument" in res.err, res.err
    assert [lk["ifname"] for lk in ipj(_name(a), "link", "show")] == before
