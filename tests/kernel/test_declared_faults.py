"""Impairments declared in the topology file: applied at `up`, measured, listed, gone at `down`.

The measurements reuse test_faults' UDP helper (datagrams between two lab namespaces only).
"""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import ROOT_REASON, is_root, lab_name

from nslab import faults
from nslab.errors import FeatureMissing
from nslab.lab.lab import Lab
from nslab.lab.topology import load_text

from .test_faults import udp

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]


def declared(name: str, impair: str) -> Lab:
    return Lab(load_text(f"name: {name}\nnodes: {{h1: {{}}, h2: {{}}}}\n"
                         f"links:\n  - endpoints: [h1, h2]\n    impair: {impair}\n", "declared.yaml"))


def test_declared_loss_is_applied_and_measured() -> None:
    lab = declared(lab_name(), '{"h1->h2": {loss: 30%}}')
    try:
        lab.up()
        assert [f["fault"] for f in faults.faults(lab.name)] == ["impair"]
        # A lossy link loses ARP too: resolve the neighbour first, or the first datagrams wait a
        # retransmission longer than the receiver does.
        for _ in range(20):
            if lab["h1"].run(["ping", "-c1", "-W1", "h2"], capture_output=True).returncode == 0:
                break
        # 4000 datagrams: the binomial spread at 30 % is 0.7 points, so +-3 points is over 4 sigma.
        got, errors = udp(lab, "h1", "h2", n=4000)
        assert errors == 0
        assert 27 <= 100 * (4000 - got) / 4000 <= 33, f"{4000 - got} of 4000 lost, declared 30 %"
        back, _ = udp(lab, "h2", "h1", n=300, port=9001)
        assert back == 300  # the other direction was not declared
    finally:
        lab.down()
    assert faults.faults(lab.name) == []
    assert not os.path.exists(f"/run/netns/{lab.name}-h1")


def test_declared_netem_impairment_fails_with_nothing_left() -> None:
    # Without netem: exit 1 naming it, and nothing of the lab left. With netem (the VM tier's 6.1): the lab
    # comes up with the netem qdisc tc reads back, and goes without a trace.
    from nslab.kernel import tc

    lab = declared(lab_name(), "{delay: 10ms}")
    if not _kernel_has_netem():
        with pytest.raises(FeatureMissing, match="netem"):
            lab.up()
    else:
        try:
            lab.up()
            (root,) = [q for q in tc.qdiscs(lab["h1"].netns, "eth0") if q.get("root")]
            assert root["kind"] == "netem" and tc.is_ours(root)
            assert root["options"]["delay"]["delay"] == pytest.approx(0.01)
            assert [f["netem"] for f in faults.faults(lab.name)] == ["delay 10ms", "delay 10ms"]
        finally:
            lab.down()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert lab.name not in listed
    assert faults.faults(lab.name) == []


def _kernel_has_netem() -> bool:
    """iproute2's answer in a throw-away namespace (the VM tier's own probe)."""
    return subprocess.run(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                          capture_output=True).returncode == 0
