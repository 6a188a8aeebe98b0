"""Without netem (this host's kernel): every impairment that needs it is refused with FeatureMissing (exit 1,
naming netem and the fix), from Python, the CLI and the file, with the kernel of every node exactly as it
was (`tc -j qdisc show` and `nft list ruleset` of each node compared); loss and rate keep working."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ROOT_REASON, CliResult, is_root, lab_name

from nslab import faults as fl
from nslab.errors import FeatureMissing
from nslab.lab.lab import Lab
from nslab.lab.topology import load_text

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]


def kernel_has_netem() -> bool:
    return subprocess.run(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                          capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if kernel_has_netem():
        pytest.skip("this kernel has netem: what happens without it cannot be shown here")
    lab = Lab(load_text(f"name: {lab_name()}\nnodes: {{a: {{}}, b: {{}}}}\nlinks:\n  - [a, b]\n", "t.yaml"))
    lab.up()
    try:
        yield lab
    finally:
        fl.forget(lab.name)
        lab.down()


def kernel(lab: Lab) -> dict[str, Any]:
    out = {}
    for n in ("a", "b"):
        ns = lab[n].netns
        q = subprocess.run(["tc", "-n", ns, "-j", "qdisc", "show"], capture_output=True, text=True, check=True)
        r = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True, text=True,
                           check=True)
        out[n] = (json.loads(q.stdout), r.stdout)
    return out


@pytest.mark.parametrize("kw", [{"delay": "10ms"}, {"delay": "20ms", "jitter": "5ms", "distribution": "normal"},
                                {"loss": "5%", "loss_correlation": "25%"}, {"loss_model": "gemodel 1% 10%"},
                                {"corrupt": "1%"}, {"delay": "5ms", "reorder": "10%", "gap": 3},
                                {"profile": "wan"}, {"profile": "lossy-wifi", "rate": "10mbit"}])
def test_python_refuses_with_nothing_applied(lab: Lab, kw: dict[str, Any]) -> None:
    before = kernel(lab)
    with pytest.raises(FeatureMissing) as e:
        lab.impair("a", "b", "a->b", **kw)
    assert e.value.exit_code == 1
    assert "kernel lacks sch_netem" in e.value.message and "nothing was applied" in e.value.message
    assert "modprobe sch_netem" in (e.value.hint or "") and "linux-modules-extra" in (e.value.hint or "")
    assert kernel(lab) == before and fl.faults(lab) == []


def test_cli_refuses_with_exit_1_and_loss_and_rate_still_work(lab: Lab, cli: Any) -> None:
    before = kernel(lab)
    res: CliResult = cli("lab", "impair", lab.name, "a", "b", "--direction", "a-b", "--delay", "50ms", "--jitter",
                         "5ms", "--distribution", "normal", "--loss", "1%")
    assert res.rc == 1 and "delay, jitter need the netem qdisc" in res.err and "modprobe sch_netem" in res.err
    assert kernel(lab) == before and fl.faults(lab) == []
    res = cli("lab", "impair", lab.name, "a", "b", "--direction", "a-b", "--loss", "1%", "--rate", "10mbit")
    assert res.rc == 0, res.err
    after = kernel(lab)
    (root,) = [q for q in after["a"][0] if q.get("root") and q["dev"] == "eth0"]
    assert (root["kind"], root["handle"]) == ("tbf", "5e1a:") and "numgen random" in after["b"][1]
    assert cli("lab", "impair", lab.name, "a", "b", "--clear").rc == 0
    assert kernel(lab) == before


def test_declared_between_regions_refused_with_nothing_left() -> None:
    if kernel_has_netem():
        pytest.skip("this kernel has netem: what happens without it cannot be shown here")
    name = lab_name()
    lab = Lab(load_text(f"name: {name}\nnodes: {{a: {{}}, b: {{}}}}\nlinks:\n  - [a, b]\n"
                        "between:\n  - {a: a, b: b, profile: intercontinental}\n", "regions.yaml"))
    with pytest.raises(FeatureMissing, match="sch_netem"):
        lab.up()
    assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert fl.faults(name) == []
