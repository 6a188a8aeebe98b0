"""The nodes' own settings on real labs (issue 12): sysctls, static routes (also with routing: none), loopback
addresses, exec and env, and their repair by `lab up` and heal.

Oracles: procps `sysctl -n` and iputils `ping` run by `ip netns exec`, `ip -j route` / `ip -j addr`, and
/proc for processes. Traffic stays inside the labs' namespaces. Every lab is taken down, also on failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT_REASON, ip, ip_netns_names, ipj, is_root, lab_name, nslab_subprocess

from nslab import faults
from nslab.checks import run_checks
from nslab.errors import FeatureMissing, NslabError, UsageError
from nslab.lab import state as st
from nslab.lab.lab import Lab
from nslab.lab.topology import load_text

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "static-routes.yaml"
NSLAB_PROTO = "94"  # rtnl.RTPROT_NSLAB as `ip -j route` prints it


@pytest.fixture
def statics() -> Iterator[Lab]:
    lab = Lab.from_file(EXAMPLE, lab_name())
    lab.up()
    try:
        yield lab
    finally:
        faults.forget(lab.name)
        lab.down()


def sysctl_n(netns: str, key: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-n", key], capture_output=True, text=True,
                         check=True).stdout
    return " ".join(out.split())


def ping(netns: str, addr: str) -> bool:
    flag = "-6" if ":" in addr else "-4"
    return subprocess.run(["ip", "netns", "exec", netns, "ping", flag, "-c1", "-W5", addr],
                          capture_output=True).returncode == 0


def kernel_routes(netns: str) -> set[tuple[str, str, str, str]]:
    """(dst, gateway, dev, protocol) of the main table, both families, from `ip -j route`."""
    out = set()
    for flag in ("-4", "-6"):
        for r in ipj(netns, flag, "route", "show", "table", "main"):
            dst = r["dst"]
            if dst != "default" and "/" not in dst:
                dst += "/128" if ":" in dst else "/32"
            out.add((dst, r.get("gateway", ""), r.get("dev", ""), str(r.get("protocol"))))
    return out


def lo_addresses(netns: str) -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}" for link in ipj(netns, "addr", "show", "dev", "lo")
            for a in link["addr_info"]}


def plan_holds(lab: Lab) -> list[str]:
    """What of the plan's sysctls, static routes and loopback addresses the kernel lacks (oracle reads)."""
    missing = []
    for n in lab.plan.nodes:
        for key, value in n.sysctls:
            if sysctl_n(n.netns, key) != " ".join(value.split()):
                missing.append(f"{n.name}: sysctl {key}")
        routes = kernel_routes(n.netns)
        for r in lab.plan.routes_of(n.name):
            if (r.dst, r.via, r.dev, NSLAB_PROTO) not in routes:
                missing.append(f"{n.name}: route {r.dst} via {r.via}")
        missing += [f"{n.name}: lo {a}" for a in n.loopback if a not in lo_addresses(n.netns)]
    return missing


def test_example_comes_up_routes_statically_and_passes_its_checks(statics: Lab) -> None:
    lab, plan = statics, statics.plan
    ns = {n.name: n.netns for n in plan.nodes}
    assert plan_holds(lab) == []
    # routing: none, so every route is the file's; the routers' sysctls (inherited from their group) are set.
    assert ("default", "10.1.1.1", "eth0", NSLAB_PROTO) in kernel_routes(ns["h1"])
    assert ("default", "fd00:1:1::1", "eth0", NSLAB_PROTO) in kernel_routes(ns["h1"])
    assert sysctl_n(ns["r1"], "net.ipv4.icmp_ratelimit") == "0"
    assert sysctl_n(ns["h2"], "net.ipv4.ping_group_range") == "0 2147483647"
    # Through the static routes, both families, and to the other router's loopback addresses.
    for src, dst in (("h1", "10.1.2.2"), ("h1", "fd00:1:2::2"), ("h2", "10.1.1.2"), ("h2", "10.10.0.1"),
                     ("h2", "fd00:10::1"), ("h1", "10.10.0.2"), ("h1", "fd00:10::2")):
        assert ping(ns[src], dst), f"{src} -> {dst}"
    assert all(r.ok for r in run_checks(lab)), [r.line() for r in run_checks(lab)]
    # env: lab exec and the Python API see it, with ${...} expanded.
    r = nslab_subprocess(["lab", "exec", lab.name, "h1", "--", "sh", "-c", "echo $LAB $PEER $PEER6"])
    assert r.returncode == 0 and r.stdout.split() == [lab.name, "10.1.2.2", "fd00:1:2::2"], r
    out = lab["h1"].run(["sh", "-c", "echo $PEER"], capture_output=True, text=True).stdout
    assert out.strip() == "10.1.2.2"
    # lab status --json shows what the file gave each node.
    r = nslab_subprocess(["lab", "status", lab.name, "--json"])
    assert r.returncode == 0, r.stderr
    nodes = {n["node"]: n for n in json.loads(r.stdout)["nodes"]}
    assert nodes["r1"]["loopback"] == ["10.10.0.1/32", "fd00:10::1/128"]
    assert nodes["r1"]["sysctls"]["net.ipv4.icmp_ratelimit"] == "0"
    assert {"to": "default", "via": "10.1.2.1", "dev": "eth0"} in nodes["h2"]["static_routes"]
    assert nodes["h1"]["env"]["PEER"] == "10.1.2.2"


def test_drift_of_sysctls_routes_and_loopback_is_repaired_by_up_and_by_heal(statics: Lab) -> None:
    lab = statics
    ns = {n.name: n.netns for n in lab.plan.nodes}

    def drift() -> None:
        subprocess.run(["ip", "netns", "exec", ns["r1"], "sysctl", "-qw", "net.ipv4.icmp_ratelimit=1000"], check=True)
        ip(ns["h1"], "route", "del", "default")
        ip(ns["r2"], "-6", "route", "del", "fd00:10::1/128")
        ip(ns["r1"], "addr", "del", "10.10.0.1/32", "dev", "lo")
        assert sorted(plan_holds(lab)) == ["h1: route default via 10.1.1.1", "r1: lo 10.10.0.1/32",
                                           "r1: sysctl net.ipv4.icmp_ratelimit",
                                           "r2: route fd00:10::1/128 via fd00:1:12::1"]
        assert not ping(ns["h2"], "10.10.0.1")

    drift()
    assert len(lab.drift().changes) == 4
    res = Lab.from_file(EXAMPLE, lab.name).up()
    assert sorted(res.repaired) == sorted([
        "h1: route default via 10.1.1.1 dev eth0 restored", "r1: address 10.10.0.1/32 on lo restored",
        "r1: sysctl net.ipv4.icmp_ratelimit set back to 0 (was 1000)",
        "r2: route fd00:10::1/128 via fd00:1:12::1 dev eth0 restored"]), res.repaired
    assert plan_holds(lab) == [] and ping(ns["h2"], "10.10.0.1") and ping(ns["h2"], "fd00:10::1")
    drift()
    lab.heal()
    assert plan_holds(lab) == [] and ping(ns["h1"], "10.1.2.2")


def test_exec_runs_in_order_with_env_after_the_network(tmp_path: Path) -> None:
    log = tmp_path / "exec.log"
    text = textwrap.dedent(f"""
        name: x
        defaults: {{env: {{LOG: "{log}"}}}}
        groups: {{pair: {{members: [h], exec: ["echo ${{node}} first >> $LOG"]}}}}
        nodes:
          h: {{count: 2, env: {{PEER: "${{addrs:pair}}"}},
               exec: ["ping -c1 -W5 ${{addr:r1}} > /dev/null && echo ${{node}} pinged >> $LOG",
                      [sh, -c, "echo ${{node}} $PEER >> $LOG"]]}}
          r1: {{kind: router}}
        links: [[r1, h]]
        """)
    lab = Lab(load_text(text, "x.yaml"))
    lab.topology.name = lab_name()
    try:
        lab.up()
        peers = f"{lab.plan.first_address('h1', 4)} {lab.plan.first_address('h2', 4)}"
        assert log.read_text().splitlines() == ["h1 first", "h1 pinged", f"h1 {peers}",
                                                "h2 first", "h2 pinged", f"h2 {peers}"]
    finally:
        lab.down()


def _leftovers(name: str) -> list[str]:
    return [n for n in ip_netns_names() if n.startswith(f"{name}-")] + (
        [f"record {name}"] if st.load(name) is not None else []) + (
        [f"lock {name}"] if os.path.exists(os.path.join(st.STATE_DIR, f"{name}.lock")) else [])


def test_a_failing_exec_fails_up_with_its_output_and_leaves_nothing(tmp_path: Path) -> None:
    pidfile, never = tmp_path / "daemon.pid", tmp_path / "never"
    text = textwrap.dedent(f"""
        name: x
        nodes:
          h1:
            exec:
              - "sleep 1000 > /dev/null 2>&1 & echo $! > {pidfile}"
              - "echo the output; echo boom >&2; exit 3"
              - "touch {never}"
          h2: {{}}
        links: [[h1, h2]]
        """)
    lab = Lab(load_text(text, "x.yaml"))
    lab.topology.name = name = lab_name()
    try:
        with pytest.raises(NslabError) as info:
            lab.up()
        msg = info.value.message
        assert "node h1: exec[1]" in msg and "exited with status 3" in msg and "the output | boom" in msg, msg
        assert not never.exists()
        assert _leftovers(name) == []
        pid = int(pidfile.read_text())
        assert not os.path.exists(f"/proc/{pid}") or "sleep" not in Path(f"/proc/{pid}/cmdline").read_text()
    finally:
        lab.down()


@pytest.mark.parametrize(("sysctls", "error", "what"), [
    ("{net.ipv4.ip_forward: abc}", UsageError, "the kernel refused sysctl net.ipv4.ip_forward='abc'"),
    ("{net.ipv4.conf.eth0.no_such_key: 1}", FeatureMissing, "does not exist in a network namespace"),
])
def test_a_sysctl_the_kernel_refuses_fails_up_and_leaves_nothing(sysctls: str, error: type, what: str) -> None:
    lab = Lab(load_text(f"name: x\nnodes: {{h1: {{sysctls: {sysctls}}}, h2: {{}}}}\nlinks: [[h1, h2]]\n", "x.yaml"))
    lab.topology.name = name = lab_name()
    try:
        with pytest.raises(error) as info:
            lab.up()
        assert what in info.value.message and info.value.message.startswith("node h1: "), info.value.message
        assert _leftovers(name) == []
    finally:
        lab.down()
