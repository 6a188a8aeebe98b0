"""The fast paths of issue 14 against the kernel: namespace ids as ownership proof, parallel deletion.

Oracles: `ip netns add/list/del` and `ip -n NS link` (iproute2), `/run/netns` as the kernel shows it.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import ROOT_REASON, NetnsFactory, is_root, lab_name, nslab_subprocess

from nslab.kernel import bulk, netns
from nslab.kernel.netlink import NetlinkSocket
from nslab.lab import state as st
from nslab.lab.lab import Lab

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def listed() -> set[str]:
    return {line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()}


def _needs_ns_id() -> None:
    fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        supported = netns.fd_ns_id(fd) is not None
    finally:
        os.close(fd)
    if not supported:
        pytest.skip("this kernel has no NS_GET_ID (Linux 6.18): down proves ownership by marker only")


def test_ns_id_is_the_id_of_a_socket_made_inside(netns_factory: NetnsFactory) -> None:
    _needs_ns_id()
    name = netns_factory.reserve()
    ip("netns", "add", name)  # made by iproute2: nslab reads its id from outside
    inside = netns.run_in_netns(name, NetlinkSocket)
    try:
        got = netns.ns_id(name)
        assert got is not None and got == netns.socket_ns_id(inside.sock)
    finally:
        inside.close()
    # Deleted and made again under the same name (often with the same inode number): a new id.
    ip("netns", "del", name)
    ip("netns", "add", name)
    assert netns.ns_id(name) not in (None, got)


def test_ns_id_of_no_namespace_is_none(netns_factory: NetnsFactory) -> None:
    name = netns_factory.reserve()
    assert netns.ns_id(name) is None  # no file
    with open(netns.path(name), "w"):
        pass  # a stale file (a create killed half-way): no namespace on it
    try:
        assert netns.ns_id(name) is None
    finally:
        os.unlink(netns.path(name))


def test_a_lab_records_the_ids_and_down_uses_them() -> None:
    _needs_ns_id()
    lab = Lab.topo("single", 3, name=lab_name())
    lab.up()
    try:
        rec = st.load(lab.name)
        assert rec is not None and set(rec.ids) == {n.name for n in lab.plan.nodes}
        for node, ns in rec.netns.items():
            assert rec.ids[node] == netns.ns_id(ns)
        assert len(set(rec.ids.values())) == 4
        # The record on disk is JSON that any reader takes (compact, the C encoder).
        with open(os.path.join(st.STATE_DIR, f"{lab.name}.json")) as f:
            assert json.load(f)["ids"] == rec.ids
        # Remove the marker of h1 (the old proof): the id alone proves h1 is ours, so down deletes it.
        ip("-n", lab["h1"].netns, "link", "set", "lo", "alias", "not-nslab")
    finally:
        r = nslab_subprocess(["lab", "down", lab.name])
    assert r.returncode == 0, r.stderr
    assert not {n.netns for n in lab.plan.nodes} & listed()


def test_a_lab_whose_record_has_no_ids_is_taken_down_by_marker() -> None:
    lab = Lab.topo("single", 2, name=lab_name())
    lab.up()
    try:
        rec = st.load(lab.name)
        assert rec is not None
        rec.ids = {}  # a record written by an nslab before ids, or on a kernel without SO_NETNS_COOKIE
        st.save(rec)
        ns = lab["h1"].netns
        ip("netns", "del", ns)
        ip("netns", "add", ns)  # someone else's now: no marker
    finally:
        r = nslab_subprocess(["lab", "down", lab.name])
    try:
        assert r.returncode == 0, r.stderr
        assert "left 1 namespaces alone" in r.stderr
        assert ns in listed()
        assert not {n.netns for n in lab.plan.nodes if n.name != "h1"} & listed()
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_parallel_delete_removes_every_namespace_and_stale_file(netns_factory: NetnsFactory) -> None:
    names = [netns_factory.reserve() for _ in range(70)]  # enough for 4 threads (bulk._each)
    subprocess.run(["ip", "-b", "-"], input="".join(f"netns add {n}\n" for n in names[:-1]), text=True,
                   check=True, capture_output=True)
    with open(netns.path(names[-1]), "w"):
        pass  # the last one a stale file
    ip("-n", names[0], "link", "add", "s19a", "type", "veth", "peer", "name", "s19b")
    deleted = bulk.delete(names)
    assert sorted(deleted) == sorted(names[:-1])
    assert not set(names) & listed()
    assert not [n for n in names if os.path.lexists(netns.path(n))]


def test_reach_waits_its_timeout_after_slow_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sends slower than the timeout (a loaded machine flooding ARP through a big bridge) must not eat the
    time to read the replies: the kernel has them (the same pairs answer `ping`)."""
    import time

    from nslab import reach as reach_mod

    lab = Lab.topo("single", 3, name=lab_name())
    lab.up()
    try:
        real_send = reach_mod._send

        def slow_send(*args: object, **kwargs: object) -> None:
            real_send(*args, **kwargs)  # type: ignore[arg-type]
            time.sleep(0.6)  # longer than the timeout below

        monkeypatch.setattr(reach_mod, "_send", slow_send)
        r = reach_mod.reach(lab, timeout=0.4, one_way=False)
        assert r.ok, r.matrix_text()
        monkeypatch.undo()
        ping = lab["h1"].run(["ping", "-c1", "-W2", lab.plan.addresses_of("h3")[0].split("/")[0]],
                             capture_output=True)
        assert ping.returncode == 0  # the oracle: the pairs are reachable indeed
    finally:
        lab.down()
