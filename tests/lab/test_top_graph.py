"""`nslab lab top` and `nslab lab graph` on real labs: counters move with traffic between lab nodes,
`--json --once` shape, Ctrl-C exits 0 with nothing left running; graphs name every node and link and
mark a downed link; SVG is well-formed XML (when Graphviz is installed)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
from conftest import REPO, ROOT_REASON, TESTS, is_root
from test_reach import Labs, cli_runner, ip_down, labs  # noqa: F401  (labs: the fixture)

from nslab.graph import graph
from nslab.top import rates, sample

pytestmark = pytest.mark.kernel
if not is_root():
    pytestmark = [pytest.mark.kernel, pytest.mark.skip(reason=ROOT_REASON)]

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return cli_runner(capsys)


def test_top_counters_move_with_traffic(labs: Labs) -> None:  # noqa: F811
    lab = labs.topo("single", 3)
    before = sample(lab)
    assert set(before["nodes"]) == {"s1", "h1", "h2", "h3"}
    assert "lo" not in before["nodes"]["h1"]["interfaces"]
    lab["h1"].run(["ping", "-c", "20", "-i", "0.01", "-q", "h2"], capture_output=True, check=True)
    after = sample(lab)
    r = rates(before, after, 0.5)
    h1 = {i["ifname"]: i for n in r["nodes"] if n["node"] == "h1" for i in n["interfaces"]}["eth0"]
    tx = after["nodes"]["h1"]["interfaces"]["eth0"]["stats64"]["tx"]["packets"] - \
        before["nodes"]["h1"]["interfaces"]["eth0"]["stats64"]["tx"]["packets"]
    assert tx >= 20 and h1["rates"]["tx"]["packets"] == pytest.approx(tx / 0.5)
    assert h1["rates"]["rx"]["bytes"] > 0 and h1["operstate"] == "UP"
    rx_h3 = after["nodes"]["h3"]["interfaces"]["eth0"]["stats64"]["rx"]["packets"] - \
        before["nodes"]["h3"]["interfaces"]["eth0"]["stats64"]["rx"]["packets"]
    assert rx_h3 < 20  # the bridge forwarded the unicast pings to h2 only


def test_top_json_once_shape(labs: Labs, cli: Cli) -> None:  # noqa: F811
    lab = labs.topo("single", 2)
    rc, out, _ = cli("--json", "lab", "top", lab.name, "--once", "--interval", "0.1")
    assert rc == 0
    data = json.loads(out)
    assert data["lab"] == lab.name and 0.09 < data["interval"] < 1
    nodes = {n["node"]: n for n in data["nodes"]}
    assert set(nodes) == {"s1", "h1", "h2"} and nodes["s1"]["kind"] == "switch"
    eth0 = nodes["h1"]["interfaces"][0]
    assert set(eth0) == {"ifname", "operstate", "stats64", "rates"}
    for d in ("rx", "tx"):
        assert set(eth0["stats64"][d]) == set(eth0["rates"][d]) == {"bytes", "packets", "errors", "dropped"}
    rc, out, _ = cli("lab", "top", lab.name, "--once", "--interval", "0.1")
    assert rc == 0 and out.startswith("NODE") and "h1" in out and "eth0" in out
    rc, _, err = cli("lab", "top", "tnosuchlab", "--once")
    assert rc == 2 and "tnosuchlab" in err


def test_top_ctrl_c_exits_0_and_leaves_nothing(labs: Labs) -> None:  # noqa: F811
    lab = labs.topo("single", 2)
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import conftest, argparse\n"
        "from nslab.cli import lab_top\nfrom nslab.cli.common import object_parser\n"
        "from nslab.cli.main import _Parser, add_globals\n"
        "p = _Parser(prog='nslab'); add_globals(p, top=True)\n"
        "lab_top.register(object_parser(p.add_subparsers(dest='object'), 'lab', 'labs'))\n"
        "a = p.parse_args(sys.argv[3:]); print('started', flush=True); sys.exit(a.handler(a))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, REPO, TESTS, "lab", "top", lab.name, "--interval", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "\x1b[H\x1b[2J" in out and "eth0" in out and "Traceback" not in err
    # Nothing of ours runs in the lab's namespaces afterwards.
    from nslab.kernel import netns

    assert all(netns.pids(node.netns) == [] for node in lab.nodes)


def _check_names(text: str, lab_links: list[tuple[str, str, str, str]], nodes: list[str]) -> None:
    for n in nodes:
        assert n in text
    for a, ai, b, bi in lab_links:
        assert f"{a}:{ai}" in text and f"{b}:{bi}" in text


def test_graph_formats_and_down_link(labs: Labs, cli: Cli, tmp_path: object) -> None:  # noqa: F811
    lab = labs.topo("ring", 3)
    links = [(lk.a.node, lk.a.ifname, lk.b.node, lk.b.ifname) for lk in lab.plan.links]
    nodes = [n.name for n in lab.plan.nodes]
    m = graph(lab, "mermaid")
    d = graph(lab, "dot")
    for text in (m, d):
        _check_names(text, links, nodes)
        assert "DOWN" not in text
    assert m.startswith("graph LR") and m.count("---|") == len(links)
    assert "((" in m and '(["' in m  # routers are circles, hosts rounded
    assert lab.plan.primary_ipv4("h1") in m and lab.plan.primary_ipv4("h1") in d
    ip_down(lab, "h1", "eth0")
    m = graph(lab, "mermaid")
    d = graph(lab, "dot")
    assert m.count("-.-|") == 1 and "linkStyle" in m and "h1:eth0 DOWN" in m
    down = [ln for ln in d.splitlines() if "style=dashed" in ln]
    assert len(down) == 1 and '"h1" -- "r1"' in down[0] and "DOWN" in down[0]
    rc, out, _ = cli("lab", "graph", lab.name, "--format", "dot")
    assert rc == 0 and out == d
    rc, _, err = cli("lab", "graph", "tnosuchlab")
    assert rc == 2 and "tnosuchlab" in err
    if shutil.which("dot") is None:
        pytest.skip("graphviz not installed: apt-get install -y graphviz")
    out_file = os.path.join(str(tmp_path), "lab.svg")
    rc, _, _ = cli("lab", "graph", lab.name, "--format", "svg", "-o", out_file)
    assert rc == 0
    root = ET.parse(out_file).getroot()
    assert root.tag.endswith("svg")
    with open(out_file) as f:
        svg_text = f.read()
    for n in nodes:
        assert f">{n}<" in svg_text
