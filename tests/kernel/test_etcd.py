"""A real distributed program nobody here wrote (Debian's etcd 3.4) under a real partition.

What etcd promises, asserted: with the cluster split {h1} | {h2, h3}, the majority side elects a leader
and keeps accepting writes; the minority accepts neither writes nor linearizable reads; after `heal`,
every member converges on one value and the old minority accepts writes again. A write the minority
timed out on is indeterminate (Raft may still commit it after healing), so the converged value may be
either side's. All traffic stays between the lab's namespaces.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT_REASON, is_root, lab_name

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from etcd_partition import Etcd, converged, etcd_bin, etcd_lab, wait_for

from nslab.lab.lab import Lab

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not is_root(), reason=ROOT_REASON),
    pytest.mark.skipif(not (etcd_bin("etcd") and etcd_bin("etcdctl")),
                       reason="etcd not found: scripts/bootstrap.sh --dev unpacks it into .cache/etcd"),
]


@pytest.fixture
def cluster() -> Iterator[tuple[Lab, Etcd]]:
    with etcd_lab(lab_name()) as pair:
        yield pair


def test_majority_serves_minority_does_not_heal_reconverges(cluster: tuple[Lab, Etcd]) -> None:
    lab, etcd = cluster
    assert etcd.put("h1", "k", "before").ok
    assert etcd.get("h3", "k").out == "before"

    lab.partition(["h1"], ["h2", "h3"])
    elected = wait_for("majority write", lambda: etcd.put("h2", "k", "majority").ok, timeout=15)
    assert elected < 15
    assert etcd.get("h3", "k").out == "majority"
    for _ in range(2):  # not a one-off: the minority stays unable to write or read linearizably
        minority = etcd.put("h1", "k", "minority")
        assert not minority.ok and minority.seconds >= 1.5, minority
        assert not etcd.get("h1", "k").ok
    assert etcd.get("h2", "k").out == "majority"  # the minority's attempts did not land meanwhile

    lab.heal()
    wait_for("convergence after heal", lambda: converged(etcd, "k"), timeout=30)
    assert etcd.get("h1", "k").out in ("majority", "minority")  # the timed-out write was indeterminate
    assert wait_for("minority write after heal", lambda: etcd.put("h1", "k", "after").ok, timeout=15) < 15
    assert all(etcd.get(m, "k").out == "after" for m in ("h1", "h2", "h3"))


def test_faults_are_gone_with_the_lab(cluster: tuple[Lab, Etcd]) -> None:
    lab, etcd = cluster
    lab.partition(["h1"], ["h2", "h3"])
    from nslab import faults

    assert faults.faults(lab.name), "the partition is recorded while active"
    t0 = time.monotonic()
    lab.heal()
    assert faults.faults(lab.name) == []
    assert wait_for("writes after heal", lambda: etcd.put("h1", "x", "1").ok, timeout=20) < 20
    assert time.monotonic() - t0 < 25
