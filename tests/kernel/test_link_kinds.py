"""dummy, vlan and wireguard links made by nslab (CLI and Python), checked against iproute2 and net-tools on the
same state. This host's kernel has none of them: the `needs(...)` tests run in the VM tier's guest (Debian's 6.1,
docs/vm-tier.md); the test of what a kernel without them answers runs on the host (and in the guest, where it
checks the other branch). Traffic only between namespaces these tests create.
"""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from conftest import CliResult, NetnsFactory, ip, ipj
from vm import features

from nslab.namespace import Namespace

pytestmark = pytest.mark.kernel

Cli = Callable[..., CliResult]
KEYS = ("ifindex", "ifname", "flags", "mtu", "operstate", "link_type", "address", "broadcast", "link", "txqlen")


def _name(ns: Namespace) -> str:
    assert ns.name is not None
    return ns.name


def detail(ns: Namespace, dev: str) -> dict[str, Any]:
    (lk,) = ipj(_name(ns), "-d", "link", "show", dev)
    assert isinstance(lk, dict)
    return lk


def devices(ns: Namespace) -> list[str]:
    return [lk["ifname"] for lk in ipj(_name(ns), "link", "show")]


def ok(res: CliResult) -> CliResult:
    assert res.rc == 0, res.err
    return res


def same_json_as_ip(cli: Cli, ns: Namespace, dev: str) -> None:
    (mine,) = ok(cli("-n", _name(ns), "--json", "link", "show", dev)).json()
    (theirs,) = ipj(_name(ns), "link", "show", dev)
    assert {k: mine.get(k) for k in KEYS} == {k: theirs.get(k) for k in KEYS}, dev


def same_text_as_ip(cli: Cli, ns: Namespace) -> None:
    """`nslab link show` against `ip -d link show`: the head line as ip prints it, less the fields nslab leaves
    out (qdisc, mode, group), the link/ line as ip prints it, then the kind as ip -d's line starts (a vlan's
    with its protocol and id)."""
    mine = ok(cli("-n", _name(ns), "link", "show")).out.splitlines()
    theirs = ip(_name(ns), "-d", "link", "show").stdout.splitlines()
    want: list[str] = []
    for line in theirs:
        if re.match(r"^\d+: ", line):
            want.append(re.sub(r" (qdisc|mode|group) \S+", "", line))
        elif line.startswith("    link/"):
            want.append(re.sub(r" (promiscuity|allmulti|minmtu|maxmtu) .*", "", line))
        elif want and want[-1].startswith("    link/") and re.match(r"^    [a-z]", line):
            words = line.split()
            if words[0] in ("veth", "dummy", "vlan", "wireguard", "bridge"):
                want.append("    " + " ".join(words[:5] if words[0] == "vlan" else words[:1]))
    assert mine == want, "\n".join(difflib.unified_diff(want, mine, "ip -d (less)", "nslab", lineterm=""))


@pytest.mark.vm
@pytest.mark.parametrize(("kind", "feature", "module", "argv"), [
    ("dummy", "dummy", "dummy", ["x9", "type", "dummy"]),
    ("vlan", "vlan", "8021q", ["link", "v0", "name", "x9", "type", "vlan", "id", "5"]),
    ("wireguard", "wireguard", "wireguard", ["x9", "type", "wireguard"]),
])
def test_link_add_does_what_the_kernel_can(netns_factory: NetnsFactory, cli: Cli, kind: str, feature: str,
                                           module: str, argv: list[str]) -> None:
    # The oracle is iproute2's own answer to the same question (tests/vm/features.py). Where the kernel lacks
    # the kind (this host): exit 1 naming the module, nothing made. Where it has it (the guest): the device.
    ns = netns_factory()
    ns.add_veth("v0", "v1")
    before = devices(ns)
    has, said = features.probe(feature)
    res = cli("-n", _name(ns), "link", "add", *argv)
    if has:
        assert res.rc == 0, res.err
        assert detail(ns, "x9")["linkinfo"]["info_kind"] == kind
    else:
        assert "Unknown device type" in said, said
        assert res.rc == 1 and f"modprobe {module}" in res.err and f"no {kind} links" in res.err, res.err
        assert "Traceback" not in res.err
        assert devices(ns) == before


@pytest.mark.needs("dummy")
def test_dummy_cli_and_api_against_ip(netns_factory: NetnsFactory, cli: Cli) -> None:
    ns = netns_factory()
    ok(cli("-n", _name(ns), "link", "add", "d0", "type", "dummy"))
    ns.add_dummy("d1", mtu=9000)
    ip(_name(ns), "link", "add", "theirs", "type", "dummy")  # not nslab's: must stay as it is
    for dev, mtu in (("d0", 1500), ("d1", 9000)):
        lk = detail(ns, dev)
        assert (lk["linkinfo"]["info_kind"], lk["mtu"], lk["link_type"]) == ("dummy", mtu, "ether")
        same_json_as_ip(cli, ns, dev)
    ok(cli("-n", _name(ns), "link", "set", "d0", "up"))
    ns.add_address("10.59.0.1/24", "d0")
    assert "UP" in detail(ns, "d0")["flags"]
    same_text_as_ip(cli, ns)
    ok(cli("-n", _name(ns), "link", "del", "d0"))
    ns.link("d1").delete()
    assert devices(ns) == ["lo", "theirs"]
    res = cli("-n", _name(ns), "link", "add", "theirs", "type", "dummy")
    assert res.rc == 2 and "exists" in res.err  # refused, the other's device untouched
    assert detail(ns, "theirs")["ifindex"] == ipj(_name(ns), "link", "show", "theirs")[0]["ifindex"]


@pytest.mark.needs("vlan")
def test_vlan_both_orders_protocols_and_api_against_ip(netns_factory: NetnsFactory, cli: Cli) -> None:
    ns = netns_factory()
    ns.add_veth("v0", "v1")
    n = _name(ns)
    ok(cli("-n", n, "link", "add", "link", "v0", "name", "v0.10", "type", "vlan", "id", "10"))
    ok(cli("-n", n, "link", "add", "v0.20", "link", "v0", "type", "vlan", "id", "20", "protocol", "802.1ad",
           "mtu", "1400"))
    ns.add_vlan("v0.4094", "v0", 4094, protocol="802.1Q")
    ns.add_vlan("v1.0", "v1", 0)
    want = {"v0.10": ("v0", 10, "802.1Q", 1500), "v0.20": ("v0", 20, "802.1ad", 1400),
            "v0.4094": ("v0", 4094, "802.1Q", 1500), "v1.0": ("v1", 0, "802.1Q", 1500)}
    for dev, (lower, vid, proto, mtu) in want.items():
        lk = detail(ns, dev)
        info = lk["linkinfo"]
        assert (info["info_kind"], lk["link"], info["info_data"]["id"], info["info_data"]["protocol"], lk["mtu"]) \
            == ("vlan", lower, vid, proto, mtu), dev
        same_json_as_ip(cli, ns, dev)
    same_text_as_ip(cli, ns)
    # Deleting a vlan leaves its lower device; deleting the lower device takes its vlans (the kernel's doing).
    ok(cli("-n", n, "link", "del", "v0.20"))
    assert "v0.20" not in devices(ns) and "v0" in devices(ns)
    ok(cli("-n", n, "link", "del", "v1"))  # v0 and v1 go together, and every vlan on them
    assert devices(ns) == ["lo"]


@pytest.mark.needs("vlan")
def test_vlan_traffic_between_namespaces_follows_id_and_protocol(netns_factory: NetnsFactory, cli: Cli) -> None:
    a, b = netns_factory(), netns_factory()
    a.add_veth("v0", "v1", peer_ns=b)

    def vlan(ns: Namespace, lower: str, vid: int, proto: str, addr: str) -> str:
        dev = f"{lower}.{vid}"
        ok(cli("-n", _name(ns), "link", "add", "link", lower, "name", dev, "type", "vlan", "id", str(vid),
               "protocol", proto))
        ns.add_address(addr, dev)
        ns.link(dev).up()
        return dev

    def pings(src: Namespace, dst: str) -> int:
        res = src.run(["ping", "-n", "-c", "2", "-i", "0.3", "-W", "5", dst], capture_output=True, text=True,
                      timeout=60)
        got = re.search(r"(\d+) received", res.stdout)
        assert got, res.stdout + res.stderr
        return int(got.group(1))

    a.link("v0").up()
    b.link("v1").up()
    vlan(a, "v0", 10, "802.1Q", "10.60.0.1/24")
    far = vlan(b, "v1", 10, "802.1Q", "10.60.0.2/24")
    assert pings(a, "10.60.0.2") == 2  # tagged frames cross the veth and come back
    # The same id with the other tag protocol (an 802.1ad outer tag) does not reach the 802.1Q device.
    ok(cli("-n", _name(b), "link", "del", far))
    vlan(b, "v1", 10, "802.1ad", "10.60.0.2/24")
    assert pings(a, "10.60.0.2") == 0
    # Both ends 802.1ad: it answers again.
    ok(cli("-n", _name(a), "link", "del", "v0.10"))
    vlan(a, "v0", 10, "802.1ad", "10.60.0.1/24")
    assert pings(a, "10.60.0.2") == 2


@pytest.mark.needs("vlan")
def test_vlan_refusals(netns_factory: NetnsFactory, cli: Cli) -> None:
    ns = netns_factory()
    ns.add_veth("v0", "v1")
    n = _name(ns)
    ok(cli("-n", n, "link", "add", "link", "v0", "name", "v0.10", "type", "vlan", "id", "10"))
    before = devices(ns)
    # lo takes no vlan: the kernel's own reason (as ip gets it), exit 1, not "load 8021q"
    res = cli("-n", n, "link", "add", "link", "lo", "name", "lo.5", "type", "vlan", "id", "5")
    oracle = ip(n, "link", "add", "link", "lo", "name", "lo.5", "type", "vlan", "id", "5", check=False)
    reason = oracle.stderr.strip().removeprefix("Error: ").rstrip(".")
    assert oracle.returncode != 0 and res.rc == 1 and reason and reason in res.err, res.err
    assert "modprobe" not in res.err
    # v0 has a vlan 10 already: the hint names the id, not the new name
    res = cli("-n", n, "link", "add", "v0.x", "link", "v0", "type", "vlan", "id", "10")
    assert res.rc == 2 and "v0 already has a vlan with id 10" in res.err, res.err
    res = cli("-n", n, "link", "add", "x0", "link", "nosuch", "type", "vlan", "id", "5")
    assert res.rc == 2 and "nosuch" in res.err, res.err
    assert devices(ns) == before  # nothing half-built


@pytest.mark.needs("wireguard")
def test_wireguard_cli_and_api_against_ip(netns_factory: NetnsFactory, cli: Cli) -> None:
    ns = netns_factory()
    n = _name(ns)
    ok(cli("-n", n, "link", "add", "wg0", "type", "wireguard", "mtu", "1380"))
    ns.add_wireguard("wg1")
    for dev, mtu in (("wg0", 1380), ("wg1", 1420)):  # 1420: the kernel's default for wireguard
        lk = detail(ns, dev)
        assert (lk["linkinfo"]["info_kind"], lk["mtu"], lk["link_type"]) == ("wireguard", mtu, "none")
        assert {"POINTOPOINT", "NOARP"} <= set(lk["flags"]) and "address" not in lk
        same_json_as_ip(cli, ns, dev)
    ok(cli("-n", n, "link", "set", "wg0", "up"))
    ns.add_address("10.61.0.1/24", "wg0")
    same_text_as_ip(cli, ns)
    ok(cli("-n", n, "link", "del", "wg0"))
    ns.link("wg1").delete()
    assert devices(ns) == ["lo"]


IFCONFIG = shutil.which("ifconfig") or "/usr/sbin/ifconfig"


@pytest.mark.needs("dummy", "vlan", "wireguard")
def test_ifconfig_of_the_kinds_is_net_tools_byte_for_byte(netns_factory: NetnsFactory, cli: Cli) -> None:
    ns = netns_factory()
    n = _name(ns)
    ok(cli("-n", n, "link", "add", "d0", "type", "dummy", "mtu", "9000"))
    ok(cli("-n", n, "link", "add", "link", "d0", "name", "d0.7", "type", "vlan", "id", "7"))
    ok(cli("-n", n, "link", "add", "wg0", "type", "wireguard"))
    for dev, addr in (("d0", "10.62.0.1/24"), ("d0.7", "10.62.7.1/24"), ("wg0", "10.62.9.1/24")):
        ok(cli("-n", n, "addr", "add", addr, "dev", dev))
        ok(cli("-n", n, "link", "set", dev, "up"))
    outs: dict[str, str] = {}
    for argv in (["-a"], ["wg0"], ["-s", "-a"]):
        real = mine = ""
        for _ in range(20):  # counters move with IPv6's own traffic: a moment when net-tools agrees with itself
            before = subprocess.run(["ip", "netns", "exec", n, IFCONFIG, *argv], capture_output=True, text=True,
                                    timeout=60, check=True).stdout
            mine = ok(cli("-n", n, "ifconfig", *argv)).out
            real = subprocess.run(["ip", "netns", "exec", n, IFCONFIG, *argv], capture_output=True, text=True,
                                  timeout=60, check=True).stdout
            if before == real == mine:
                break
        assert mine == real, "\n".join(difflib.unified_diff(real.splitlines(), mine.splitlines(), "ifconfig",
                                                             "nslab", lineterm=""))
        outs[" ".join(argv)] = real
    assert "wg0: flags=209<UP,POINTOPOINT,RUNNING,NOARP>" in outs["wg0"] and "(UNSPEC)" in outs["wg0"]
    assert "d0.7: flags=" in outs["-a"] and "mtu 9000" in outs["-a"]
