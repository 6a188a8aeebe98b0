"""`lab up`'s node table, checked against the plan (pure); against the kernel in tests/kernel/test_lab_verbs.py."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import LAB_DATA

from nslab.cli.lab_table import format_table, node_rows
from nslab.lab.lab import Lab

HERE = Path(LAB_DATA)
# ---- the node table (pure) -------------------------------------------------------------------------------
def test_node_table_from_the_plan() -> None:
    plan = Lab.from_file(HERE / "good" / "campus.yaml").plan
    rows = node_rows(plan)
    assert [r["node"] for r in rows] == [n.name for n in plan.nodes]
    text = format_table(rows)
    lines = text.splitlines()
    assert len({len(ln) for ln in lines}) == 1, "every line as wide as the borders"
    assert lines[0] == lines[2] == lines[-1] and set(lines[0]) == {"+", "-"}
    assert [c.strip() for c in lines[1].strip("|").split("|")] == ["#", "Node", "Kind", "Netns", "Interface", "IPv4",
                                                                   "IPv6"]
    for n in plan.nodes:
        assert re.search(rf"^\| \d+ +\| {n.name} +\| {n.kind} +\| {n.netns} +\|", text, re.M), n.name
        for i in plan.interfaces_of(n.name):
            for a in i.addresses:
                assert f" {a} " in text
    assert "| br0, 3 ports " in text  # s1: h1, h2, r1
    many = format_table(rows, max_rows=2)
    assert many.endswith(f"... and {len(rows) - 2} more nodes (all of them: --json, or 'nslab lab status')")


