"""Measuring a Graphviz picture from Graphviz's own layout (`dot -Tjson`): the boxes of every label (node
labels, edge labels, head/tail labels, external labels, the graph's label) and the spline of every edge,
in points. Used by the graph tests; pure Python on dot's output, no nslab code."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass
class Layout:
    labels: list[tuple[str, Box]]  # (what, box): "node NAME", "edge A--B label", ...
    nodes: dict[str, Box]
    edges: list[tuple[str, str, list[tuple[float, float]]]]  # tail, head, points along the spline
    width: float
    height: float


def dot_json(dot_text: str) -> dict[str, Any]:
    exe = shutil.which("dot")
    assert exe is not None, "graphviz is not installed"
    res = subprocess.run([exe, "-Tjson"], input=dot_text, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def _text_box(ops: list[dict[str, Any]]) -> Box | None:
    """The union of the text boxes a label draws (`T` ops; the font size comes from the `F` before)."""
    size = 14.0
    box: Box | None = None
    for op in ops:
        if op.get("op") == "F":
            size = float(op["size"])
        elif op.get("op") == "T" and op.get("text", "").strip():
            x, y = (float(v) for v in op["pt"])
            w = float(op["width"])
            x0 = {"l": x, "r": x - w}.get(op.get("align", "c"), x - w / 2)
            b = (x0, y - 0.25 * size, x0 + w, y + 0.75 * size)
            box = b if box is None else (min(box[0], b[0]), min(box[1], b[1]), max(box[2], b[2]), max(box[3], b[3]))
    return box


def _bezier(points: list[tuple[float, float]], steps: int = 12) -> list[tuple[float, float]]:
    out = [points[0]]
    for i in range(0, len(points) - 3, 3):
        p0, p1, p2, p3 = points[i:i + 4]
        for k in range(1, steps + 1):
            t = k / steps
            a, b, c, d = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3
            out.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0], a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))
    return out


def layout(dot_text: str) -> Layout:
    data = dot_json(dot_text)
    names: dict[int, str] = {}
    nodes: dict[str, Box] = {}
    labels: list[tuple[str, Box]] = []
    for obj in data.get("objects", []):
        if "pos" not in obj:  # a subgraph
            continue
        x, y = (float(v) for v in obj["pos"].split(","))
        w, h = float(obj["width"]) * 72, float(obj["height"]) * 72
        box = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        names[obj["_gvid"]] = obj["name"]
        nodes[obj["name"]] = box
        labels.append((f"node {obj['name']}", box))
    edges = []
    for e in data.get("edges", []):
        tail, head = names[e["tail"]], names[e["head"]]
        for key, what in (("_ldraw_", "label"), ("_hldraw_", "headlabel"), ("_tldraw_", "taillabel"),
                          ("_xldraw_", "xlabel")):
            box = _text_box(e.get(key, []))
            if box is not None:
                labels.append((f"edge {tail}--{head} {what}", box))
        pts: list[tuple[float, float]] = []
        for part in e.get("pos", "").split(";"):
            ctrl = [tuple(float(v) for v in tok.split(",")) for tok in part.split() if not tok.startswith(("e,", "s,"))]
            if len(ctrl) >= 4:
                pts += _bezier([(p[0], p[1]) for p in ctrl])
        edges.append((tail, head, pts))
    box = _text_box(data.get("_ldraw_", []))
    if box is not None:
        labels.append(("graph label", box))
    x0, y0, x1, y1 = (float(v) for v in data["bb"].split(","))
    return Layout(labels, nodes, edges, x1 - x0, y1 - y0)


def _intersect(a: Box, b: Box, slack: float = 0.5) -> bool:
    return a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack


def overlaps(lay: Layout) -> list[tuple[str, str]]:
    """Pairs of labels whose boxes intersect."""
    out = []
    for i, (wa, a) in enumerate(lay.labels):
        for wb, b in lay.labels[i + 1:]:
            if _intersect(a, b):
                out.append((wa, wb))
    return out


def edges_through_nodes(lay: Layout, margin: float = 2.0) -> list[tuple[str, str, str]]:
    """(tail, head, node): an edge whose spline passes inside a node that is not one of its ends."""
    out = []
    for tail, head, pts in lay.edges:
        for name, (x0, y0, x1, y1) in lay.nodes.items():
            if name in (tail, head):
                continue
            if any(x0 + margin < x < x1 - margin and y0 + margin < y < y1 - margin for x, y in pts):
                out.append((tail, head, name))
    return out
