"""`Topology`: the spec of a lab, built in Python or read from a file, each addition checked as it is made
(by the rules in `checks`); `validate` adds what only planning finds (addressing)."""

from __future__ import annotations

from .addressing import assign
from .checks import Checker
from .model import Check, Node, Pools, TopologyData


class Topology(TopologyData):
    # Builder API: the Python spelling of the file, checked by the same rules (validate / make_plan).
    @classmethod
    def new(cls, name: str, *, routing: str = "auto", pools: Pools | None = None) -> Topology:
        topo = cls(name=name, routing=routing, pools=pools or Pools())
        Checker(topo).lab()
        return topo

    def add_node(self, name: str, kind: str = "host") -> Node:
        if name in self.nodes:
            self.fail(f"nodes.{name}", f"duplicate node {name!r}", "give each node a unique name")
        node = Node(name, kind)
        self.nodes[name] = node
        Checker(self).node(name, node)
        return node

    def add_check(self, kind: str, src: str, dst: str, port: int | None = None,
                  retries: int | None = None) -> Check:
        check = Check(kind, src, dst, port, retries)
        self.checks.append(check)
        Checker(self).check(len(self.checks) - 1, check)
        return check

    def validate(self) -> Topology:
        """Check everything, including what only planning finds (L2 loops, address clashes, pool room)."""
        self.check()
        assign(self)
        return self

    def check(self) -> None:
        """The per-field rules (cheap); `validate` adds the whole-topology ones."""
        Checker(self).all()
