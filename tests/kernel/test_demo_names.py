"""`nslab demo` when its default names are taken (parallel CI jobs): it picks a free name, says so, removes only
what it made; two demos at once both succeed. The names taken are either made here (and removed here) or, when
another run holds them already, used as found and never touched."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import NSLAB_MAIN, REPO, ROOT_REASON, TESTS, is_root, lab_name

from nslab.demo import DEMO_LAB, DEMO_NS, candidates
from nslab.lab.topology import LAB_NAME_MAX, check_lab_name
from nslab.names import check_netns_name

pytestmark = pytest.mark.kernel


def test_candidates_are_valid_names() -> None:
    ns = list(candidates(DEMO_NS))
    labs = list(candidates(DEMO_LAB, LAB_NAME_MAX))
    assert ns[0] == DEMO_NS and labs[0] == DEMO_LAB and len(set(ns)) > 15 and len(set(labs)) > 15
    for name in ns:
        check_netns_name(name)
        assert re.fullmatch(r"nslab-demo(-[0-9a-f]{4})?", name)
    for name in labs:
        check_lab_name(name)
        assert len(name) <= LAB_NAME_MAX


def demo(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", NSLAB_MAIN, REPO, TESTS, "demo", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)


@pytest.fixture
def taken_ns() -> Iterator[None]:
    """nslab-demo exists while the test runs: ours (removed after) unless another run has it."""
    if not is_root():
        pytest.skip(ROOT_REASON)
    mine = not os.path.lexists(f"/run/netns/{DEMO_NS}")
    if mine:
        subprocess.run(["ip", "netns", "add", DEMO_NS], check=True)
    try:
        yield
    finally:
        if mine:
            subprocess.run(["ip", "netns", "del", DEMO_NS], check=True)


def _used(out: str, default: str) -> str:
    m = re.search(rf"\(({re.escape(default)} is taken, by another run or program: this demo uses (\S+))\)", out)
    assert m is not None, out
    return m.group(2)


def test_demo_takes_a_free_namespace_when_the_default_is_taken(taken_ns: None) -> None:
    before = os.stat(f"/run/netns/{DEMO_NS}").st_ino
    procs = [demo(), demo()]  # two jobs at once
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "HTTP 200" in out and "Done: the namespace and everything in it are gone." in out
    used = [_used(out, DEMO_NS) for out, _ in outs]
    assert used[0] != used[1] and all(u.startswith(DEMO_NS + "-") for u in used)
    assert all(f"$ nslab ns add {u}" in out for u, (out, _) in zip(used, outs, strict=True))
    assert not any(os.path.lexists(f"/run/netns/{u}") for u in used)
    assert os.stat(f"/run/netns/{DEMO_NS}").st_ino == before, "the taken namespace was left alone"
    # An explicit --name stays an error when taken.
    p = demo("--name", DEMO_NS)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and f"namespace {DEMO_NS!r} already exists" in err


def test_lab_demo_takes_a_free_lab_name_when_the_default_is_up() -> None:
    if not is_root():
        pytest.skip(ROOT_REASON)
    from nslab.lab import state as st
    from nslab.lab.lab import Lab

    mine = st.load(DEMO_LAB) is None
    lab = Lab.topo("single", 1, name=DEMO_LAB)
    if mine:
        lab.up()
    try:
        held = sorted(n for n in os.listdir("/run/netns") if n.startswith(f"{DEMO_LAB}-"))
        p = demo("--lab")
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        used = _used(out, DEMO_LAB)
        assert f"$ nslab lab up --topo ring,3 --name {used}" in out and "ttl=62" in out
        assert st.load(used) is None and not [n for n in os.listdir("/run/netns") if n.startswith(f"{used}-")]
        assert sorted(n for n in os.listdir("/run/netns") if n.startswith(f"{DEMO_LAB}-")) == held
        assert st.load(DEMO_LAB) is not None
    finally:
        if mine:
            lab.down()


def test_lab_demo_that_loses_the_race_for_a_name_takes_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two demos look, find the same name free, and both bring it up: the second's up finds the first's lab
    (unchanged). It once gave up with exit 2; it must take another free name, and leave the other's lab alone.
    The race is made exact: another job's lab appears between the demo's look and its up."""
    if not is_root():
        pytest.skip(ROOT_REASON)
    import io

    from nslab import demo as demo_mod
    from nslab.lab import state as st
    from nslab.lab.lab import Lab

    theirs = lab_name()
    names = iter([theirs, *candidates(theirs, LAB_NAME_MAX)])
    monkeypatch.setattr(demo_mod, "candidates", lambda base, limit=64: names)
    real_up = Lab.up
    other: list[Lab] = []

    def racing_up(self: Lab, *a: object, **k: object) -> object:
        if self.name == theirs and not other:
            other.append(Lab.topo("ring", 3, name=theirs))
            real_up(other[0])  # the other job wins the race
        return real_up(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Lab, "up", racing_up)
    out = io.StringIO()
    try:
        demo_mod.lab_walkthrough(out)
        text = out.getvalue()
        m = re.search(rf"\({re.escape(theirs)} was brought up by another job just now: this demo uses (\S+)\)", text)
        assert m is not None, text
        used = m.group(1)
        assert f"$ nslab lab up --topo ring,3 --name {used}" in text and "ttl=62" in text, text
        assert st.load(used) is None  # the demo's own lab is down again
        assert st.load(theirs) is not None, "the other job's lab was left alone"
    finally:
        if other:
            other[0].down()
