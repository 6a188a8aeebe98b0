"""Plan once (issue 10), on a real lab: `up` plans nothing again and applies the declared impairments inside its
one all-or-nothing; an interrupt right after them leaves nothing.

Counted, not timed: the Checker's whole-topology pass and the address assignment are wrapped with counters."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import ROOT_REASON, is_root, lab_name
from unit.test_plan_once import GOOD, counts  # noqa: F401  (counts: the fixture)

from nslab import faults
from nslab.lab import state as st
from nslab.lab.lab import Lab


@pytest.mark.kernel
@pytest.mark.skipif(not is_root(), reason=ROOT_REASON)
def test_from_file_and_up_plan_once_and_apply_the_declared_impairments(counts: dict[str, int]) -> None:  # noqa: F811
    name = lab_name()
    lab = Lab.from_file(GOOD / "impaired.yaml", name=name)
    try:
        lab.up()
        assert counts == {"check": 1, "assign": 1}
        listed = sorted((f["from"], f["to"]) for f in faults.faults(name))
        assert listed == [("h1", "r1"), ("h2", "r1"), ("r1", "h1"), ("r1", "h2")]
        # The rate is in the kernel (tc's own reading), on r1's end towards h2.
        r1_h2 = next(i for i in lab.plan.impairments if (i.src, i.dst) == ("r1", "h2"))
        out = subprocess.run(["ip", "netns", "exec", f"{name}-r1", "tc", "qdisc", "show", "dev",
                              r1_h2.src_ifname], capture_output=True, text=True, check=True).stdout
        assert "tbf" in out and "10Mbit" in out, out
        rec = st.load(name)
        assert rec is not None and rec.status == "up"
    finally:
        lab.down()
    assert faults.faults(name) == []


@pytest.mark.kernel
@pytest.mark.skipif(not is_root(), reason=ROOT_REASON)
def test_an_interrupt_after_the_declared_impairments_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Applied within `up`: a Ctrl-C once they reached the kernel rolls the whole lab back, record included."""
    real = faults._commit

    def commit_then_interrupt(*args: object, **kwargs: object) -> None:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(faults, "_commit", commit_then_interrupt)
    name = lab_name()
    lab = Lab.from_file(GOOD / "impaired.yaml", name=name)
    try:
        with pytest.raises(KeyboardInterrupt):
            lab.up()
        assert st.load(name) is None
        assert faults.faults(name) == []
        assert not [n for n in os.listdir("/run/netns") if n.startswith(f"{name}-")]
    finally:
        monkeypatch.undo()
        lab.down()
