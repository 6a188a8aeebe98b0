"""Byte-table tests of the dummy, vlan and wireguard kinds, without root and without the kernel: nslab's create
requests against the ones iproute2 sent for the same device, and the kernel's answers (its refusals included)
replayed into nslab's transport, from fixtures recorded by tests/fixtures/netlink/record.py.

Those kinds are recorded only where the kernel has them (6.1: Debian's stock kernel in the VM tier's guest;
`scripts/vm-run --share DIR -- python3 tests/fixtures/netlink/record.py --out DIR`), and the refusal of a
kernel without them only where it lacks them (6.18: this project's host). The machinery (replay socket,
request trees, fixture loader) is test_codec_bytes.py's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from nslab.errors import ExistsError, FeatureMissing, KernelError
from nslab.kernel import linkkinds
from nslab.kernel.rtnl import Request
from nslab.namespace import Namespace

from .test_codec_bytes import FIXTURES, KERNELS, Fixture, _no_kernel, _parse_error_of, load, replay_rtnl, same_request

__all__ = ["_no_kernel"]  # its autouse fixture: nothing here may open a socket

K = linkkinds.KINDS
Build = Callable[[Fixture], Request]

REQUESTS: dict[str, Build] = {
    "link_add_dummy": lambda f: K["dummy"].request("d1", {}),
    "link_add_dummy_mtu": lambda f: K["dummy"].request("d1", {"mtu": 9000}),
    "link_add_vlan": lambda f: K["vlan"].request("v0.10", {"lower": f.ix("v0"), "vid": 10}),
    "link_add_vlan_8021q": lambda f: K["vlan"].request("v0.4094", {"lower": f.ix("v0"), "vid": 4094,
                                                                    "protocol": "802.1Q"}),
    "link_add_vlan_8021ad_mtu": lambda f: K["vlan"].request("d0.0", {"lower": f.ix("d0"), "vid": 0,
                                                                      "protocol": "802.1ad", "mtu": 1400}),
    "link_add_wireguard": lambda f: K["wireguard"].request("wg1", {}),
}
# A kernel without the kind: the same request iproute2 sent, refused with EOPNOTSUPP "Unknown device type".
MISSING: dict[str, Build] = {
    "err_no_dummy": lambda f: K["dummy"].request("x9", {}),
    "err_no_vlan": lambda f: K["vlan"].request("x9", {"lower": f.ix("v0"), "vid": 5}),
    "err_no_wireguard": lambda f: K["wireguard"].request("x9", {}),
}


def recorded(name: str) -> list[str]:
    return [k for k in KERNELS if os.path.exists(os.path.join(FIXTURES, k, f"{name}.txt"))]


def cases(names: dict[str, Build] | list[str]) -> list[tuple[str, str]]:
    return [(k, n) for n in names for k in recorded(n)]


def test_every_case_is_recorded_somewhere() -> None:
    # Each on at least one kernel: a case nobody recorded would test nothing and pass.
    for name in [*REQUESTS, *MISSING, "err_vlan_on_lo", "err_vlan_id_taken", "dump_links_kinds"]:
        assert recorded(name), f"{name}: record it (see this file's docstring)"


@pytest.mark.parametrize(("kernel", "case"), cases(REQUESTS))
def test_request_is_what_iproute2_sends(kernel: str, case: str) -> None:
    fx = load(kernel, case)
    rtnl, wire = replay_rtnl(fx.answers)
    rtnl.do(REQUESTS[case](fx))  # the recorded answer is the kernel's ack
    assert len(wire.sent) == 1
    same_request(wire.sent[0], fx.sent[0])
    assert fx.exit == 0 and _parse_error_of(fx.answers[-1]) == (0, None)


@pytest.mark.parametrize(("kernel", "case"), cases(MISSING))
def test_a_kernel_without_the_kind_is_feature_missing_naming_the_module(kernel: str, case: str) -> None:
    fx = load(kernel, case)
    k = K[case.removeprefix("err_no_")]
    rtnl, wire = replay_rtnl(fx.answers[-1:])
    with pytest.raises(KernelError) as info:
        rtnl.do(MISSING[case](fx))
    same_request(wire.sent[0], fx.sent[0])
    assert fx.stderr == ["Error: Unknown device type."]  # what ip said from the same answer
    assert linkkinds.lacks_kind(k, info.value)
    err = linkkinds.missing_kind(k, info.value)
    assert isinstance(err, FeatureMissing) and err.exit_code == 1
    assert f"modprobe {k.module}" in str(err) and f"no {k.name} links" in err.message


@pytest.mark.parametrize("kind", ["dummy", "wireguard"])
def test_namespace_add_link_raises_feature_missing(kind: str) -> None:
    # Through Namespace.add_link, as `nslab link add` goes (its exit status is FeatureMissing's 1).
    (kernel,) = recorded(f"err_no_{kind}")[:1]
    fx = load(kernel, f"err_no_{kind}")
    ns = Namespace("A")
    ns._rtnl, _wire = replay_rtnl(fx.answers[-1:])
    with pytest.raises(FeatureMissing, match=f"module {linkkinds.KINDS[kind].module}"):
        ns.add_link(kind, "x9")


@pytest.mark.parametrize("kernel", recorded("err_vlan_on_lo"))
def test_a_device_refusing_a_vlan_is_not_a_missing_module(kernel: str) -> None:
    # The same EOPNOTSUPP with the kind present: the kernel's reason, not "load 8021q".
    fx = load(kernel, "err_vlan_on_lo")
    rtnl, wire = replay_rtnl(fx.answers[-1:])
    with pytest.raises(KernelError) as info:
        rtnl.do(K["vlan"].request("lo.5", {"lower": fx.ix("lo"), "vid": 5}))
    same_request(wire.sent[0], fx.sent[0])
    reason = fx.stderr[-1].removeprefix("Error: ").rstrip(".")
    assert reason in info.value.message and not linkkinds.lacks_kind(K["vlan"], info.value)


@pytest.mark.parametrize("kernel", recorded("err_vlan_id_taken"))
def test_a_taken_vlan_id_names_the_id_not_the_name(kernel: str) -> None:
    fx = load(kernel, "err_vlan_id_taken")
    ns = Namespace("A")
    ns._rtnl, wire = replay_rtnl(fx.answers[-1:])
    monkey_index = {"v0": fx.ix("v0")}
    ns.rtnl.index = monkey_index.__getitem__  # type: ignore[method-assign]  # no lookup request to replay
    with pytest.raises(ExistsError) as info:
        ns.add_link("vlan", "v0.x", lower="v0", vid=10)
    same_request(wire.sent[0], fx.sent[0])
    assert "VLAN device already exists" in info.value.message
    assert info.value.hint is not None and "v0 already has a vlan with id 10" in info.value.hint


@pytest.mark.parametrize("kernel", recorded("dump_links_kinds"))
def test_link_dump_of_the_kinds_decodes_as_ip_shows_it(kernel: str) -> None:
    fx = load(kernel, "dump_links_kinds")
    rtnl, _wire = replay_rtnl(fx.answers)
    mine = {lk.ifname: lk for lk in rtnl.links()}
    shown: dict[str, Any] = {e["ifname"]: e for e in fx.json()}
    assert list(mine) == list(shown)
    names = {lk.ifindex: lk.ifname for lk in mine.values()}
    for name in ("d0", "v0.10", "d0.7", "wg0"):
        lk, ip = mine[name], shown[name]
        assert (lk.kind, lk.mtu, lk.link_type, lk.address, list(lk.flags), lk.operstate) == (
            ip["linkinfo"]["info_kind"], ip["mtu"], ip["link_type"], ip.get("address"),
            [f for f in ip["flags"] if f != "M-DOWN"], ip["operstate"]), name
        assert (names.get(lk.link_index) if lk.link_index else None) == ip.get("link"), name
    for name, want in (("v0.10", {"protocol": "802.1Q", "id": 10}), ("d0.7", {"protocol": "802.1ad", "id": 7})):
        theirs = shown[name]["linkinfo"]["info_data"]
        assert dict(mine[name].info_data) == {k: theirs[k] for k in want} == want, name
        assert mine[name].to_json()["info_data"] == want
    assert all(not mine[n].info_data for n in ("d0", "wg0", "v0"))
    assert mine["wg0"].link_type == "none" and mine["wg0"].address is None  # a layer-3 device: no MAC
