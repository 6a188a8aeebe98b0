"""Real labs in the kernel: reachability, isolation, growth, idempotence, rollback, CLI (Mininet's tests, §6).

Every lab here is named `t` + 6 random hex digits, is taken down by the `labs` fixture even when the test
fails, and a module check asserts that none of their namespaces or state files survive. Traffic only flows
between lab namespaces (one lab node pings another), never from the root namespace.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import NETNS_DIR, ROOT_REASON, ipj, is_root, nslab_subprocess

from nslab.errors import NslabError, UsageError
from nslab.lab import state as st
from nslab.lab.lab import Lab
from nslab.lab.plan import Plan

from .labkit import LabFactory, entries, ip_netns_list, state_files

pytestmark = pytest.mark.kernel
if not is_root():
    print(f"test_lab_kernel: skipped: {ROOT_REASON}", file=sys.stderr)
    pytestmark = [pytest.mark.kernel, pytest.mark.skip(reason=ROOT_REASON)]


# ---- plan-side expectations -------------------------------------------------------------------------
def hosts(plan: Plan) -> list[str]:
    return [n.name for n in plan.nodes if n.kind == "host"]


def _owner(plan: Plan) -> dict[ipaddress.IPv4Address, str]:
    out = {}
    for n in plan.nodes:
        for cidr in plan.addresses_of(n.name):
            iface = ipaddress.ip_interface(cidr)
            if iface.version == 4:
                out[iface.ip] = n.name
    return out


def routers_between(plan: Plan, src: str, dst_ip: str) -> int:
    """Routers a packet from node SRC to DST_IP passes, following the plan's addresses and routes."""
    owner = _owner(plan)
    dst = ipaddress.ip_address(dst_ip)
    node, hops = src, 0
    while hops < 64:
        if owner.get(dst) == node:
            return hops
        nets = [
            ipaddress.ip_interface(c).network for c in plan.addresses_of(node) if ipaddress.ip_interface(c).version == 4
        ]
        if any(dst in n for n in nets):
            nxt = owner[dst]
        else:
            best = None
            for r in plan.routes_of(node):
                net = ipaddress.ip_network("0.0.0.0/0" if r.dst == "default" else r.dst)
                if net.version == 4 and r.via and dst in net and (best is None or net.prefixlen > best[0]):
                    best = (net.prefixlen, r.via)
            assert best is not None, f"plan: {node} has no route to {dst_ip}"
            nxt = owner[ipaddress.ip_address(best[1])]
        if nxt == owner[dst]:
            return hops
        hops += 1  # nxt is a router that forwards the packet
        node = nxt
    raise AssertionError(f"plan: routing loop from {src} to {dst_ip}")


def reply_ttl(plan: Plan, src: str, dst: str) -> int:
    """TTL of dst's echo reply as src sees it: 64 minus the routers on the way back."""
    src_ip = plan.primary_ipv4(src)
    assert src_ip
    return 64 - routers_between(plan, dst, src_ip)


# ---- kernel-side helpers -----------------------------------------------------------------------------
def ping_all(
    lab: Lab, pairs: list[tuple[str, str]] | None = None, six: bool = False
) -> dict[tuple[str, str], tuple[int, str]]:
    """Ping every pair concurrently (one Popen each); (src, dst) -> (exit status, output)."""
    hs = hosts(lab.plan)
    pairs = pairs or [(a, b) for a in hs for b in hs if a != b]
    procs = {}
    for a, b in pairs:
        if six:
            target = next(
                str(ipaddress.ip_interface(c).ip)
                for c in lab.plan.addresses_of(b)
                if ipaddress.ip_interface(c).version == 6
            )
            # -W5: through routers the first IPv6 packet waits ~1 s per routed hop for neighbour
            # discovery right after up (the kernel's, reproduced with plain `ip`); IPv4 is immediate.
            argv = ["ping", "-6", "-n", "-c1", "-W5", target]
        else:
            argv = ["ping", "-n", "-c1", "-W2", b]
        procs[(a, b)] = lab[a].popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = {}
    for key, p in procs.items():
        text, _ = p.communicate(timeout=15)
        out[key] = (p.returncode, text)
    return out


def run_in(lab: Lab, node: str, argv: list[str]) -> str:
    res = lab[node].run(argv, capture_output=True, text=True, timeout=15)
    assert res.returncode == 0, f"{node}: {argv}: {res.stderr}"
    return str(res.stdout)


def ttl_of(text: str) -> int:
    m = re.search(r"ttl=(\d+)", text)
    assert m, text
    return int(m.group(1))


# ---- reachability -----------------------------------------------------------------------------------
TOPOS = [("single", 2), ("single", 5), ("linear", 5), ("ring", 4), ("leafspine", 2, 2, 2), ("tree", 2, 2)]


@pytest.mark.parametrize("spec", TOPOS, ids=lambda s: ",".join(map(str, s)))
def test_full_reachability_and_ttl(labs: LabFactory, spec: tuple[Any, ...]) -> None:
    """Every host pings every other host; the reply TTL is 64 minus the routers the plan puts on the path."""
    lab = labs.topo(*spec)
    res = ping_all(lab)
    failed = {k: v[1] for k, v in res.items() if v[0] != 0}
    assert not failed, f"unreachable pairs: {sorted(failed)}\n{next(iter(failed.values()), '')}"
    ttls = {k: ttl_of(v[1]) for k, v in res.items()}
    want = {k: reply_ttl(lab.plan, *k) for k in res}
    assert ttls == want
    if spec[0] in ("ring", "leafspine"):
        assert min(ttls.values()) < 64, "a routed topology must put a router between some hosts"


def test_router_hop_decrements_ttl(labs: LabFactory) -> None:
    """ring,4: a router's own address answers with 64; the next router's far address with 63."""
    lab = labs.topo("ring", 4)
    r1 = lab.plan.interfaces_of("r1")
    r2_far = [
        i
        for i in lab.plan.interfaces_of("r2")
        if not any(
            ipaddress.ip_interface(a).network == ipaddress.ip_interface(b).network
            for a in i.addresses
            for e in r1
            for b in e.addresses
        )
    ]
    near = str(ipaddress.ip_interface(r1[0].addresses[0]).ip)  # r1's address on h1's link
    far = str(ipaddress.ip_interface(r2_far[0].addresses[0]).ip)  # r2, on a link r1 is not on
    assert lab.plan.routes_of("h1")[0].via == near
    assert ttl_of(run_in(lab, "h1", ["ping", "-n", "-c1", "-W2", near])) == 64
    assert ttl_of(run_in(lab, "h1", ["ping", "-n", "-c1", "-W2", far])) == 63


@pytest.mark.parametrize("spec", [("single", 2), ("ring", 4)], ids=lambda s: ",".join(map(str, s)))
def test_ipv6_reachability(labs: LabFactory, spec: tuple[Any, ...]) -> None:
    lab = labs.topo(*spec)
    res = ping_all(lab, [("h1", "h2")], six=True)
    assert res[("h1", "h2")][0] == 0, res[("h1", "h2")][1]


def test_host_sees_only_its_own_interfaces(labs: LabFactory) -> None:
    lab = labs.topo("single", 3)
    for h in ("h1", "h2", "h3"):
        names = sorted(e["ifname"] for e in json.loads(run_in(lab, h, ["ip", "-j", "link"])))
        assert names == sorted(["lo"] + [i.ifname for i in lab.plan.interfaces_of(h)]) == ["eth0", "lo"]
    s1 = {e["ifname"] for e in json.loads(run_in(lab, "s1", ["ip", "-j", "link"]))}
    assert s1 == {"lo", "br0", "eth0", "eth1", "eth2"}


# ---- a running lab: grow, idempotence, refusal -------------------------------------------------------
def test_grow_a_running_lab(labs: LabFactory) -> None:
    lab = labs.topo("single", 2)
    lab.add_node("h9")
    lab.add_link("h9", "s1")
    res = lab.up()
    assert res.changed and res.added_nodes == 1 and res.added_links == 1
    res1 = ping_all(lab, [("h9", "h1"), ("h1", "h9")])
    assert all(rc == 0 for rc, _ in res1.values()), res1
    # The same through attach: a second process' view of the lab grows it again.
    other = Lab.attach(lab.name)
    assert "h9" in [n.name for n in other.nodes]
    other.add_node("h10")
    other.add_link("h10", "s1")
    assert other.up().added_nodes == 1
    res2 = ping_all(other, [("h10", "h9"), ("h2", "h10")])
    assert all(rc == 0 for rc, _ in res2.values()), res2


def test_up_twice_changes_nothing(labs: LabFactory) -> None:
    lab = labs.topo("single", 3)
    before = ip_netns_list(lab.name)
    assert lab.up().changed is False
    again = Lab.topo("single", 3, name=lab.name)
    res = again.up()
    assert res.changed is False and res.nodes == 4
    assert ip_netns_list(lab.name) == before


def test_up_that_removes_a_node_is_refused(labs: LabFactory) -> None:
    lab = labs.topo("single", 3)
    with pytest.raises(UsageError, match="h3"):
        Lab.topo("single", 2, name=lab.name).up()
    r = nslab_subprocess(["lab", "up", "--topo", "single,2", "--name", lab.name])
    assert r.returncode == 2, r
    assert "different topology" in r.stderr
    assert len(ip_netns_list(lab.name)) == 4
    assert ping_all(lab, [("h1", "h3")])[("h1", "h3")][0] == 0


# ---- isolation ------------------------------------------------------------------------------------------
LISTENER = (
    "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(); print('ready', flush=True); "
    "s.settimeout(10); c,_=s.accept(); c.sendall(b'B'); c.close()"
)
CONNECT = (
    "import socket,sys\ntry:\n    c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
    "    print('got', c.recv(1))\nexcept ConnectionRefusedError:\n    print('refused')\n"
)


def test_two_labs_with_the_same_names_are_isolated(labs: LabFactory) -> None:
    a = labs.topo("single", 2)
    b = labs.topo("single", 2)
    assert a.plan.primary_ipv4("h2") == b.plan.primary_ipv4("h2") == "10.0.0.2"
    assert ping_all(a, [("h1", "h2")])[("h1", "h2")][0] == 0
    # A's h1 learnt A's h2's MAC for 10.0.0.2, not B's.
    mac = {
        lab.name: json.loads(run_in(lab, "h2", ["ip", "-j", "link", "show", "eth0"]))[0]["address"] for lab in (a, b)
    }
    assert mac[a.name] != mac[b.name]
    neigh = json.loads(run_in(a, "h1", ["ip", "-j", "neigh", "show", "10.0.0.2"]))
    assert [n["lladdr"] for n in neigh] == [mac[a.name]]
    # A listener in B only: A's h1 is refused (A's h2 answers), B's h1 gets B's byte.
    port = str(20000 + secrets.randbelow(20000))
    lis = b["h2"].popen([sys.executable, "-c", LISTENER, port], stdout=subprocess.PIPE, text=True)
    try:
        assert lis.stdout is not None and lis.stdout.readline().strip() == "ready"
        assert run_in(a, "h1", [sys.executable, "-c", CONNECT, "10.0.0.2", port]).strip() == "refused"
        assert run_in(b, "h1", [sys.executable, "-c", CONNECT, "10.0.0.2", port]).strip() == "got b'B'"
    finally:
        lis.kill()
        lis.wait()


def _root_links() -> set[str]:
    return {e["ifname"] for e in ipj(None, "link")}


def test_root_namespace_untouched(labs: LabFactory) -> None:
    before_links, before_routes = _root_links(), {json.dumps(r, sort_keys=True) for r in ipj(None, "route")}
    lab = labs.topo("ring", 4)
    labs.topo("leafspine", 1, 2, 2)
    during = _root_links()
    Lab.attach(lab.name).down()
    after = _root_links()
    new = {n for n in (during | after) - before_links if not n.startswith("nslab")}  # other runs' test links
    assert not new, f"a lab created root-namespace links: {sorted(new)}"
    assert {json.dumps(r, sort_keys=True) for r in ipj(None, "route")} == before_routes


def test_down_removes_every_namespace_and_the_state(labs: LabFactory) -> None:
    lab = labs.topo("tree", 2, 2)
    assert len(ip_netns_list(lab.name)) == 7
    assert os.path.exists(os.path.join(st.STATE_DIR, f"{lab.name}.json"))
    assert lab.name in Lab.running()
    pinger = lab["h1"].popen(["sleep", "30"])  # a process in the lab does not keep it alive
    r = nslab_subprocess(["lab", "down", lab.name])
    assert r.returncode == 0, r.stderr
    assert "7 namespaces deleted" in r.stdout
    pinger.wait(timeout=5)
    assert ip_netns_list(lab.name) == [] and entries(lab.name) == []
    assert state_files(lab.name) == []
    assert lab.name not in Lab.running()
    r = nslab_subprocess(["lab", "down", lab.name])  # idempotent
    assert r.returncode == 0 and "nothing to do" in r.stdout


# ---- CLI ---------------------------------------------------------------------------------------------------
def test_status_json_matches_the_kernel(labs: LabFactory, cli: Callable[..., Any]) -> None:
    lab = labs.topo("ring", 3)
    r = cli("--json", "lab", "status", lab.name)
    assert r.rc == 0
    data = r.json()
    assert data["lab"] == lab.name
    assert [n["node"] for n in data["nodes"]] == [n.name for n in lab.plan.nodes]
    for node in data["nodes"]:
        oracle = {
            e["ifname"]: sorted(f"{a['local']}/{a['prefixlen']}" for a in e["addr_info"] if a.get("scope") == "global")
            for e in ipj(node["netns"], "addr")
            if e["ifname"] != "lo"
        }
        ours = {
            lk["ifname"]: sorted(
                f"{a['local']}/{a['prefixlen']}" for a in lk["addr_info"] if a.get("scope") == "global"
            )
            for lk in node["links"]
        }
        assert ours == oracle
        plan = {i.ifname: sorted(i.addresses) for i in lab.plan.interfaces_of(node["node"])}
        assert ours == plan


def test_lab_exec_substitutes_node_names(labs: LabFactory) -> None:
    lab = labs.topo("single", 3)
    r = nslab_subprocess(["lab", "exec", lab.name, "h1", "--", "echo", "h2", "x:h3:y", "http://h3/p", "h7"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["10.0.0.2", "x:10.0.0.3:y", "http://10.0.0.3/p", "h7"]
    r = nslab_subprocess(["lab", "exec", lab.name, "h1", "--", "ping", "-n", "-c1", "-W2", "h3"])
    assert r.returncode == 0 and "10.0.0.3" in r.stdout, r
    r = nslab_subprocess(["lab", "exec", "--no-resolve", lab.name, "h1", "--", "echo", "h2"])
    assert r.returncode == 0 and r.stdout.strip() == "h2", r


def test_lab_exec_option_after_node(labs: LabFactory) -> None:
    lab = labs.topo("single", 2)
    r = nslab_subprocess(["lab", "exec", lab.name, "h1", "--no-resolve", "--", "echo", "h2"])
    assert r.returncode == 0 and r.stdout.strip() == "h2", r


def test_cli_bad_input(labs: LabFactory, cli: Callable[..., Any]) -> None:
    lab = labs.topo("single", 2)
    ghost = labs.name()
    assert cli("lab", "status", ghost).rc == 2
    r = nslab_subprocess(["lab", "exec", ghost, "h1", "--", "true"])
    assert r.returncode == 2 and ghost in r.stderr, r
    r = nslab_subprocess(["lab", "exec", lab.name, "h99", "--", "true"])
    assert r.returncode == 2 and "h99" in r.stderr, r
    assert cli("lab", "up", "--topo", "single,x", "--name", ghost).rc == 2
    assert cli("lab", "up", "--topo", "nosuch,2", "--name", ghost).rc == 2
    assert entries(ghost) == []


def test_topology_file_with_explicit_address(labs: LabFactory, tmp_path: Path) -> None:
    name = labs.name()
    f = tmp_path / "lab.yaml"
    f.write_text(
        f"name: {name}\n"
        "nodes:\n  h1: {}\n  h2: {}\n  s1: {kind: switch}\n"
        "links:\n"
        "  - endpoints: [{node: h1, ifname: up0, ipv4: 192.168.77.10/24}, s1]\n"
        "  - [h2, s1]\n"
    )
    r = nslab_subprocess(["lab", "up", str(f)])
    assert r.returncode == 0, r.stderr
    got = ipj(f"{name}-h1", "addr", "show", "up0")[0]["addr_info"]
    assert "192.168.77.10/24" in [f"{a['local']}/{a['prefixlen']}" for a in got]
    lab = Lab.attach(name)
    h2 = lab.plan.primary_ipv4("h2")
    assert h2 and ipaddress.ip_address(h2) in ipaddress.ip_network("192.168.77.0/24")
    res = ping_all(lab, [("h2", "h1"), ("h1", "h2")])
    assert all(rc == 0 for rc, _ in res.values()), res


# ---- failure and rollback -------------------------------------------------------------------------------
def test_existing_namespace_refuses_up_and_creates_nothing(labs: LabFactory) -> None:
    name = labs.name()
    squatter = f"{name}-h2"
    subprocess.run(["ip", "netns", "add", squatter], check=True)
    try:
        ino = os.stat(os.path.join(NETNS_DIR, squatter)).st_ino
        r = nslab_subprocess(["lab", "up", "--topo", "single,3", "--name", name])
        assert r.returncode == 2, r
        assert squatter in r.stderr
        assert entries(name) == [squatter]
        assert os.stat(os.path.join(NETNS_DIR, squatter)).st_ino == ino
        assert state_files(name) == []
        # `lab cleanup` / `down` leave it alone too: it carries no marker.
        assert nslab_subprocess(["lab", "down", name]).returncode == 0
        assert nslab_subprocess(["lab", "cleanup", name]).returncode == 0
        assert entries(name) == [squatter]
    finally:
        subprocess.run(["ip", "netns", "del", squatter], check=True)


def test_refused_up_leaves_no_lock_file(labs: LabFactory) -> None:
    name = labs.name()
    squatter = f"{name}-h1"
    subprocess.run(["ip", "netns", "add", squatter], check=True)
    try:
        with pytest.raises(UsageError):
            Lab.topo("single", 2, name=name).up()
        assert state_files(name, lock=True) == []
    finally:
        subprocess.run(["ip", "netns", "del", squatter], check=True)


def _failing_send(monkeypatch: pytest.MonkeyPatch, fail_on: int) -> list[int]:
    from nslab.kernel import bulk

    real = bulk.send
    calls = [0]

    def send(*a: Any, **kw: Any) -> None:
        calls[0] += 1
        if calls[0] == fail_on:
            raise NslabError("injected failure")
        real(*a, **kw)

    monkeypatch.setattr(bulk, "send", send)
    return calls


@pytest.mark.parametrize("fail_on", [1, 2], ids=["links", "addresses"])
def test_mid_up_failure_rolls_back(labs: LabFactory, monkeypatch: pytest.MonkeyPatch, fail_on: int) -> None:
    _failing_send(monkeypatch, fail_on)
    lab = labs.topo("single", 5, up=False)
    with pytest.raises(NslabError, match="injected"):
        lab.up()
    assert entries(lab.name) == [] and state_files(lab.name) == []
    monkeypatch.undo()
    assert lab.up().changed  # a clean retry works
    assert ping_all(lab, [("h1", "h5")])[("h1", "h5")][0] == 0


def test_interrupt_during_up_rolls_back(labs: LabFactory) -> None:
    """A KeyboardInterrupt (from the progress callback, after the first namespaces exist) undoes all."""
    lab = labs.topo("single", 80, up=False)
    seen: list[str] = []

    def progress(phase: str, done: int, total: int) -> None:
        seen.append(phase)
        if phase == "namespaces" and done >= 64:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lab.up(progress=progress)
    assert entries(lab.name) == [] and state_files(lab.name) == []


def test_failed_grow_rolls_back_and_can_be_retried(labs: LabFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = labs.topo("single", 2)
    lab.add_node("h9")
    lab.add_link("h9", "s1")
    _failing_send(monkeypatch, 2)
    with pytest.raises(NslabError, match="injected"):
        lab.up()
    monkeypatch.undo()
    assert f"{lab.name}-h9" not in entries(lab.name)
    rec = st.load(lab.name)
    assert rec is not None and rec.status == "up" and "h9" not in rec.netns
    assert ping_all(lab, [("h1", "h2")])[("h1", "h2")][0] == 0  # the running part is intact
    res = lab.up()  # the retry must create h9
    assert res.added_nodes == 1, res
    assert ping_all(lab, [("h9", "h1")])[("h9", "h1")][0] == 0


def test_down_removes_a_stale_netns_file_of_a_crashed_up(labs: LabFactory) -> None:
    """State exactly as kill -9 leaves it inside netns.create: the file exists, nothing is mounted on it."""
    name = labs.name()
    dead = _dead_pid()
    rec = st.LabState(lab=name, status="creating", pid=dead, netns={"h1": f"{name}-h1"}, created=time.time())
    st.save(rec)
    os.makedirs(NETNS_DIR, exist_ok=True)
    open(os.path.join(NETNS_DIR, f"{name}-h1"), "w").close()
    try:
        r = nslab_subprocess(["lab", "down", name])
        assert r.returncode == 0, r.stderr
        assert entries(name) == [], "a stale /run/netns file of the lab survived 'lab down'"
    finally:
        stale = os.path.join(NETNS_DIR, f"{name}-h1")
        if os.path.lexists(stale) and not os.path.ismount(stale):
            os.unlink(stale)


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid
