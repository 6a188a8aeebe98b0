"""The link-kind table (nslab/kernel/linkkinds.py) and the link attribute table (rtnl.LINK_ATTRS) are the one
source the CLI, Namespace and the codec read: checked here without root or kernel. The bytes each kind's
request carries are checked against iproute2's own requests in test_codec_bytes.py."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
from conftest import CliResult

from nslab.cli.link import _add_usage
from nslab.errors import UsageError
from nslab.kernel import linkkinds
from nslab.kernel.netlink import attr_u16, parse_attrs
from nslab.kernel.rtnl import IFLA_LINKINFO, LINK_ATTRS, Rtnl, link_attrs
from nslab.namespace import Namespace


def test_every_data_keyword_is_one_the_encoder_takes() -> None:
    for k in linkkinds.KINDS.values():
        params = set(inspect.signature(k.data).parameters) if k.data is not None else set()
        for o in k.opts:
            if o.data is not None:
                assert o.data in params, (k.name, o.word, o.data)
            if o.attr is not None:
                assert o.attr in LINK_ATTRS, (k.name, o.word, o.attr)
        assert set(k.defaults) <= params, k.name
        if k.data_mtu:
            assert "mtu" in params, k.name


def test_namespace_shortcuts_take_the_table_keywords() -> None:
    # add_veth(name, peer, peer_ns, mtu) etc.: each shortcut's keywords are its kind's Opt.param (and mtu).
    for kind in linkkinds.KINDS:
        method = getattr(Namespace, f"add_{kind}")
        taken = set(inspect.signature(method).parameters) - {"self", "name"}
        table = {o.param for o in linkkinds.KINDS[kind].opts} | {o.param for o in linkkinds.COMMON}
        assert taken <= table, (kind, taken - table)


def test_cli_help_lists_every_kind() -> None:
    text = _add_usage()
    for kind in linkkinds.KINDS.values():
        assert f"type {kind.name}" in text
    assert text.startswith("create a device: NAME type veth peer PEER [peer-netns NS] | type bridge | ")


@pytest.mark.parametrize("kind", [k for k, v in linkkinds.KINDS.items() if v.netlink])
def test_each_netlink_kind_builds_a_request_naming_its_kind(kind: str) -> None:
    k = linkkinds.KINDS[kind]
    examples: dict[str, dict[str, object]] = {"veth": {"peer": "p0"}, "vxlan": {"vni": 5}, "macvlan": {"lower": 7},
                                          "vlan": {"lower": 7, "vid": 5}}
    params = examples.get(kind, {})
    req = k.request("x0", params)
    attrs = parse_attrs(req.payload, 16)
    info = parse_attrs(attrs[IFLA_LINKINFO])
    assert info[1] == kind.encode() + b"\0"


def test_link_attrs_encodes_what_is_given_and_refuses_unknown_names() -> None:
    both = link_attrs(mtu=1400, alias="a")
    assert both == link_attrs(mtu=1400) + link_attrs(alias="a")
    assert link_attrs(mtu=None) == b""
    with pytest.raises(TypeError, match="not a link attribute: up"):
        link_attrs(up=True)


def test_set_and_add_share_the_attribute_encoding() -> None:
    add = Rtnl.req_add_link("x0", "bridge", mtu=1300, master=4, address=b"\x02\0\0\0\0\1")
    change = Rtnl.req_set_link(3, "x0", mtu=1300, master=4, address=b"\x02\0\0\0\0\1")
    peer = Rtnl.veth_peer("x1", mtu=1300, address=b"\x02\0\0\0\0\1")
    shared = link_attrs(mtu=1300, master=4, address=b"\x02\0\0\0\0\1")
    assert shared in add.payload and shared in change.payload
    assert link_attrs(mtu=1300, address=b"\x02\0\0\0\0\1") in peer


def test_unknown_kind_and_unknown_keyword_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown link kind 'vlanx'"):
        linkkinds.kind("vlanx")
    with pytest.raises(UsageError, match="'peer' does not apply to kind bridge"):
        Namespace.root().add_link("bridge", "br9", peer="x")  # refused before any kernel call


def _vlan_data(vid: int) -> bytes:
    return attr_u16(1, vid)  # IFLA_VLAN_ID


VLAN = linkkinds.LinkKind("vlan", "link DEV id VID", (
    linkkinds.Opt("link", "lower", "ifname", "lower device name", resolve="ifindex", attr="lower",
                  required=("a vlan needs its lower device", "add 'link DEV'")),
    linkkinds.Opt("id", "vid", "int", lo=0, hi=4094, unit="vid", data="vid",
                  required=("a vlan needs an id", "add 'id VID' (0-4094)")),
), data=_vlan_data)


def test_a_new_kind_is_one_entry(monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliResult]) -> None:
    # What issue 11's vlan will be: one entry (here a test's own), and the CLI, its help and the codec know it.
    monkeypatch.setitem(linkkinds.KINDS, "vlan", VLAN)
    assert "| type vlan link DEV id VID" in _add_usage()
    res = cli("link", "add", "x0", "type", "vlan", "id", "5")
    assert (res.rc, res.err.splitlines()[0]) == (2, "nslab: link add x0: a vlan needs its lower device")
    res = cli("link", "add", "x0", "type", "vlan", "link", "v0", "id", "4095")  # vlan's range, not vxlan's
    assert (res.rc, res.err.splitlines()[0]) == (2, "nslab: link add x0: invalid id '4095'")
    res = cli("link", "add", "x0", "type", "vlan", "link", "v0", "id", "5", "peer", "y")
    assert res.rc == 2 and "'peer' does not apply to type vlan" in res.err
    req = VLAN.request("x0", {"lower": 3, "vid": 5})
    attrs = parse_attrs(req.payload, 16)
    assert attrs[5] == b"\3\0\0\0"  # IFLA_LINK
    info = parse_attrs(attrs[IFLA_LINKINFO])
    assert info[1] == b"vlan\0" and parse_attrs(info[2]) == {1: b"\5\0"}


def test_a_word_two_kinds_read_differently(monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliResult]) -> None:
    # vxlan's 'id' is a number; a kind whose 'id' names a device reads it as a name, before or after 'type'.
    owner = linkkinds.LinkKind("fakeid", "id OWNER", (linkkinds.Opt("id", "owner", "ifname", "owner name"),))
    monkeypatch.setitem(linkkinds.KINDS, "fakeid", owner)
    for argv in (["type", "fakeid", "id", "a/b"], ["id", "a/b", "type", "fakeid"]):
        res = cli("link", "add", "x0", *argv)
        assert res.rc == 2 and "id: invalid owner name 'a/b'" in res.err, (argv, res.err)
    res = cli("link", "add", "x0", "type", "vxlan", "id", "a/b")
    assert res.rc == 2 and "invalid id 'a/b'" in res.err
