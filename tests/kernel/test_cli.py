"""Bad input at the CLI on a real namespace: exit 2 with a message naming the thing and a hint; kernel refusals
exit 1 with the kernel's reason; nothing half-done. Commands always target a test namespace."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import CliResult, NetnsFactory, ip_netns_names, ipj, our_netns_names
from unit.test_cli import _usage

from nslab.namespace import Namespace

Cli = Callable[..., CliResult]


def _name(ns: Namespace) -> str:
    assert ns.name is not None
    return ns.name




# ---- in a namespace ------------------------------------------------------------------------------
@pytest.fixture
def lab(netns_factory: NetnsFactory) -> Namespace:
    """A namespace with veth v0—v1 (down), bridge br0 (down)."""
    ns: Namespace = netns_factory()
    ns.add_veth("v0", "v1")
    ns.add_bridge("br0")
    return ns


def _state(ns: Namespace) -> list[dict[str, object]]:
    return [{k: lk.get(k) for k in ("ifname", "flags", "mtu", "address", "master")}
            for lk in ipj(_name(ns), "link", "show")]


@pytest.mark.kernel
@pytest.mark.parametrize(("bad", "why"), [
    ("", "empty"), ("a" * 16, "16 bytes"), ("é" * 8, "16 bytes"), ("a/b", "'/'"), ("..", "reserved"),
    ("a b", "whitespace"), ("a:b", "':'"),
])
def test_link_add_invalid_ifname(lab: Namespace, cli: Cli, bad: str, why: str) -> None:
    before = _state(lab)
    _usage(cli("-n", _name(lab), "link", "add", bad, "type", "bridge"), "interface name", why)
    _usage(cli("-n", _name(lab), "link", "add", "ok0", "type", "veth", "peer", bad), "name", why)
    assert _state(lab) == before


@pytest.mark.kernel
@pytest.mark.parametrize("argv", [
    ["link", "set", "nosuch", "up"],
    ["link", "show", "nosuch"],
    ["link", "del", "nosuch"],
    ["link", "set", "v0", "master", "nosuch"],
    ["addr", "add", "10.0.0.1/24", "dev", "nosuch"],
    ["addr", "show", "nosuch"],
    ["route", "add", "10.1.0.0/24", "dev", "nosuch"],
    ["link", "add", "mv0", "type", "macvlan", "link", "nosuch"],
])
def test_unknown_device_is_exit_2(lab: Namespace, cli: Cli, argv: list[str]) -> None:
    before = _state(lab)
    _usage(cli("-n", _name(lab), *argv), "nosuch")
    assert _state(lab) == before


@pytest.mark.kernel
@pytest.mark.parametrize(("argv", "words"), [
    (["link", "set", "v0", "address", "02:00:00:00:00"], ["02:00:00:00:00", "MAC"]),
    (["link", "set", "v0", "address", "zz:00:00:00:00:01"], ["zz:00:00:00:00:01"]),
    (["link", "set", "v0", "address", "01:00:5e:00:00:01"], ["multicast"]),
    (["link", "set", "v0", "mtu", "abc"], ["mtu", "abc"]),
    (["link", "set", "v0", "mtu", "99999", "up"], ["mtu", "99999"]),
    (["link", "set", "v0", "mtu"], ["mtu"]),
    (["link", "set", "v0"], ["nothing to change"]),
    (["route", "add", "10.1.0.0/24", "via", "10.0.0.999"], ["10.0.0.999", "gateway"]),
    (["route", "add", "10.1.0.0/24", "via", "fd00::1"], ["fd00::1", "family"]),
    (["route", "add", "10.1.0.1/24", "via", "10.0.0.1"], ["10.1.0.1/24"]),
    (["route", "add", "nonsense", "dev", "v0"], ["nonsense"]),
    (["route", "add", "10.1.0.0/24"], ["gateway or a device"]),
    (["addr", "add", "300.1.1.1/24", "dev", "v0"], ["300.1.1.1/24"]),
    (["link", "add", "mv0", "type", "macvlan", "link", "v0", "mode", "bridged"], ["bridged", "mode"]),
    (["link", "add", "x0"], ["no type"]),
    (["link", "add", "x0", "type", "veth"], ["peer"]),
    (["link", "add", "x0", "type", "bridge", "peer", "y0"], ["'peer'", "bridge"]),
])
def test_malformed_input_is_exit_2_and_changes_nothing(lab: Namespace, cli: Cli, argv: list[str],
                                                       words: list[str]) -> None:
    before = _state(lab)
    routes = ipj(_name(lab), "route", "show")
    _usage(cli("-n", _name(lab), *argv), *words)
    assert _state(lab) == before
    assert ipj(_name(lab), "route", "show") == routes


@pytest.mark.kernel
@pytest.mark.parametrize(("argv", "typo", "meant"), [
    (["link", "set", "v0", "mtux", "1400"], "mtux", "mtu"),
    (["link", "set", "v0", "nomastr"], "nomastr", "nomaster"),
    (["link", "set", "v0", "up", "adress", "02:00:00:00:00:01"], "adress", "address"),
    (["link", "add", "x0", "type", "bridgee"], "bridgee", "bridge"),
    (["link", "add", "x0", "typ", "bridge"], "typ", "type"),
    (["route", "add", "10.1.0.0/24", "vai", "10.0.0.1"], "vai", "via"),
])
def test_unknown_keyword_did_you_mean(lab: Namespace, cli: Cli, argv: list[str], typo: str, meant: str) -> None:
    before = _state(lab)
    _usage(cli("-n", _name(lab), *argv), repr(typo), f"did you mean '{meant}'")
    assert _state(lab) == before  # 'up' before the typo was not applied either


@pytest.mark.kernel
def test_kernel_refusals_are_exit_1_with_reason(lab: Namespace, cli: Cli) -> None:
    n = _name(lab)
    res = cli("-n", n, "link", "del", "lo")
    assert res.rc == 1 and "'lo'" in res.err and "Operation not supported" in res.err
    assert "Traceback" not in res.err
    res = cli("-n", n, "link", "set", "v0", "master", "v1")  # v1 is no bridge: caught before the kernel
    assert res.rc == 2 and "v0" in res.err and "master must be a bridge" in res.err
    assert "master" not in ipj(n, "link", "show", "v0")[0]


@pytest.mark.kernel
def test_vxlan_malformed_remote_is_exit_2(lab: Namespace, cli: Cli) -> None:
    _usage(cli("-n", _name(lab), "link", "add", "vx0", "type", "vxlan", "id", "5", "remote", "1.2.3"), "1.2.3")


@pytest.mark.kernel
def test_enslave_to_non_bridge_hint_is_not_about_link_types(lab: Namespace, cli: Cli) -> None:
    res = cli("-n", _name(lab), "link", "set", "v0", "master", "v1")
    assert res.rc == 2 and "lacks that link type" not in res.err


@pytest.mark.kernel
def test_exists_is_exit_2(lab: Namespace, cli: Cli) -> None:
    before = _state(lab)
    _usage(cli("-n", _name(lab), "link", "add", "br0", "type", "bridge"), "br0", "exists")
    _usage(cli("-n", _name(lab), "link", "add", "tap9", "type", "veth", "peer", "v0"), "exists")
    _usage(cli("-n", _name(lab), "link", "add", "br0", "type", "tap"), "br0", "exists")
    assert _state(lab) == before
    assert cli("-n", _name(lab), "addr", "add", "10.3.0.1/24", "dev", "br0").rc == 0
    _usage(cli("-n", _name(lab), "addr", "add", "10.3.0.1/24", "dev", "br0"), "10.3.0.1/24", "exists")


@pytest.mark.kernel
def test_mtu_out_of_range_leaves_link_down(lab: Namespace, cli: Cli) -> None:
    assert cli("-n", _name(lab), "link", "set", "v0", "mtu", "99999", "up").rc == 2
    v0 = ipj(_name(lab), "link", "show", "v0")[0]
    assert "UP" not in v0["flags"] and v0["mtu"] == 1500


@pytest.mark.kernel
def test_move_to_unknown_namespace_changes_nothing(lab: Namespace, cli: Cli,
                                                   netns_factory: NetnsFactory) -> None:
    typo = netns_factory.reserve()
    before, names = _state(lab), our_netns_names()
    _usage(cli("-n", _name(lab), "link", "set", "v0", "up", "mtu", "1400", "netns", typo), typo)
    assert _state(lab) == before and our_netns_names() == names and typo not in ip_netns_names()


# Half-done changes: the kernel applies a request's attributes in order and keeps what it did before a
# refusal, so `link set` checks what it can first and restores the device's prior state on a refusal.


@pytest.mark.kernel
def test_refused_master_leaves_link_down(lab: Namespace, cli: Cli) -> None:
    before = _state(lab)
    res = cli("-n", _name(lab), "link", "set", "v0", "up", "master", "v1")
    assert res.rc == 2
    assert _state(lab) == before


@pytest.mark.kernel
def test_refused_mtu_leaves_address_unchanged(lab: Namespace, cli: Cli) -> None:
    lab.add_macvlan("mv0", "v0")  # a macvlan's mtu may not exceed its lower device's (1500)
    before = _state(lab)
    res = cli("-n", _name(lab), "link", "set", "mv0", "address", "02:00:00:00:00:99", "mtu", "9000")
    assert res.rc == 1
    assert _state(lab) == before


@pytest.mark.kernel
def test_refused_move_leaves_mtu_unchanged(lab: Namespace, cli: Cli, netns_factory: NetnsFactory) -> None:
    other = netns_factory()
    other.add_bridge("v0")  # the name is taken there
    before = _state(lab)
    res = cli("-n", _name(lab), "link", "set", "v0", "mtu", "1400", "up", "netns", _name(other))
    assert res.rc in (1, 2) and "exists" in res.err
    assert _state(lab) == before


@pytest.mark.kernel
def test_route_del_missing_is_refused(lab: Namespace, cli: Cli) -> None:
    res = cli("-n", _name(lab), "route", "del", "10.123.0.0/24")
    assert res.rc in (1, 2) and "10.123.0.0/24" in res.err and "Traceback" not in res.err
