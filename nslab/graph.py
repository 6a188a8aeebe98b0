"""Pictures of a lab: Mermaid, Graphviz dot, or SVG rendered locally by Graphviz's `dot`.

Nodes are drawn by kind (host: rounded box, router: circle, switch: box), edges carry the interface
name and addresses of each end, and the LIVE state of the link: operstate of both ends, read from the
kernel (one rtnetlink dump per node). A link is "up" when both ends are UP with carrier (flags UP and
LOWER_UP: operstate itself lags behind by up to a second after a change); otherwise it is drawn
dashed and red with its ends' states, e.g. "DOWN (h1:eth0 DOWN, s1:h1 LOWERLAYERDOWN)".
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import NslabError, UsageError
from .kernel.rtnl import Rtnl

if TYPE_CHECKING:
    from .lab.lab import Lab
    from .lab.plan import IfacePlan

FORMATS = ("mermaid", "dot", "svg")
_MERMAID_SHAPE = {"host": ('(["', '"])'), "router": ('(("', '"))'), "switch": ('["', '"]')}
_DOT_SHAPE = {"host": 'shape=box, style="rounded,filled", fillcolor="#e8f0fe"',
              "router": 'shape=circle, style=filled, fillcolor="#fde7c8"',
              "switch": 'shape=box, style=filled, fillcolor="#e6f4ea"'}


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


def link_states(lab: Lab) -> list[EdgeState]:
    """Every planned link with the operstate of its two ends, as the kernel has them now."""
    states: dict[tuple[str, str], tuple[str, bool]] = {}
    for node in lab.plan.nodes:
        try:
            with Rtnl.open(node.netns) as rtnl:
                for lk in rtnl.links():
                    carrier = "UP" in lk.flags and "LOWER_UP" in lk.flags
                    # A stale UNKNOWN/DOWN while the flags already say up would only confuse.
                    states[(node.name, lk.ifname)] = ("UP" if carrier else lk.operstate, carrier)
        except NslabError:
            continue  # namespace gone: its ends show as MISSING
    out = []
    for pl in lab.plan.links:
        a = states.get((pl.a.node, pl.a.ifname), ("MISSING", False))
        b = states.get((pl.b.node, pl.b.ifname), ("MISSING", False))
        out.append(EdgeState(pl.a, pl.b, a[0], b[0], a[1] and b[1]))
    return out


def _end(i: IfacePlan, sep: str) -> str:
    return sep.join([f"{i.node}:{i.ifname}", *i.addresses])


def mermaid(lab: Lab, edges: list[EdgeState]) -> str:
    ident = {n.name: "n_" + n.name.replace("-", "_") for n in lab.plan.nodes}
    lines = ["graph LR"]
    for n in lab.plan.nodes:
        left, right = _MERMAID_SHAPE.get(n.kind, ('["', '"]'))
        lines.append(f"  {ident[n.name]}{left}{n.name}<br/><i>{n.kind}</i>{right}")
    down = []
    for k, e in enumerate(edges):
        label = f"{_end(e.a, '<br/>')}<br/>—<br/>{_end(e.b, '<br/>')}" + ("" if e.up else f"<br/><b>{e.state}</b>")
        arrow = "---" if e.up else "-.-"
        lines.append(f'  {ident[e.a.node]} {arrow}|"{label}"| {ident[e.b.node]}')
        if not e.up:
            down.append(str(k))
    if down:
        lines.append(f"  linkStyle {','.join(down)} stroke:#d93025,stroke-width:2px,stroke-dasharray:5 5")
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(lab: Lab, edges: list[EdgeState]) -> str:
    lines = [f"graph {_q(lab.name)} {{", "  graph [rankdir=LR, fontname=Helvetica];",
             "  node [fontname=Helvetica]; edge [fontname=Helvetica, fontsize=9];"]
    for n in lab.plan.nodes:
        style = _DOT_SHAPE.get(n.kind, "shape=box")
        lines.append(f"  {_q(n.name)} [label={_q(n.name + chr(10) + n.kind)}, {style}];")
    for e in edges:
        attrs = [f"taillabel={_q(_end(e.a, chr(10)))}", f"headlabel={_q(_end(e.b, chr(10)))}"]
        if e.up:
            attrs.append('label="up", color="#188038"')
        else:
            attrs.append(f'label={_q(e.state)}, color="#d93025", fontcolor="#d93025", style=dashed')
        lines.append(f"  {_q(e.a.node)} -- {_q(e.b.node)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def svg(dot_text: str) -> str:
    exe = shutil.which("dot")
    if exe is None:
        raise NslabError("cannot render SVG: Graphviz's 'dot' program is not installed",
                         "install the Debian package graphviz: apt-get install -y graphviz "
                         "(or use --format dot / mermaid)")
    res = subprocess.run([exe, "-Tsvg"], input=dot_text, capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise NslabError(f"dot -Tsvg failed: {res.stderr.strip()}")
    return res.stdout


def graph(lab: Lab, fmt: str = "mermaid") -> str:
    if fmt not in FORMATS:
        raise UsageError(f"graph: unknown format {fmt!r}", "use mermaid, dot or svg")
    edges = link_states(lab)
    if fmt == "mermaid":
        return mermaid(lab, edges)
    text = dot(lab, edges)
    return svg(text) if fmt == "svg" else text
