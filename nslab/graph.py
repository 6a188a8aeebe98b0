"""Pictures of a lab: Graphviz dot (and SVG, PNG, a self-contained HTML page rendered from it), or Mermaid.

The picture is drawn from the plan, so a topology file or a built-in topology can be drawn without root and
without a running lab; a running lab adds what the kernel and the fault record say now (`read_live`).

Layout (what a person wants to read):
- Layers, top to bottom, by distance from the hosts: spines, leaves, LAN switches, hosts in a leaf-spine;
  routers over hosts in a ring; the root switch over the leaf switches over the hosts in a tree.
- Every node is a small table: its name and kind, then one row per interface with its name and addresses
  (a switch lists its ports in a grid). Each link is drawn from interface row to interface row, so edges need
  no labels at all: nothing to sit on a node or on another label.
- Faults in colour, when the lab runs: a link whose ends are not both UP with carrier is red and dashed (the
  interface row says its state); an impaired direction is orange, its values in the sending interface's row;
  a node that drops traffic from others (a partition) has a red border and says whom it drops; a stopped node
  is grey. The graph's caption lists the active faults.

A link is "up" when both ends have flags UP and LOWER_UP: operstate itself lags behind by up to a second.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import NslabError, PermissionDenied, UsageError

if TYPE_CHECKING:
    from .faults import FaultState
    from .lab.plan import IfacePlan, LinkPlan, Plan
    from .lab.view import LabView

FORMATS = ("mermaid", "dot", "svg", "png", "html")
BINARY_FORMATS = ("png",)

_FILL = {"host": "#e8f0fe", "router": "#fde7c8", "switch": "#e6f4ea"}
_BORDER = {"host": "#4a6fa5", "router": "#b06d1a", "switch": "#3b7d4f"}
_STOPPED_FILL = "#e0e0e0"
_RED = "#d93025"
_ORANGE = "#e8710a"
_GREY = "#5f6368"
_EDGE = "#80868b"
SWITCH_PORTS_PER_ROW = 4
_MERMAID_SHAPE = {"host": ('(["', '"])'), "router": ('(("', '"))'), "switch": ('["', '"]')}


# ---- what the kernel and the fault record say now -------------------------------------------------------
@dataclass(frozen=True)
class EndState:
    operstate: str  # as the kernel says, "UP" once flags say UP+LOWER_UP, or "MISSING"
    carrier: bool  # flags UP and LOWER_UP


@dataclass
class Live:
    """A running lab's state, as the picture uses it."""

    ends: dict[tuple[str, str], EndState] = field(default_factory=dict)  # (node, ifname)
    faults: FaultState | None = None

    def end(self, node: str, ifname: str) -> EndState:
        return self.ends.get((node, ifname), EndState("MISSING", False))


@dataclass(frozen=True)
class EdgeState:
    a: IfacePlan
    b: IfacePlan
    a_state: str  # operstate, or MISSING
    b_state: str
    up: bool  # both ends administratively up with carrier (operstate lags: linkwatch sets it later)

    @property
    def state(self) -> str:
        if self.up:
            return "up"
        return f"DOWN ({self.a.node}:{self.a.ifname} {self.a_state}, {self.b.node}:{self.b.ifname} {self.b_state})"


def read_live(lab: LabView) -> Live:
    """The operstate of every interface of every node (one rtnetlink dump per node) and the fault record."""
    from . import faults
    from .kernel.rtnl import Rtnl

    live = Live()
    for node in lab.plan.nodes:
        try:
            with Rtnl.open(node.netns) as rtnl:
                for lk in rtnl.links():
                    carrier = "UP" in lk.flags and "LOWER_UP" in lk.flags
                    # A stale UNKNOWN/DOWN while the flags already say up would only confuse.
                    live.ends[(node.name, lk.ifname)] = EndState("UP" if carrier else lk.operstate, carrier)
        except PermissionDenied:
            raise  # without the privilege every end would look MISSING: a false picture
        except NslabError:
            continue  # namespace gone: its ends show as MISSING
    live.faults = faults.load_state(lab.name)
    return live


def edge_states(plan: Plan, live: Live) -> list[EdgeState]:
    out = []
    for pl in plan.links:
        a, b = live.end(pl.a.node, pl.a.ifname), live.end(pl.b.node, pl.b.ifname)
        out.append(EdgeState(pl.a, pl.b, a.operstate, b.operstate, a.carrier and b.carrier))
    return out


def link_states(lab: LabView) -> list[EdgeState]:
    """Every planned link with the operstate of its two ends, as the kernel has them now."""
    return edge_states(lab.plan, read_live(lab))


# ---- layers (pure) -----------------------------------------------------------------------------------
def layers(plan: Plan) -> dict[str, int]:
    """Each node's layer: 0 for hosts, then the hop distance from the nearest host (a leaf-spine gives hosts 0,
    LAN switches 1, leaves 2, spines 3), a router always above the switches it is linked to. Without hosts the
    distance is from the nodes with one link; nodes that no such node reaches go one layer above the rest."""
    adj: dict[str, set[str]] = {n.name: set() for n in plan.nodes}
    for lk in plan.links:
        if lk.a.node != lk.b.node:
            adj[lk.a.node].add(lk.b.node)
            adj[lk.b.node].add(lk.a.node)
    start = [n.name for n in plan.nodes if n.kind == "host"] or [n for n, near in adj.items() if len(near) == 1]
    dist = {n: 0 for n in start}
    todo = deque(start)
    while todo:
        n = todo.popleft()
        for m in sorted(adj[n]):
            if m not in dist:
                dist[m] = dist[n] + 1
                todo.append(m)
    top = max(dist.values(), default=-1) + 1
    layer = {n.name: dist.get(n.name, top) for n in plan.nodes}
    # Routers over the switches they are linked to (a router and its LAN's switch are as far from the hosts):
    # the constraints only point from routers to switches, so this ends, after at most one pass per node.
    kind = {n.name: n.kind for n in plan.nodes}
    pairs = [(r, s) for lk in plan.links for r, s in ((lk.a.node, lk.b.node), (lk.b.node, lk.a.node))
             if kind[r] == "router" and kind[s] == "switch"]
    for _ in range(len(plan.nodes)):
        moved = False
        for r, s in pairs:
            if layer[r] <= layer[s]:
                layer[r] = layer[s] + 1
                moved = True
        if not moved:
            break
    return layer


# ---- dot ---------------------------------------------------------------------------------------------
def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _impairs(live: Live | None) -> dict[tuple[str, str], str]:
    """(sending node, ifname) -> "loss 5%, rate 10mbit" for each impaired direction."""
    out: dict[tuple[str, str], str] = {}
    if live is None or live.faults is None:
        return out
    from .faults import format_rate

    for (src, ifs, _dst, _ifd), imp in live.faults.impair.items():
        parts = ([f"loss {imp.loss:g}%"] if imp.loss else []) + ([f"dup {imp.duplicate:g}%"] if imp.duplicate
                                                                 else []) + \
                ([f"rate {format_rate(imp.rate)}"] if imp.rate else [])
        if parts:
            out[(src, ifs)] = ", ".join(parts)
    return out


def _shorten(names: Sequence[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" +{len(names) - limit}" if len(names) > limit else "")


@dataclass
class _Picture:
    """What one drawing needs, computed once from the plan and the live state."""

    plan: Plan
    live: Live | None
    ports: dict[tuple[str, str], str] = field(default_factory=dict)  # (node, ifname) -> port id
    impaired: dict[tuple[str, str], str] = field(default_factory=dict)
    down: set[tuple[str, str]] = field(default_factory=set)  # ends of links that are not up
    peer: dict[tuple[str, str], str] = field(default_factory=dict)  # (node, ifname) -> the node at the other end
    order: dict[str, int] = field(default_factory=dict)  # node -> its position among the nodes of its layer

    def __post_init__(self) -> None:
        seen: dict[int, int] = {}
        for name, rank in layers(self.plan).items():
            self.order[name] = seen[rank] = seen.get(rank, -1) + 1
        for lk in self.plan.links:
            self.peer[(lk.a.node, lk.a.ifname)] = lk.b.node
            self.peer[(lk.b.node, lk.b.ifname)] = lk.a.node
        for n in self.plan.nodes:
            for k, i in enumerate(self.plan.interfaces_of(n.name)):
                self.ports[(n.name, i.ifname)] = f"p{k}"
        self.impaired = _impairs(self.live)
        if self.live is not None:
            for e in edge_states(self.plan, self.live):
                if not e.up:
                    self.down |= {(e.a.node, e.a.ifname), (e.b.node, e.b.ifname)}

    def stopped(self, node: str) -> bool:
        return self.live is not None and self.live.faults is not None and node in self.live.faults.stopped

    def grudge(self, node: str) -> list[str]:
        if self.live is None or self.live.faults is None:
            return []
        return sorted(self.live.faults.grudge.get(node, []))


def _iface_cell(pic: _Picture, i: IfacePlan, switch: bool, width: int = 0) -> str:
    port = pic.ports[(i.node, i.ifname)]
    lines = [f"<B>{_e(i.ifname)}</B>"]
    if not switch:
        lines += [_e(a) for a in i.addresses]
    if pic.live is not None and (i.node, i.ifname) in pic.down:
        state = pic.live.end(i.node, i.ifname).operstate
        lines.append(f'<FONT COLOR="{_RED}"><B>{_e(state if state != "UP" else "peer down")}</B></FONT>')
    if (i.node, i.ifname) in pic.impaired:
        lines.append(f'<FONT COLOR="{_ORANGE}"><B>out: {_e(pic.impaired[(i.node, i.ifname)])}</B></FONT>')
    body = '<BR ALIGN="LEFT"/>'.join(lines) + '<BR ALIGN="LEFT"/>'
    wide = f' WIDTH="{width}" ALIGN="CENTER"' if width else ' ALIGN="LEFT"'  # centred over its edge when wide
    return f'<TD PORT="{port}"{wide} BALIGN="LEFT"><FONT POINT-SIZE="9">{body}</FONT></TD>'


def _leaf_width(pic: _Picture, name: str) -> int:
    """About how wide (points) node NAME's table is, and the gap to the next: a port towards a leaf (a host
    under its switch) gets this width, so that each leaf sits under its own port and edges run straight
    down instead of fanning into a tangle (measured by eye on single,12 and single,30)."""
    node = pic.plan.node(name)
    texts = [i.ifname for i in pic.plan.interfaces_of(name)]
    texts += [a for i in pic.plan.interfaces_of(name) for a in i.addresses]
    width = max([len(t) * 5.4 for t in texts] + [len(f"{name} {node.kind}") * 6.6])
    return int(width + 16 + 22)  # cell padding and the border; nodesep (0.3 in)


def _side(pic: _Picture, name: str, i: IfacePlan, layer: Mapping[str, int]) -> tuple[int, int]:
    """Where an interface cell goes in its row. A link to a node of the same layer: the outermost cell on the
    side where that node starts out (dot keeps the declared order unless crossings say otherwise), so that it
    is a short straight line; a link to a farther node of the layer (a ring's wrap-around) on the other side,
    from where it arcs over the rest."""
    peer = pic.peer[(name, i.ifname)]
    if layer[peer] != layer[name]:
        return (0, 0)
    gap = pic.order[peer] - pic.order[name]
    if abs(gap) == 1:
        return (-2 if gap < 0 else 2, 0)
    return (-1 if gap > 0 else 1, -abs(gap))


def _cells(cells: list[str]) -> str:
    """A row of interface cells as one cell of the node's table: a table of its own, so that rows of different
    lengths share the node's width; no padding, so the cells' outer sides are the node's (the edges' ends)."""
    return ('<TR><TD CELLPADDING="0"><TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="3"><TR>'
            + "".join(cells) + "</TR></TABLE></TD></TR>")


def _node_label(pic: _Picture, name: str, kind: str, layer: Mapping[str, int]) -> str:
    """The node's table: the interfaces towards its own or an upper layer on top, its name and kind, then the
    interfaces towards lower layers below; each edge then leaves its interface cell on the outer side."""
    up: list[str] = []
    down: list[str] = []
    for i in sorted(pic.plan.interfaces_of(name), key=lambda i: _side(pic, name, i, layer)):
        peer = pic.peer[(name, i.ifname)]
        below = layer[peer] < layer[name]
        leaf = below and len(pic.plan.interfaces_of(peer)) == 1
        cell = _iface_cell(pic, i, kind == "switch", _leaf_width(pic, peer) if leaf else 0)
        (down if below else up).append(cell)
    stopped = pic.stopped(name)
    grudge = pic.grudge(name)
    fill = _STOPPED_FILL if stopped else _FILL.get(kind, "#ffffff")
    border = _RED if grudge else _BORDER.get(kind, _GREY)
    head = f'<B>{_e(name)}</B> <FONT POINT-SIZE="9" COLOR="{_GREY}">{_e(kind)}{" · stopped" if stopped else ""}</FONT>'
    if grudge:
        head += (f'<BR/><FONT POINT-SIZE="9" COLOR="{_RED}"><B>drops from {_e(_shorten(grudge))}</B></FONT>')
    rows = ([_cells(up)] if up else []) + [f'<TR><TD ALIGN="CENTER">{head}</TD></TR>'] + \
        ([_cells(down)] if down else [])
    width = "2" if grudge else "1"
    return (f'<<TABLE BORDER="{width}" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2" STYLE="ROUNDED" '
            f'BGCOLOR="{fill}" COLOR="{border}">' + "".join(rows) + "</TABLE>>")


def _caption(plan: Plan, live: Live | None, limit: int = 8) -> str:
    """The graph's caption (dot escapes: \\l ends a left-aligned line): the lab, and its faults when it runs."""
    title = f"lab {plan.lab}"
    if live is None:
        return _dot_text(title + " (plan)")
    from .faults import describe, describe_line

    lines = [describe_line(f) for f in describe(live.faults)] if live.faults is not None else []
    recorded = {frozenset({(a, ia), (b, ib)}) for a, ia, b, ib in (live.faults.links_down if live.faults else [])}
    stopped = set(live.faults.stopped) if live.faults else set()
    for e in edge_states(plan, live):
        if e.up or e.a.node in stopped or e.b.node in stopped:  # a stopped node's links are down by design
            continue
        if frozenset({(e.a.node, e.a.ifname), (e.b.node, e.b.ifname)}) not in recorded:
            lines.append(f"link {e.a.node}:{e.a.ifname} - {e.b.node}:{e.b.ifname} not up "
                         f"({e.a.node}:{e.a.ifname} {e.a_state}, {e.b.node}:{e.b.ifname} {e.b_state})")
    if not lines:
        return _dot_text(title + ": no faults")
    shown = lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])
    head = f"{title}: {len(lines)} fault{'s' if len(lines) != 1 else ''}"
    return "".join(_dot_text(s) + "\\l" for s in [head, *shown])


def _dot_text(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _edge(pic: _Picture, lk: LinkPlan, layer: Mapping[str, int]) -> str:
    a, b = lk.a, lk.b
    if layer[a.node] < layer[b.node]:  # upper layer first: the rank constraint points down
        a, b = b, a
    ka, kb = (a.node, a.ifname), (b.node, b.ifname)
    tip = f"{a.node}:{a.ifname} — {b.node}:{b.ifname}"
    attrs = []
    if pic.stopped(a.node) or pic.stopped(b.node):
        attrs += [f'color="{_GREY}"', "style=dotted", "penwidth=2"]
        tip += " (a node is stopped)"
    elif ka in pic.down or kb in pic.down:
        attrs += [f'color="{_RED}"', "style=dashed", "penwidth=2"]
        tip += " (not up)"
    elif ka in pic.impaired or kb in pic.impaired:
        attrs += [f'color="{_ORANGE}"', "penwidth=2.5"]
        tip += " (impaired: " + "; ".join(f"{n}:{i} out {pic.impaired[(n, i)]}" for n, i in (ka, kb)
                                          if (n, i) in pic.impaired) + ")"
    attrs.append(f"tooltip={_q(tip)}")
    # The upper end leaves its lower row downwards; the lower end (or both, within a layer) its top row upwards.
    # Within a layer dot routes the edge itself: a straight line between neighbours, an arc over the others.
    if layer[a.node] == layer[b.node]:
        return f"  {_q(a.node)}:{pic.ports[ka]} -- {_q(b.node)}:{pic.ports[kb]} [{', '.join(attrs)}];"
    return f"  {_q(a.node)}:{pic.ports[ka]}:s -- {_q(b.node)}:{pic.ports[kb]}:n [{', '.join(attrs)}];"


def dot(plan: Plan, live: Live | None = None) -> str:
    """The lab as a Graphviz graph (layers, interface tables, faults); `live` None draws the plan alone."""
    pic = _Picture(plan, live)
    layer = layers(plan)
    lines = [
        f"graph {_q(plan.lab)} {{",
        f'  graph [rankdir=TB, newrank=true, nodesep=0.3, ranksep=0.8, fontname="Helvetica", fontsize=11, '
        f'labelloc=b, labeljust=l, label="{_caption(plan, live)}", tooltip={_q("lab " + plan.lab)}];',
        '  node [shape=plain, fontname="Helvetica", fontsize=11];',
        f'  edge [color="{_EDGE}", penwidth=1.3];',
    ]
    for rank in sorted(set(layer.values()), reverse=True):
        members = " ".join(f"{_q(n.name)};" for n in plan.nodes if layer[n.name] == rank)
        lines.append(f"  {{ rank=same; {members} }}")
    for n in plan.nodes:
        label = _node_label(pic, n.name, n.kind, layer)
        lines.append(f"  {_q(n.name)} [label={label}, tooltip={_q(n.name + ' ' + n.kind)}];")
    lines += [_edge(pic, lk, layer) for lk in plan.links]
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- mermaid -----------------------------------------------------------------------------------------
def mermaid(plan: Plan, live: Live | None = None) -> str:
    pic = _Picture(plan, live)
    ident = {n.name: "n_" + n.name.replace("-", "_") for n in plan.nodes}
    lines = ["graph TB"]
    for n in plan.nodes:
        left, right = _MERMAID_SHAPE.get(n.kind, ('["', '"]'))
        rows = [f"<b>{n.name}</b> <i>{n.kind}</i>"]
        for i in plan.interfaces_of(n.name):
            row = " ".join([i.ifname, *([] if n.kind == "switch" else i.addresses)])
            if (n.name, i.ifname) in pic.down:
                row += " DOWN"
            if (n.name, i.ifname) in pic.impaired:
                row += f" out: {pic.impaired[(n.name, i.ifname)]}"
            rows.append(row)
        if pic.grudge(n.name):
            rows.append("drops from " + _shorten(pic.grudge(n.name)))
        lines.append(f"  {ident[n.name]}{left}{'<br/>'.join(rows)}{right}")
    layer = layers(plan)
    red, orange = [], []
    for k, lk in enumerate(plan.links):
        a, b = (lk.a, lk.b) if layer[lk.a.node] >= layer[lk.b.node] else (lk.b, lk.a)
        down = (a.node, a.ifname) in pic.down
        lines.append(f"  {ident[a.node]} {'-.-' if down else '---'} {ident[b.node]}")
        if down:
            red.append(str(k))
        elif (a.node, a.ifname) in pic.impaired or (b.node, b.ifname) in pic.impaired:
            orange.append(str(k))
    if red:
        lines.append(f"  linkStyle {','.join(red)} stroke:{_RED},stroke-width:2px,stroke-dasharray:5 5")
    if orange:
        lines.append(f"  linkStyle {','.join(orange)} stroke:{_ORANGE},stroke-width:3px")
    return "\n".join(lines) + "\n"


# ---- rendering -----------------------------------------------------------------------------------------
def render(dot_text: str, fmt: str) -> bytes:
    """`dot -Tsvg` / `-Tpng` locally."""
    exe = shutil.which("dot")
    if exe is None:
        raise NslabError(f"cannot render {fmt.upper()}: Graphviz's 'dot' program is not installed",
                         "install the Debian package graphviz: apt-get install -y graphviz "
                         "(or use --format dot / mermaid)")
    res = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=120)
    if res.returncode != 0:
        raise NslabError(f"dot -T{fmt} failed: {res.stderr.decode(errors='replace').strip()}")
    return res.stdout


def svg(dot_text: str) -> str:
    return render(dot_text, "svg").decode()


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
html, body {{ margin: 0; height: 100%; font: 13px Helvetica, Arial, sans-serif; }}
#bar {{ position: fixed; top: 0; left: 0; right: 0; padding: 6px 10px; background: #f1f3f4;
        border-bottom: 1px solid #dadce0; z-index: 1; }}
#bar button {{ margin-left: 8px; }}
#view {{ position: absolute; top: 34px; left: 0; right: 0; bottom: 0; overflow: hidden; cursor: grab; }}
#view svg {{ width: 100%; height: 100%; }}
</style></head>
<body>
<div id="bar"><b>{title}</b> &middot; drag to pan, wheel to zoom, hover for details
<button id="fit" type="button">fit</button></div>
<div id="view">
{svg}
</div>
<script>
(function () {{
  "use strict";
  var view = document.getElementById("view");
  var svg = view.querySelector("svg");
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  var b = svg.viewBox.baseVal;
  var full = [b.x, b.y, b.width, b.height];
  var box = full.slice();
  function apply() {{ svg.setAttribute("viewBox", box.join(" ")); }}
  function point(e) {{
    var p = svg.createSVGPoint();
    p.x = e.clientX; p.y = e.clientY;
    return p.matrixTransform(svg.getScreenCTM().inverse());
  }}
  view.addEventListener("wheel", function (e) {{
    e.preventDefault();
    var k = e.deltaY < 0 ? 0.8 : 1.25, p = point(e);
    box = [p.x - (p.x - box[0]) * k, p.y - (p.y - box[1]) * k, box[2] * k, box[3] * k];
    apply();
  }}, {{ passive: false }});
  var drag = null;
  view.addEventListener("pointerdown", function (e) {{
    drag = point(e); view.setPointerCapture(e.pointerId); view.style.cursor = "grabbing";
  }});
  view.addEventListener("pointermove", function (e) {{
    if (!drag) return;
    var p = point(e);
    box[0] -= p.x - drag.x; box[1] -= p.y - drag.y;
    apply();
  }});
  view.addEventListener("pointerup", function () {{ drag = null; view.style.cursor = "grab"; }});
  document.getElementById("fit").addEventListener("click", function () {{ box = full.slice(); apply(); }});
}})();
</script>
</body></html>
"""


def html_page(svg_text: str, title: str) -> str:
    """One self-contained HTML file: the SVG inline, pan and zoom in a few lines of script, nothing fetched."""
    start = svg_text.find("<svg")
    if start < 0:
        raise NslabError("dot produced no SVG to put in the HTML page")
    return _HTML.format(title=_e(title), svg=svg_text[start:].strip())


def draw(plan: Plan, fmt: str = "svg", live: Live | None = None) -> str | bytes:
    """The picture of PLAN in FMT (`FORMATS`); bytes for PNG, text otherwise."""
    if fmt not in FORMATS:
        raise UsageError(f"graph: unknown format {fmt!r}", "use " + ", ".join(FORMATS))
    if fmt == "mermaid":
        return mermaid(plan, live)
    text = dot(plan, live)
    if fmt == "dot":
        return text
    if fmt == "png":
        return render(text, "png")
    page = svg(text)
    return page if fmt == "svg" else html_page(page, f"nslab lab {plan.lab}")


def graph(lab: LabView, fmt: str = "mermaid", live: bool = True) -> str:
    """The picture of a lab as text (mermaid, dot, svg or html); `live` reads the running lab's kernel state."""
    if fmt in BINARY_FORMATS:
        raise UsageError(f"graph: {fmt} is binary", "call draw() for bytes, or write it to a file with -o")
    out = draw(lab.plan, fmt, read_live(lab) if live else None)
    assert isinstance(out, str)
    return out
