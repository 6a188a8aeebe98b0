"""`lab up`'s node table against the kernel (`ip -j addr` in every namespace it names), the result objects of the
write verbs (`--json` on up, down, link, node, partition, heal, impair); `impair --from A --to B` and what
`impair --help` says this kernel can do. The write verbs run through the real CLI in a child process.
Labs are named by conftest.lab_name() and always taken down, also when a test fails."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT_REASON, ipj, is_root, lab_name
from system.test_lab_verbs import cli

from nslab.lab import state as st

needs_root = pytest.mark.skipif(not is_root(), reason=ROOT_REASON)




# ---- on a real lab ---------------------------------------------------------------------------------------
@pytest.fixture
def name() -> Iterator[str]:
    if not is_root():
        pytest.skip(ROOT_REASON)
    lab = lab_name()
    try:
        yield lab
    finally:
        cli(["lab", "down", lab])
        assert re.fullmatch(r"t[0-9a-f]{6}", lab)
        for ns in (n for n in os.listdir("/run/netns") if n.startswith(f"{lab}-")):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        st.remove(lab)


@needs_root
def test_up_prints_the_node_table_of_what_the_kernel_has(name: str) -> None:
    res = cli(["lab", "up", "--topo", "single,2", "--name", name])
    assert res.returncode == 0, res.stderr
    summary, *table = res.stdout.splitlines()
    assert re.fullmatch(rf"lab {name} up: 3 nodes, 2 links, \d+ routes in [\d.]+ s", summary)
    assert table[0].startswith("+---+") and len(table) == 3 + 1 + 3  # 3 borders, the header, s1, h1, h2
    res = cli(["--json", "lab", "up", "--topo", "single,2", "--name", name])
    data = json.loads(res.stdout)
    assert data["changed"] is False and {"lab", "nodes", "links", "routes", "seconds", "table"} <= set(data)
    # Every namespace and address the table names is there in the kernel (ip, not nslab, reads it).
    for row in data["table"]:
        addrs = {f"{a['local']}/{a['prefixlen']}" for link in ipj(row["netns"], "addr", "show")
                 for a in link.get("addr_info", []) if a.get("scope") == "global"}
        want = {a for i in row["interfaces"] for a in i["ipv4"] + i["ipv6"]}
        assert want == addrs, row
    assert "| br0, 2 ports " in "\n".join(table)
    res = cli(["lab", "up", "--topo", "single,2", "--name", name, "-q"])
    assert res.stdout.count("\n") == 1 and "nothing changed" in res.stdout


def _ping(netns: str, target: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", netns, "ping", "-c1", "-W1", target],
                          capture_output=True).returncode == 0


@needs_root
def test_write_verbs_print_result_objects(name: str) -> None:
    assert cli(["lab", "up", "--topo", "single,3", "--name", name, "-q"]).returncode == 0

    def run(*argv: str) -> dict[str, object]:
        res = cli(["--json", "lab", *argv])
        assert res.returncode == 0, (argv, res.stderr)
        out: dict[str, object] = json.loads(res.stdout)
        assert out["lab"] == name and out["ok"] is True, out
        return out

    out = run("link", name, "h1", "s1", "down")
    assert out["state"] == "down" and out["faults"] == [
        {"fault": "link-down", "a": "h1", "a_ifname": "eth0", "b": "s1", "b_ifname": "eth0"}]
    assert run("link", name, "h1", "s1", "up")["faults"] == []
    out = run("node", name, "h3", "stop")
    assert out["frozen"] == 0 and out["faults"][0]["fault"] == "node-stopped"  # type: ignore[index]
    out = run("link", name, "h3", "s1", "up")  # the node stays stopped: its end stays down, and it says so
    assert out["stopped"] == ["h3"] and out["faults"][0]["fault"] == "node-stopped", out  # type: ignore[index]
    assert run("node", name, "h3", "start")["faults"] == []
    out = run("partition", name, "h1", "h2,h3")
    assert out["groups"] == [["h1"], ["h2", "h3"]] and len(out["faults"]) == 3  # type: ignore[arg-type]
    out = run("heal", name)
    assert out["faults"] == [] and out["healed"] == ["h1", "h2", "h3"], out  # what it removed, not "none"
    out = run("partition", name, "--from", "h1", "--to", "h2")
    assert out["from"] == ["h1"] and out["to"] == ["h2"]
    out = run("heal", name)
    assert out["faults"] == [] and out["healed"] == ["h2"], out
    assert run("heal", name)["healed"] == []
    # impair --from A --to B: one direction, as partition --from: h1's packets to s1 are all dropped.
    h1, h2 = "10.0.0.1", "10.0.0.2"
    assert _ping(f"{name}-h1", h2)
    out = run("impair", name, "--from", "h1", "--to", "s1", "--loss", "100%")
    assert out["directions"] == [{"from": "h1", "to": "s1"}] and out["set"] == {"loss": "100%"}
    assert out["faults"] == [{"fault": "impair", "from": "h1", "from_ifname": "eth0", "to": "s1",
                              "to_ifname": "eth0", "loss": 100.0}]
    assert not _ping(f"{name}-h1", h2) and not _ping(f"{name}-h2", h1)  # a round trip needs both ways
    out = run("impair", name, "--from", "h1", "--to", "s1", "--clear")
    assert out["cleared"] is True and out["faults"] == []
    assert _ping(f"{name}-h1", h2)
    out = run("impair", name, "h2", "s1", "--rate", "10mbit")  # A B: both directions
    assert out["directions"] == [{"from": "h2", "to": "s1"}, {"from": "s1", "to": "h2"}]
    for argv, message in ((["--from", "h1", "--loss", "1%"], "go together"),
                          (["h1", "s1", "--from", "h1", "--to", "s1", "--loss", "1%"], "one form"),
                          (["--loss", "1%"], "name the link's two nodes")):
        res = cli(["lab", "impair", name, *argv])
        assert res.returncode == 2 and message in res.stderr and "hint:" in res.stderr, (argv, res.stderr)
    out = run("down", name)
    assert out == {"lab": name, "verb": "down", "ok": True, "was": "down", "deleted": 4, "left_alone": 0}
    assert cli(["--json", "lab", "down", name]).stdout.strip() == json.dumps(
        {"lab": name, "verb": "down", "ok": True, "was": "not up", "deleted": 0, "left_alone": 0})


@needs_root
def test_impair_help_says_what_this_kernel_cannot_do(netns_factory: object, tmp_path: Path) -> None:
    from nslab.cli.lab_faults import kernel_note, probe_qdiscs
    from nslab.kernel import tc

    cache = tmp_path / "features.json"
    found = probe_qdiscs(str(cache))
    assert isinstance(found, dict) and json.loads(cache.read_text())["qdiscs"] == found
    # The oracle: the same question asked in a namespace of the test's own.
    ns = netns_factory()  # type: ignore[operator]
    assert found["netem"] == tc.have_qdisc(ns.name, "netem")
    assert found["tbf"] == tc.have_qdisc(ns.name, "tbf", "rate", "1mbit", "burst", "32kbit", "latency", "50ms")
    assert probe_qdiscs(str(cache)) == found  # cached: read back
    res = cli(["lab", "impair", "--help"])
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert kernel_note(probe_qdiscs()) in text
    if not found["netem"]:
        assert "This kernel cannot do --delay, --jitter, --reorder, --corrupt: it has no netem qdisc" in text
    assert not [n for n in os.listdir("/run/netns") if n.startswith("nslab-probe-")]
