"""Running the `checks:` of a topology file against the lab in the kernel (netlab's `validate`).

Each check probes from inside its source node: `reach`/`no_reach` with one ICMP echo a try (ping -W1),
`port_open` with a TCP connect (nslab.probe). Tries are a second apart; `reach` and `port_open` pass at
the first success, `no_reach` fails at the first reply.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from . import nodes, probe
from .errors import UsageError
from .lab.model import Check
from .lab.spec import Topology
from .lab.view import LabView


class CheckedLab(LabView, Protocol):
    """A lab whose topology's `checks:` run_checks runs by default (a `Lab` is one)."""

    @property
    def topology(self) -> Topology: ...


@dataclass
class CheckResult:
    check: Check
    ok: bool
    detail: str
    tries: int
    seconds: float

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark} {self.check.title()}: {self.detail} ({self.tries} tries, {self.seconds:.2f} s)"

    def to_json(self) -> dict[str, Any]:
        c = self.check
        return {"check": c.kind, "from": c.src, "to": c.dst, "port": c.port, "ok": self.ok,
                "detail": self.detail, "tries": self.tries, "seconds": round(self.seconds, 3)}


def _address(lab: LabView, node: str) -> str:
    addr = lab.plan.primary_ipv4(node)
    if addr is None:
        raise UsageError(f"node {node!r} of lab {lab.name!r} has no IPv4 address to probe",
                         "probe a host or router; switches carry no address")
    return addr


def _ping(lab: LabView, src: str, addr: str) -> bool:
    res = nodes.run(lab, src, ["ping", "-n", "-c1", "-W1", addr], False, capture_output=True, text=True)
    return res.returncode == 0


def run_check(lab: LabView, check: Check) -> CheckResult:
    t0 = time.monotonic()
    tries = check.tries
    if check.kind == "port_open":
        host = "127.0.0.1" if check.src == check.dst else _address(lab, check.dst)
        assert check.port is not None
        reason = ""
        for n in range(1, tries + 1):
            start = time.monotonic()
            res = probe.connect(host, check.port, timeout=1.0, netns=lab.plan.node(check.src).netns)
            if res.ok:
                return CheckResult(check, True, f"{host}:{check.port} open", n, time.monotonic() - t0)
            reason = res.reason
            if n < tries:
                time.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
        return CheckResult(check, False, f"{host}:{check.port} {reason}", tries, time.monotonic() - t0)
    addr = _address(lab, check.dst)
    for n in range(1, tries + 1):
        start = time.monotonic()
        answered = _ping(lab, check.src, addr)
        if answered and check.kind == "reach":
            return CheckResult(check, True, f"{addr} answered", n, time.monotonic() - t0)
        if answered:
            return CheckResult(check, False, f"{addr} answered, expected silence", n, time.monotonic() - t0)
        if n < tries:
            time.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
    if check.kind == "reach":
        return CheckResult(check, False, f"{addr} did not answer", tries, time.monotonic() - t0)
    return CheckResult(check, True, f"{addr} did not answer", tries, time.monotonic() - t0)


def run_checks(lab: CheckedLab, checks: Sequence[Check] | None = None) -> list[CheckResult]:
    return [run_check(lab, c) for c in (lab.topology.checks if checks is None else checks)]
