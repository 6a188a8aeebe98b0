"""`LabView`: what a feature needs of a lab, its name and its plan (a `Lab` is one; so is a small dataclass).

Features (faults, reach, capture, perf, graph, top, services, checks) take a LabView instead of the `Lab`
facade, so that the facade can import them and none of them imports it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .plan import Plan


class LabView(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def plan(self) -> Plan: ...
