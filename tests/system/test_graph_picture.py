"""The lab picture (nslab.graph) measured from Graphviz's own layout, without root: every built-in topology at a
few sizes and a 5-node file are rendered to PNG, and the boxes `dot -Tjson` lays out for every label are checked
for overlaps (zero), as are edges drawn through a node that is not one of their ends (zero). Layers, the
interface tables, faults in colour (from a made-up live state) and the self-contained HTML page are checked on
the text. The old picture (labels on both ends and in the middle of every edge) had 226 overlaps on the same
built-in cases; `test_the_measure_sees_overlaps` keeps the measure honest."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LAB_DATA, NSLAB_MAIN, REPO, TESTS

from nslab.faults import FaultState, Impairment
from nslab.graph import EndState, Live, draw, html_page, layers, mermaid
from nslab.graph import dot as dot_text
from nslab.lab.lab import Lab
from nslab.lab.plan import Plan

from .graph_layout import Layout, edges_through_nodes, layout, overlaps

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed "
                                                                   "(apt-get install -y graphviz)")
HERE = Path(LAB_DATA)
OFFICE = HERE / "graphs" / "office.yaml"
BUILTIN = [("single", 1), ("single", 3), ("single", 8), ("linear", 2), ("linear", 5), ("tree", 1, 2), ("tree", 2, 3),
           ("tree", 3, 2), ("ring", 3), ("ring", 5), ("ring", 8), ("leafspine", 1, 1, 1), ("leafspine", 2, 3, 2),
           ("leafspine", 2, 4, 3)]
FILES = [OFFICE, *sorted((HERE / "good").glob("*.yaml"))]


def plan_of(case: tuple[object, ...] | Path) -> Plan:
    if isinstance(case, Path):
        return Lab.from_file(case).plan
    kind, *args = case
    assert isinstance(kind, str)
    return Lab.topo(kind, *(int(str(a)) for a in args), name="g").plan


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    w, h = struct.unpack("!II", data[16:24])
    return w, h


def all_up(plan: Plan) -> Live:
    return Live({(e.node, e.ifname): EndState("UP", True) for lk in plan.links for e in (lk.a, lk.b)},
                FaultState(plan.lab))


def faulty(plan: Plan) -> Live:
    """Every kind of fault at once: one link down, one direction impaired, a partition, a stopped node."""
    live = all_up(plan)
    first, second = plan.links[0], plan.links[-1]
    live.ends[(first.a.node, first.a.ifname)] = EndState("DOWN", False)
    live.ends[(first.b.node, first.b.ifname)] = EndState("LOWERLAYERDOWN", False)
    assert live.faults is not None
    live.faults.links_down.append((first.a.node, first.a.ifname, first.b.node, first.b.ifname))
    live.faults.impair[(second.a.node, second.a.ifname, second.b.node, second.b.ifname)] = \
        Impairment(loss=5.0, rate=20_000_000)
    hosts = [n.name for n in plan.nodes if n.kind == "host"]
    live.faults.grudge[hosts[0]] = hosts[1:3] or [plan.nodes[0].name]
    live.faults.stopped[hosts[-1]] = []
    return live


def check_picture(plan: Plan, live: Live | None, tmp: Path) -> None:
    text = dot_text(plan, live)
    png = draw(plan, "png", live)
    assert isinstance(png, bytes)
    w, h = png_size(png)
    (tmp / f"{plan.lab}.png").write_bytes(png)
    lay = layout(text)
    assert len(lay.nodes) == len(plan.nodes)
    # 96 dpi, and dot's pad of 4 points on each side
    assert abs(w - (lay.width + 8) * 96 / 72) < 3 and abs(h - (lay.height + 8) * 96 / 72) < 3, "the PNG is that layout"
    assert overlaps(lay) == []
    assert edges_through_nodes(lay) == []


@needs_dot
@pytest.mark.parametrize("case", BUILTIN + FILES, ids=lambda c: c.stem if isinstance(c, Path) else
                         ",".join(map(str, c)))
def test_zero_label_overlaps(case: tuple[object, ...] | Path, tmp_path: Path) -> None:
    plan = plan_of(case)
    check_picture(plan, None, tmp_path)
    check_picture(plan, faulty(plan), tmp_path)  # the fault rows and the caption fit too


@needs_dot
def test_the_measure_sees_overlaps() -> None:
    """The old picture's shape (both ends and the state on every edge) overlaps: the measure is not blind."""
    plan = plan_of(("leafspine", 2, 3, 2))
    lines = ["graph x {", "  graph [rankdir=LR];", "  edge [fontsize=9];"]
    for lk in plan.links:
        lines.append(f'  "{lk.a.node}" -- "{lk.b.node}" [taillabel="{lk.a.node}:{lk.a.ifname}\\n'
                     f'{lk.a.addresses[0] if lk.a.addresses else ""}", headlabel="{lk.b.node}:{lk.b.ifname}", '
                     f'label="up"];')
    lay = layout("\n".join([*lines, "}"]))
    assert len(overlaps(lay)) > 20
    boxes = {"a": (0.0, 0.0, 10.0, 10.0), "b": (20.0, 0.0, 30.0, 10.0), "c": (40.0, 0.0, 50.0, 10.0)}
    straight = Layout([], boxes, [("a", "c", [(10.0, 5.0), (25.0, 5.0), (40.0, 5.0)])], 50, 10)
    assert edges_through_nodes(straight) == [("a", "c", "b")]
    around = Layout([], boxes, [("a", "c", [(10.0, 5.0), (25.0, 20.0), (40.0, 5.0)])], 50, 10)
    assert edges_through_nodes(around) == []


def test_layers() -> None:
    ls = layers(plan_of(("leafspine", 2, 3, 2)))
    assert {k: v for k, v in ls.items() if k.startswith(("spine", "leaf"))} == \
        {"spine1": 3, "spine2": 3, "leaf1": 2, "leaf2": 2, "leaf3": 2}
    assert {ls[f"lan{k}"] for k in (7, 8, 9)} == {1} and {ls[f"h{k}"] for k in range(1, 7)} == {0}
    ring = layers(plan_of(("ring", 5)))
    assert {ring[f"r{k}"] for k in range(1, 6)} == {1} and {ring[f"h{k}"] for k in range(1, 6)} == {0}
    tree = layers(plan_of(("tree", 2, 3)))
    assert tree["s1"] == 2 and {tree[f"s{k}"] for k in (2, 3, 4)} == {1}
    office = layers(plan_of(OFFICE))
    assert office == {"desk1": 0, "desk2": 0, "srv": 0, "sw": 1, "gw": 2}  # the router over its LAN's switch


def test_interfaces_and_addresses_are_in_the_nodes_not_on_the_edges() -> None:
    plan = plan_of(("leafspine", 2, 3, 2))
    text = dot_text(plan)
    nodes = {m.group(1): m.group(2) for m in re.finditer(r'^  "([^"]+)" \[label=<(.*)>, tooltip', text, re.M)}
    assert set(nodes) == {n.name for n in plan.nodes}
    for n in plan.nodes:
        for i in plan.interfaces_of(n.name):
            assert f"<B>{i.ifname}</B>" in nodes[n.name]
            for a in i.addresses:
                assert a in nodes[n.name]
    edges = [ln for ln in text.splitlines() if " -- " in ln]
    assert len(edges) == len(plan.links)
    assert not any("label=" in e for e in edges), "no edge labels"
    # Edges run from interface cell to interface cell: the upper end downwards, the lower one upwards.
    assert all(re.search(r'"[^"]+":p\d+:s -- "[^"]+":p\d+:n ', e) for e in edges)


def test_faults_in_colour() -> None:
    plan = plan_of(("single", 3))
    live = faulty(plan)
    text = dot_text(plan, live)
    first, second = plan.links[0], plan.links[-1]
    edges = {frozenset(re.findall(r'"([^"]+)":p\d+', ln)): ln for ln in text.splitlines() if " -- " in ln}
    down = edges[frozenset({first.a.node, first.b.node})]
    assert 'color="#d93025"' in down and "style=dashed" in down  # red, dashed
    imp = edges[frozenset({second.a.node, second.b.node})]
    assert "out: loss 5%, rate 20mbit" in text
    hosts = [n.name for n in plan.nodes if n.kind == "host"]
    stopped = hosts[-1]
    assert "style=dotted" in imp or 'color="#e8710a"' in imp  # grey when it ends at the stopped node, else orange
    assert f"drops from {', '.join(hosts[1:3])}" in text and "stopped" in text
    assert re.search(rf'"{hosts[0]}" \[label=<<TABLE BORDER="2"[^>]*COLOR="#d93025"', text)  # red border
    assert re.search(rf'"{stopped}" \[label=<<TABLE [^>]*BGCOLOR="#e0e0e0"', text)  # grey
    assert "LOWERLAYERDOWN" in text and "DOWN" in text
    caption = re.search(r'label="(lab [^"]*)"', text)
    assert caption is not None and "4 faults" in caption.group(1) and "\\l" in caption.group(1)
    # Without faults a running lab says so; the plan alone says it is the plan.
    assert 'label="lab g: no faults"' in dot_text(plan, all_up(plan)) and 'label="lab g (plan)"' in dot_text(plan)
    m = mermaid(plan, live)
    assert m.startswith("graph TB") and "-.-" in m and "linkStyle" in m and "drops from" in m


@needs_dot
def test_html_is_one_self_contained_page(tmp_path: Path) -> None:
    plan = plan_of(OFFICE)
    page = draw(plan, "html")
    assert isinstance(page, str) and page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 1 and "<?xml" not in page and "<!DOCTYPE svg" not in page
    # Nothing to fetch: no external script, style, image or font; the only URLs are XML namespace names.
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page, re.I)
    assert not re.search(r"@import|url\(", page)
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg",
                                                              "http://www.w3.org/1999/xlink"}
    for n in plan.nodes:
        assert f"<title>{n.name}</title>" in page or f">{n.name}<" in page
    assert "wheel" in page and "pointermove" in page  # zoom and pan
    node = shutil.which("node")
    if node is not None:
        script = page[page.index("<script>") + 8:page.index("</script>")]
        (tmp_path / "page.js").write_text(script)
        res = subprocess.run([node, "--check", str(tmp_path / "page.js")], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    with pytest.raises(Exception, match="no SVG"):
        html_page("not svg", "x")


def nobody(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """`nslab ARGV` as user nobody when we are root (proving it needs no root), else as ourselves."""
    pre = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 and \
        shutil.which("setpriv") else []
    return subprocess.run([*pre, sys.executable, "-c", NSLAB_MAIN, REPO, TESTS, *argv], capture_output=True,
                          timeout=60, cwd=REPO)


@needs_dot
def test_cli_draws_a_file_or_a_builtin_without_root(tmp_path: Path) -> None:
    res = nobody(["lab", "graph", str(OFFICE), "-f", "svg"])
    assert res.returncode == 0, res.stderr
    svg = res.stdout.decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and ">gw<" in svg and "lab office (plan)" in svg
    res = nobody(["lab", "graph", "--topo", "ring,3", "-f", "png"])
    assert res.returncode == 0, res.stderr
    assert png_size(res.stdout)[0] > 100
    res = nobody(["lab", "graph", "--topo", "ring,3", "-f", "dot"])
    assert res.returncode == 0 and res.stdout.decode() == dot_text(Lab.from_topo_arg("ring,3").plan)
    res = nobody(["--json", "lab", "graph", "--topo", "ring,3", "-f", "png"])
    assert res.returncode == 2 and b"binary" in res.stderr and b"-o" in res.stderr
    for argv, message in ((["lab", "graph", "no/such.yaml"], b"neither a lab name nor an existing file"),
                          (["lab", "graph", "tnosuch"], b"no lab named 'tnosuch'"),
                          (["lab", "graph", str(OFFICE), "--topo", "ring,3"], b"one of them"),
                          (["lab", "graph"], b"one of them")):
        res = nobody(argv)
        assert res.returncode == 2 and message in res.stderr and b"hint:" in res.stderr, (argv, res.stderr)


@needs_dot
@pytest.mark.parametrize("case", [("single", 12), ("single", 30), ("tree", 1, 16), ("leafspine", 2, 3, 4)],
                         ids=lambda c: ",".join(map(str, c)))
def test_each_leaf_hangs_straight_under_its_port(case: tuple[object, ...], tmp_path: Path) -> None:
    """A switch with many hosts drew its narrow row of ports over a wide row of hosts: the edges fanned out
    and crossed, so nobody could tell which port leads to which host (single,30, seen by a user). Each host
    now sits under its own port: every edge to a host runs (nearly) straight down, and no two cross."""
    plan = plan_of(case)
    lay = layout(dot_text(plan))
    kinds = {n.name: n.kind for n in plan.nodes}
    spans = []
    for tail, head, pts in lay.edges:
        if "host" not in (kinds[tail], kinds[head]):
            continue
        xs = [x for x, _ in pts]
        assert max(xs) - min(xs) < 4, (tail, head, max(xs) - min(xs))  # points: straight down
        spans.append(min(xs))
    assert len(spans) == sum(1 for k in kinds.values() if k == "host")
    assert len({round(x) for x in spans}) == len(spans)  # vertical at distinct places: none crosses another
    check_picture(plan, None, tmp_path)  # and still no overlaps, no edge through a node
