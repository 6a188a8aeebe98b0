"""Kernel features this host lacks, through nslab, in the VM tier: each test is one `needs(...)` marker away
from running in the guest (on a host whose kernel has the feature, it runs on the host).

nslab does not drive netem, dummy, vlan or wireguard yet: the tests make those objects with iproute2 and
check what nslab's own code does with them (its qdisc probe and listing, its link views and changes).
"""

from __future__ import annotations

import re
import statistics
import subprocess
from typing import Any

import pytest
from conftest import CliResult, NetnsFactory, ip, ipj

from nslab.kernel import tc
from nslab.namespace import Namespace

from . import features

pytestmark = pytest.mark.kernel


def _rtts(ns: Namespace, dst: str, count: int) -> list[float]:
    res = ns.run(["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "5", dst], capture_output=True, text=True,
                 timeout=60)
    rtts = [float(t) for t in re.findall(r"time=([\d.]+) ms", res.stdout)]
    assert len(rtts) == count, res.stdout + res.stderr
    return rtts


def _name(ns: Namespace) -> str:
    assert ns.name is not None
    return ns.name


def _kind(ns: Namespace, dev: str) -> Any:
    (lk,) = ipj(_name(ns), "-d", "link", "show", dev)
    return lk.get("linkinfo", {}).get("info_kind")


@pytest.mark.vm
@pytest.mark.parametrize(("kind", "args"), [("netem", ()),
                                            ("tbf", ("rate", "1mbit", "burst", "4k", "latency", "50ms"))])
def test_nslab_qdisc_probe_agrees_with_the_kernel(netns_factory: NetnsFactory, kind: str, args: tuple[str]) -> None:
    # On this host netem is absent (False) and tbf present; in the guest both are there. The reference is
    # the tier's own probe (iproute2's exit status in a throw-away namespace).
    ns = netns_factory()
    expected, said = features.probe(kind)
    assert tc.have_qdisc(_name(ns), kind, *args) is expected, said
    assert all(q.get("handle") != "5e1b:" for q in tc.qdiscs(_name(ns), "lo"))  # the probe's qdisc is gone


@pytest.mark.needs("netem")
def test_netem_delay_is_seen_by_ping_and_by_nslab(netns_factory: NetnsFactory) -> None:
    ns = netns_factory()
    ns.link("lo").up()
    assert tc.have_qdisc(_name(ns), "netem")
    before = statistics.median(_rtts(ns, "127.0.0.1", 5))
    subprocess.run(["tc", "-n", _name(ns), "qdisc", "add", "dev", "lo", "root", "netem", "delay", "20ms"], check=True)
    (root,) = [q for q in tc.qdiscs(_name(ns), "lo") if q.get("root")]
    assert root["kind"] == "netem" and not tc.is_ours(root)  # nslab sees it and knows it is not its own
    rtts = _rtts(ns, "127.0.0.1", 10)
    # lo carries the delay both ways: at least 40 ms. Above it, only what an emulated CPU under load adds.
    assert min(rtts) >= 39.5, rtts
    assert statistics.median(rtts) < 40 + 100, rtts
    assert before < 20, before
    subprocess.run(["tc", "-n", _name(ns), "qdisc", "del", "dev", "lo", "root"], check=True)
    assert statistics.median(_rtts(ns, "127.0.0.1", 5)) < 20


@pytest.mark.needs("dummy")
def test_dummy_link_through_nslab_views_and_changes(netns_factory: NetnsFactory, cli: Any) -> None:
    ns = netns_factory()
    ip(_name(ns), "link", "add", "d0", "type", "dummy")
    res: CliResult = cli("-n", _name(ns), "link", "set", "d0", "mtu", "1400", "up")
    assert res.rc == 0, res.err
    (mine,) = [lk for lk in ns.links() if lk.ifname == "d0"]
    (theirs,) = ipj(_name(ns), "link", "show", "d0")
    assert (mine.kind, mine.mtu, mine.up) == (_kind(ns, "d0"), theirs["mtu"], "UP" in theirs["flags"])
    assert (mine.kind, mine.mtu, mine.up) == ("dummy", 1400, True)
    ns.add_address("10.55.0.1/24", "d0")
    assert any(a["local"] == "10.55.0.1" for a in ipj(_name(ns), "addr", "show", "d0")[0]["addr_info"])
    ns.link("d0").delete()
    assert ip(_name(ns), "link", "show", "d0", check=False).returncode != 0


@pytest.mark.needs("vlan")
def test_vlan_between_namespaces_over_an_nslab_veth(netns_factory: NetnsFactory) -> None:
    a, b = netns_factory(), netns_factory()
    a.add_veth("v0", "v1", peer_ns=b)
    for ns, dev, addr in ((a, "v0", "10.56.0.1/24"), (b, "v1", "10.56.0.2/24")):
        ns.link(dev).up()
        ip(_name(ns), "link", "add", "link", dev, "name", f"{dev}.5", "type", "vlan", "id", "5")
        ns.add_address(addr, f"{dev}.5")
        ns.link(f"{dev}.5").up()
    (vlan,) = [lk for lk in a.links() if lk.ifname == "v0.5"]
    assert vlan.kind == "vlan" == _kind(a, "v0.5")
    assert vlan.link_index == a.link("v0").info().ifindex  # nslab sees the lower device
    assert len(_rtts(a, "10.56.0.2", 2)) == 2  # tagged frames cross the veth and come back
    # The tag is what joins them: with the far end on another VLAN id nothing answers.
    ip(_name(b), "link", "del", "v1.5")
    ip(_name(b), "link", "add", "link", "v1", "name", "v1.6", "type", "vlan", "id", "6")
    b.add_address("10.56.0.2/24", "v1.6")
    b.link("v1.6").up()
    res = a.run(["ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", "10.56.0.2"], capture_output=True, text=True,
                timeout=30)
    assert res.returncode != 0 and " 0 received" in res.stdout, res.stdout


@pytest.mark.needs("wireguard")
def test_wireguard_link_through_nslab(netns_factory: NetnsFactory) -> None:
    ns = netns_factory()
    ip(_name(ns), "link", "add", "wg0", "type", "wireguard")
    ns.link("wg0").set_mtu(1380).up()
    ns.add_address("10.57.0.1/24", "wg0")
    info = ns.link("wg0").info()
    (theirs,) = ipj(_name(ns), "link", "show", "wg0")
    assert (info.kind, info.mtu, info.up) == ("wireguard", 1380, True) == (_kind(ns, "wg0"), theirs["mtu"],
                                                                           "UP" in theirs["flags"])
    assert info.link_type == theirs["link_type"] == "none"  # a layer-3 device: no MAC address
    ns.link("wg0").delete()
    assert ip(_name(ns), "link", "show", "wg0", check=False).returncode != 0
