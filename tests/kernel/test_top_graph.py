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

from nslab.graph import graph
from nslab.top import rates, sample

from .labkit import LabFactory
from .test_reach import cli_runner, ip_down

pytestmark = pytest.mark.kernel
if not is_root():
    pytestmark = [pytest.mark.kernel, pytest.mark.skip(reason=ROOT_REASON)]

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return cli_runner(capsys)


def test_top_counters_move_with_traffic(labs: LabFactory) -> None:
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


def test_top_json_once_shape(labs: LabFactory, cli: Cli) -> None:
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


def test_top_ctrl_c_exits_0_and_leaves_nothing(labs: LabFactory) -> None:
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


def test_graph_of_a_running_lab_shows_the_kernel_and_the_faults(labs: LabFactory, cli: Cli, tmp_path: object) -> None:
    from nslab import faults

    lab = labs.topo("ring", 3)
    nodes = [n.name for n in lab.plan.nodes]
    m = graph(lab, "mermaid")
    d = graph(lab, "dot")
    for text in (m, d):
        assert all(n in text for n in nodes)
        assert all(i.ifname in text and all(a in text for a in i.addresses) for n in nodes
                   for i in lab.plan.interfaces_of(n))
    assert f'label="lab {lab.name}: no faults"' in d and "style=dashed" not in d and "-.-" not in m
    assert "((" in m and '(["' in m  # routers are circles, hosts rounded
    ip_down(lab, "h1", "eth0")  # behind nslab's back: the picture reads the kernel, not a record
    m = graph(lab, "mermaid")
    d = graph(lab, "dot")
    down = [ln for ln in d.splitlines() if "style=dashed" in ln]
    assert len(down) == 1 and '"r1":' in down[0] and '"h1":' in down[0] and "#d93025" in down[0]
    assert "1 fault\\llink h1:eth0 - r1:eth0 not up (h1:eth0 DOWN, r1:eth0 " in d  # the caption
    assert m.count("-.-") == 1 and "linkStyle" in m and m.count(" DOWN") == 2  # both ends say so
    rc, out, _ = cli("lab", "graph", lab.name, "--format", "dot")
    assert rc == 0 and out == d
    rc, out, _ = cli("lab", "graph", lab.name, "--format", "dot", "--plan")
    assert rc == 0 and "(plan)" in out and "style=dashed" not in out
    # The faults nslab made: an impaired direction (orange, its values in the sender's row), a partition.
    faults.impair(lab, "h2", "r2", "h2->r2", loss="5%")
    faults.partition(lab, [["h2"], ["h3"]])
    d = graph(lab, "dot")
    assert "out: loss 5%" in d and "#e8710a" in d and "drops from h3" in d and "drops from h2" in d
    faults.clear_all(lab)
    subprocess.run(["ip", "-n", lab["h1"].netns, "link", "set", "eth0", "up"], check=True)
    import time

    deadline = time.monotonic() + 5
    while "style=dashed" in (d := graph(lab, "dot")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f'label="lab {lab.name}: no faults"' in d
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
