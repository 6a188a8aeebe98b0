"""examples/etcd-partition.yaml: etcd (Debian's 3.4, nobody here wrote it) as declared services, no Python in
the file. Brought up, its checks run, partitioned: the majority keeps taking writes, the minority does not;
healed; taken down with nothing left behind."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import REPO, ROOT_REASON, is_root, lab_name

from nslab.checks import run_checks
from nslab.lab.lab import Lab

from .lab_leaks import leftovers

sys.path.insert(0, os.path.join(REPO, "examples"))
from etcd_partition import etcd_bin

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not is_root(), reason=ROOT_REASON),
    pytest.mark.skipif(not (etcd_bin("etcd") and etcd_bin("etcdctl")),
                       reason="etcd not found: scripts/bootstrap.sh --dev unpacks it into .cache/etcd"),
]

EXAMPLE = Path(REPO) / "examples" / "etcd-partition.yaml"


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    bindir = os.path.dirname(str(etcd_bin("etcd")))
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")  # the services' PATH is up's
    lab = Lab.from_file(EXAMPLE, lab_name())
    netns = [n.netns for n in lab.plan.nodes]
    lab.up()
    try:
        yield lab
    finally:
        lab.down()
    assert leftovers(lab.name, netns) == []


def put(lab: Lab, node: str, key: str, value: str) -> bool:
    res = lab[node].run(["etcdctl", "--endpoints=http://127.0.0.1:2379", "--command-timeout=2s", "put", key,
                         value], capture_output=True, text=True, timeout=20)
    return res.returncode == 0


def get(lab: Lab, node: str, key: str) -> str | None:
    res = lab[node].run(["etcdctl", "--endpoints=http://127.0.0.1:2379", "--command-timeout=2s", "get", key,
                         "--print-value-only"], capture_output=True, text=True, timeout=20)
    return res.stdout.strip() if res.returncode == 0 else None


def eventually(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.3)
    return False


def test_etcd_cluster_from_the_file_checks_partition_heal(lab: Lab) -> None:
    results = run_checks(lab)
    assert [r.ok for r in results] == [True] * 6, [r.line() for r in results]
    # The services run in the nodes' views: each member's data is in its own private dir, by its hostname.
    for m in ("h1", "h2", "h3"):
        assert lab[m].run(["test", "-d", "/var/lib/etcd/member"]).returncode == 0
    assert not os.path.exists("/var/lib/etcd/member")
    assert put(lab, "h1", "k", "before") and get(lab, "h3", "k") == "before"

    lab.partition(["h1"], ["h2", "h3"])
    assert eventually(lambda: put(lab, "h2", "k", "majority"), 20)
    assert get(lab, "h3", "k") == "majority"
    assert not put(lab, "h1", "k", "minority")
    lab.heal()
    assert eventually(lambda: put(lab, "h1", "k", "after"), 30)
    assert eventually(lambda: all(get(lab, m, "k") == "after" for m in ("h1", "h2", "h3")), 20)
