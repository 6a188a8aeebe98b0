"""A running lab whose kernel drifted from its plan (routes and addresses deleted by hand with `ip`): `lab status`
says it drifted, `lab up` repairs it and says what it repaired, and what the user added by hand (a route, an
address, a route of their own on a planned destination) is left alone (issue 9 §1)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT_REASON, ipj, is_root, lab_name, nslab_subprocess

from nslab import faults as fl
from nslab.lab.lab import Lab

from .lab_oracle import converge, plan_differences, routes_of

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]




def ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True)


def v6_of(lab: Lab, node: str, ifname: str) -> str:
    return next(a for i in lab.plan.interfaces_of(node) if i.ifname == ifname for a in i.addresses if ":" in a)


def test_up_repairs_drift_and_leaves_the_users_objects_alone(ring: Lab) -> None:
    lab, plan = ring, ring.plan
    ns = {n.name: n.netns for n in plan.nodes}
    r1_route = plan.routes_of("r1")[0]
    r3_route = plan.routes_of("r3")[0]
    # Drift: nslab's routes and an address deleted by hand.
    ip(ns["h1"], "route", "del", "default")
    ip(ns["r1"], "route", "del", r1_route.dst)
    ip(ns["r2"], "addr", "del", v6_of(lab, "r2", "eth0"), "dev", "eth0")
    # The user's own: a route and an address, and a route of theirs where the plan has one (proto boot).
    ip(ns["h2"], "route", "add", "192.0.2.0/24", "via", plan.routes_of("h2")[0].via)
    ip(ns["h3"], "addr", "add", "198.51.100.7/32", "dev", "eth0")
    ip(ns["r3"], "route", "del", r3_route.dst)
    ip(ns["r3"], "route", "add", r3_route.dst, "via", r3_route.via, "dev", r3_route.dev)
    assert plan_differences(plan) != []

    r = nslab_subprocess(["lab", "status", lab.name])
    assert r.returncode == 0, r.stderr
    assert "drifted" in r.stdout and f"h1: route default via {plan.routes_of('h1')[0].via} dev eth0 is missing" \
        in r.stdout, r.stdout
    r = nslab_subprocess(["--json", "lab", "status", lab.name])
    data = json.loads(r.stdout)
    assert data["drifted"] is True and any("r2: address" in d for d in data["drift"])

    r = nslab_subprocess(["lab", "up", "--topo", "ring,3", "--name", lab.name])
    assert r.returncode == 0, r.stderr
    out = r.stdout
    print(out)
    assert "drifted from the plan, repaired 3 differences" in out
    assert f"h1: route default via {plan.routes_of('h1')[0].via} dev eth0 restored" in out
    assert f"r1: route {r1_route.dst} via {r1_route.via} dev {r1_route.dev} restored" in out
    assert f"r2: address {v6_of(lab, 'r2', 'eth0')} on eth0 restored" in out
    assert "left alone:" in out and f"r3: route {r3_route.dst}" in out and "nslab did not make" in out

    # The kernel, read with ip: the plan again, except r3's route, which is the user's now.
    assert plan_differences(plan) == [f"r3: route ('{r3_route.dst}', '{r3_route.via}', '{r3_route.dev}') missing"]
    r3 = [x for x in routes_of(ns["r3"]) if x["dst"] == r3_route.dst]
    assert len(r3) == 1 and "protocol" not in r3[0]  # still the user's (proto boot, which ip -j leaves out)
    assert any(x["dst"] == "192.0.2.0/24" for x in routes_of(ns["h2"]))
    assert "198.51.100.7" in json.dumps(ipj(ns["h3"], "addr", "show", "dev", "eth0"))
    _, r4, r6 = converge(lab)
    assert r4.ok and r6.ok

    # Once repaired: nothing to do; the note about the user's route stays.
    r = nslab_subprocess(["--json", "lab", "up", "--topo", "ring,3", "--name", lab.name])
    data = json.loads(r.stdout)
    assert data["changed"] is False and data["repaired"] == [] and len(data["left_alone"]) == 1


def test_up_repairs_a_switch_port_and_a_fault_held_state(ring: Lab) -> None:
    """Desired state includes the active faults: a link held down by `lab link down` and brought up by hand is
    set down again; a link the plan has up and that was set down by hand comes back with its routes."""
    lab, plan = ring, ring.plan
    ea, eb = fl.find_link(plan, "r1", "r2")
    fl.link_state(lab, "r1", "r2", up=False)
    ip(lab["r1"].netns, "link", "set", ea.ifname, "up")  # undoes the fault by hand
    ip(lab["h2"].netns, "link", "set", "eth0", "down")  # the plan has it up
    res = Lab.topo("ring", 3, name=lab.name).up()
    assert res.changed and {"h2: eth0 set up", f"r1: {ea.ifname} set down"} <= set(res.repaired), res.repaired
    assert any(line.startswith("h2: route default") for line in res.repaired)
    assert plan_differences(plan, down={("r1", ea.ifname), ("r2", eb.ifname)}) == []
    fl.link_state(lab, "r1", "r2", up=True)
    assert plan_differences(plan) == []


def test_up_cannot_repair_a_deleted_namespace(ring: Lab) -> None:
    ns = ring["h3"].netns
    subprocess.run(["ip", "netns", "del", ns], check=True)
    r = nslab_subprocess(["lab", "up", "--topo", "ring,3", "--name", ring.name])
    assert r.returncode == 1 and f"namespace {ns} is gone" in r.stderr and "lab down" in r.stderr, r


def test_a_fault_change_on_a_node_that_cannot_be_its_plan_changes_nothing(ring: Lab) -> None:
    from nslab.errors import NslabError

    ea, _ = fl.find_link(ring.plan, "r1", "r2")
    ip(ring["r1"].netns, "link", "del", ea.ifname)  # one end deleted by hand: the kernel deletes both
    with pytest.raises(NslabError, match="cannot be brought back to its plan") as e:
        fl.link_state(ring, "h1", "r1", up=False)
    assert f"interface {ea.ifname} is missing" in e.value.message and e.value.exit_code == 1
    assert fl.faults(ring) == []
    assert "UP" in ipj(ring["h1"].netns, "link", "show", "eth0")[0]["flags"]  # nothing was changed


def test_up_repairs_an_mtu_and_a_routers_forwarding(tmp_path: Path) -> None:
    """Drift beyond routes and addresses: a planned MTU changed by hand, a router's forwarding turned off (the
    lab then reaches nothing across it). `lab status` says so, `lab up` repairs both, the oracle (ip -j,
    sysctl) agrees, and the full matrix comes back."""
    name = lab_name()
    f = tmp_path / "mtu.lab.yaml"
    f.write_text(f"name: {name}\nnodes: {{a: {{}}, b: {{}}, r: {{kind: router}}}}\n"
                 "links:\n  - {endpoints: [a, r], mtu: 9000}\n  - [r, b]\n")
    lab = Lab.from_file(str(f))
    lab.up()
    try:
        ns = {n.name: n.netns for n in lab.plan.nodes}
        ip(ns["a"], "link", "set", "eth0", "mtu", "1500")
        subprocess.run(["ip", "netns", "exec", ns["r"], "sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)
        assert sorted(plan_differences(lab.plan)) == ["a: eth0 mtu 1500", "r: forwarding 0 1"]
        r = nslab_subprocess(["lab", "status", name])
        assert "a: eth0 has mtu 1500, the plan 9000" in r.stdout and "r: forwarding is off" in r.stdout, r.stdout
        r = nslab_subprocess(["lab", "up", str(f)])
        assert r.returncode == 0, r.stderr
        assert "a: eth0 mtu set back to 9000 (was 1500)" in r.stdout and "r: forwarding turned back on" in r.stdout
        assert plan_differences(lab.plan) == []
        _, r4, r6 = converge(lab)
        assert r4.ok and r6.ok, (r4, r6)
    finally:
        lab.down()
