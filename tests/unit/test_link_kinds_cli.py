"""dummy, vlan and wireguard in the link-kind table: the CLI's words (ip's two orders of `link add`), the
Python shortcuts and the bad input refused before any kernel call. Pure: no root, no kernel (Namespace.add_link
is replaced by a recorder where a command would reach it). The bytes are in test_link_kinds_codec.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import CliResult

from nslab.cli.link import _add_usage
from nslab.errors import UsageError
from nslab.kernel import linkkinds
from nslab.namespace import Namespace

Cli = Callable[..., CliResult]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, dict[str, Any]]]:
    """What `nslab link add` asks of Namespace.add_link (kind, name, keywords); nothing reaches a kernel."""
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def add_link(_self: Namespace, kind: str, name: str, **params: Any) -> None:
        seen.append((kind, name, params))

    monkeypatch.setattr(Namespace, "add_link", add_link)
    return seen


@pytest.mark.parametrize(("argv", "want"), [
    (["d0", "type", "dummy"], ("dummy", "d0", {})),
    (["d0", "type", "dummy", "mtu", "9000"], ("dummy", "d0", {"mtu": 9000})),
    (["name", "d0", "type", "dummy"], ("dummy", "d0", {})),
    (["wg0", "type", "wireguard"], ("wireguard", "wg0", {})),
    (["wg0", "mtu", "1380", "type", "wireguard"], ("wireguard", "wg0", {"mtu": 1380})),
    # ip's order (`ip link add link eth0 name eth0.10 type vlan id 10`) and nslab's (NAME first), same request
    (["link", "eth0", "name", "eth0.10", "type", "vlan", "id", "10"],
     ("vlan", "eth0.10", {"lower": "eth0", "vid": 10})),
    (["eth0.10", "link", "eth0", "type", "vlan", "id", "10"], ("vlan", "eth0.10", {"lower": "eth0", "vid": 10})),
    (["eth0.10", "type", "vlan", "id", "10", "link", "eth0"], ("vlan", "eth0.10", {"lower": "eth0", "vid": 10})),
    (["link", "eth0", "name", "q", "type", "vlan", "id", "0", "protocol", "802.1ad"],
     ("vlan", "q", {"lower": "eth0", "vid": 0, "protocol": "802.1ad"})),
    (["q", "link", "eth0", "type", "vlan", "protocol", "802.1q", "id", "4094", "mtu", "1400"],
     ("vlan", "q", {"lower": "eth0", "vid": 4094, "protocol": "802.1q", "mtu": 1400})),
    # a device called link or name: `name link`, as in ip
    (["name", "link", "type", "dummy"], ("dummy", "link", {})),
    (["link", "eth0", "name", "name", "type", "vlan", "id", "3"], ("vlan", "name", {"lower": "eth0", "vid": 3})),
    # macvlan took `link DEV` before; ip's order works for it too
    (["link", "eth0", "name", "mv0", "type", "macvlan"], ("macvlan", "mv0", {"lower": "eth0"})),
])
def test_link_add_words(cli: Cli, calls: list[tuple[str, str, dict[str, Any]]], argv: list[str],
                        want: tuple[str, str, dict[str, Any]]) -> None:
    res = cli("link", "add", *argv)
    assert res.rc == 0, res.err
    assert calls == [want]


@pytest.mark.parametrize(("argv", "says"), [
    (["link", "eth0", "type", "vlan", "id", "5"], "link add: no device name"),
    (["x0", "name", "y0", "type", "dummy"], "link add x0: a second name 'y0'"),
    (["x0", "type", "vlan", "id", "5"], "link add x0: a vlan needs its lower device"),
    (["x0", "link", "eth0", "type", "vlan"], "link add x0: a vlan needs an id"),
    (["x0", "link", "eth0", "type", "vlan", "id", "4095"], "link add x0: invalid id '4095'"),
    (["x0", "link", "eth0", "type", "vlan", "id", "-1"], "link add x0: invalid id '-1'"),
    (["x0", "link", "eth0", "type", "vlan", "id", "5", "protocol", "802.1x"], "invalid vlan protocol '802.1x'"),
    (["x0", "link", "eth0", "type", "vlan", "id", "5", "protocol"], "'protocol' needs a value"),
    (["x0", "link", "a/b", "type", "vlan", "id", "5"], "link add x0: link: invalid lower device name 'a/b'"),
    (["link", "eth0", "name", "a/b", "type", "vlan", "id", "5"], "link add: name: invalid interface name 'a/b'"),
    (["x0", "type", "dummy", "id", "5"], "'id' does not apply to type dummy"),
    (["x0", "type", "wireguard", "peer", "y"], "'peer' does not apply to type wireguard"),
    (["x0", "type", "dummy", "protocol", "802.1Q"], "'protocol' does not apply to type dummy"),
    (["x0", "type", "vxlan", "id", "5", "protocol", "802.1Q"], "'protocol' does not apply to type vxlan"),
    (["x0", "type", "wireguard", "mtu", "40"], "invalid mtu '40'"),
])
def test_bad_words_are_exit_2_before_any_kernel_call(cli: Cli, calls: list[tuple[str, str, dict[str, Any]]],
                                                     argv: list[str], says: str) -> None:
    res = cli("link", "add", *argv)
    assert res.rc == 2 and says in res.err, res.err
    assert "Traceback" not in res.err
    assert calls == []


def test_the_kinds_are_in_the_table_with_their_modules() -> None:
    got = {k.name: k.module for k in linkkinds.KINDS.values()}
    assert {"dummy": "dummy", "vlan": "8021q", "wireguard": "wireguard"}.items() <= got.items()
    assert all(got.values()), got  # every kind names the module a kernel without it lacks
    text = _add_usage()
    for words in ("type dummy", "type vlan link DEV id VID [protocol 802.1Q|802.1ad]", "type wireguard"):
        assert words in text


def test_python_shortcuts_pass_the_table_keywords(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []
    monkeypatch.setattr(Namespace, "add_link", lambda _s, kind, name, **kw: seen.append((kind, name, kw)))
    ns = Namespace("nowhere")
    ns.add_dummy("d0")
    ns.add_vlan("v0.5", "v0", 5, protocol="802.1ad", mtu=1400)
    ns.add_wireguard("wg0", mtu=1380)
    assert seen == [("dummy", "d0", {"mtu": None}),
                    ("vlan", "v0.5", {"lower": "v0", "vid": 5, "protocol": "802.1ad", "mtu": 1400}),
                    ("wireguard", "wg0", {"mtu": 1380})]


def test_vlan_data_checks_its_values_itself() -> None:
    # The Python API reaches the encoder without the CLI's checks: it refuses the same values.
    with pytest.raises(UsageError, match="invalid VLAN id 4095"):
        linkkinds.vlan_data(4095)
    with pytest.raises(UsageError, match="invalid vlan protocol 'qinq'"):
        linkkinds.vlan_data(5, "qinq")
    assert linkkinds.vlan_protocol("802.1AD") == 0x88A8 and linkkinds.vlan_protocol("802.1q") == 0x8100


def test_a_kernel_without_extended_acks_is_judged_by_the_loaded_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both recorded kernels say "Unknown device type"; one that sends a bare EOPNOTSUPP lacks the kind only
    # if its module is not loaded (had it been there, the kernel would have loaded it on demand).
    import errno

    from nslab.errors import KernelError

    bare = KernelError("cannot create vlan 'x9' in namespace 'A': Operation not supported", errno.EOPNOTSUPP)
    loaded: set[str] = set()
    monkeypatch.setattr(linkkinds.os.path, "exists", lambda p: p.removeprefix("/sys/module/") in loaded)
    assert linkkinds.lacks_kind(linkkinds.KINDS["vlan"], bare)
    loaded.add("8021q")
    assert not linkkinds.lacks_kind(linkkinds.KINDS["vlan"], bare)
    other = KernelError("cannot create vlan 'x9': Operation not supported: VLANs not supported on device",
                        errno.EOPNOTSUPP)
    loaded.clear()
    assert not linkkinds.lacks_kind(linkkinds.KINDS["vlan"], other)  # the kernel's own reason: not the module
    assert not linkkinds.lacks_kind(linkkinds.KINDS["vlan"], KernelError("File exists", errno.EEXIST))
