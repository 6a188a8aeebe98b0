"""The nslab pytest plugin, run on small test files through pytester (pytest running pytest).

The inner tests write the names of the labs they got into `names.txt`; the outer test then checks that
nothing of those labs is left (namespaces, state, logs) and, as a last resort, removes it by exact name.
Inner labs are named `t` + 6 random hex digits by the plugin; traffic stays between their namespaces.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, ROOT_REASON, is_root

from nslab.lab import cleanup as cleanup_mod
from nslab.lab import state as st
from nslab.lab.lab import Lab
from nslab.services import log_dir, remove_logs

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]

NAME = re.compile(r"t[0-9a-f]{6}")


def _plugin_args() -> list[str]:
    """`-p nslab.pytest_plugin`, unless the installed entry point loads it already (twice would clash)."""
    if not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        eps = importlib.metadata.entry_points(group="pytest11")
        if any(ep.value == "nslab.pytest_plugin" for ep in eps):
            return []
    return ["-p", "nslab.pytest_plugin"]


PLUGIN = _plugin_args()

HEADER = """
import os, sys, time
import pytest
from nslab.services import start
from nslab.testing import assert_reachable, assert_port_open

def record(lab):
    with open(os.path.join(os.environ["NSLAB_T_DIR"], "names.txt"), "a") as f:
        f.write(lab.name + "\\n")
"""


def leftovers(name: str) -> list[str]:
    assert NAME.fullmatch(name), name
    out = [f"/run/netns/{n}" for n in os.listdir("/run/netns") if n.startswith(name + "-")]
    if st.load(name) is not None:
        out.append(f"state of {name}")
    if log_dir(name).exists():
        out.append(str(log_dir(name)))
    return out


class Inner:
    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.dir = pytester.path

    def names(self) -> list[str]:
        p = self.dir / "names.txt"
        return p.read_text().split() if p.exists() else []

    def force_remove(self) -> None:
        for name in set(self.names()):
            if not NAME.fullmatch(name):
                continue
            try:
                Lab.attach(name).down()
            except Exception:
                cleanup_mod.cleanup(only=name)
            st.remove(name)
            remove_logs(name)


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inner]:
    monkeypatch.setenv("NSLAB_T_DIR", str(pytester.path))
    monkeypatch.setenv("PYTHONPATH", REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    it = Inner(pytester)
    try:
        yield it
    finally:
        left = {n: leftovers(n) for n in set(it.names())}
        it.force_remove()
        assert not any(left.values()), f"labs left behind by the inner run: {left}"


def test_passing_test_gets_a_lab_and_it_is_gone_after(inner: Inner) -> None:
    inner.pytester.makepyfile(HEADER + """
def test_it(nslab_lab):
    lab = nslab_lab(topo="single,3")
    record(lab)
    assert os.path.exists(f"/run/netns/{lab.name}-h1")
    assert_reachable(lab, "h1", "h3")
    web = start(lab, "h2", "web", [sys.executable, "-m", "http.server", "8000"], ready_port=8000)
    assert_port_open(lab, "h2", 8000, from_node="h1")
    lab2 = nslab_lab(topo=("linear", 2))
    record(lab2)
    assert lab2.name != lab.name
""")
    res = inner.pytester.runpytest(*PLUGIN, "-q")
    res.assert_outcomes(passed=1)
    names = inner.names()
    assert len(names) == 2 and all(NAME.fullmatch(n) for n in names), names
    for n in names:
        assert leftovers(n) == []


def test_failure_report_has_status_and_service_log_and_teardown_happens(inner: Inner) -> None:
    inner.pytester.makepyfile(HEADER + """
def test_fails(nslab_lab):
    lab = nslab_lab(topo="single,2")
    record(lab)
    start(lab, "h2", "web", ["sh", "-c", "echo hello-from-the-web-service; exec sleep 60"])
    time.sleep(0.3)
    assert False, "deliberate"
""")
    res = inner.pytester.runpytest(*PLUGIN, "-q")
    res.assert_outcomes(failed=1)
    (name,) = inner.names()
    out = res.stdout.str()
    assert f"nslab lab {name}: status" in out
    assert f"h1 (host, netns {name}-h1)" in out and "inet 10.0.0.1/24" in out
    assert f"nslab lab {name}: log h2/web.log" in out
    assert "hello-from-the-web-service" in out
    assert "AssertionError: deliberate" in out
    assert leftovers(name) == []  # torn down after the failure


def test_a_passing_test_has_no_sections(inner: Inner) -> None:
    inner.pytester.makepyfile(HEADER + """
def test_ok(nslab_lab):
    record(nslab_lab(topo="single,2"))
""")
    res = inner.pytester.runpytest(*PLUGIN, "-q", "-rA")
    res.assert_outcomes(passed=1)
    assert "nslab lab" not in res.stdout.str()


def test_bad_input_gives_the_cli_message_without_traceback(inner: Inner) -> None:
    inner.pytester.makefile(".yaml", broken="name: x\nnodes:\n  h1: {kind: spaceship}\n")
    inner.pytester.makepyfile(HEADER + """
def test_missing_file(nslab_lab):
    nslab_lab(file="no-such-lab.yaml")

def test_bad_file(nslab_lab):
    nslab_lab(file="broken.yaml")

def test_bad_topo(nslab_lab):
    nslab_lab(topo="single,x")

def test_no_argument(nslab_lab):
    nslab_lab()

@pytest.mark.nslab_topo("sinlge,3")
def test_bad_marker(lab):
    pass

def test_lab_without_marker(lab):
    pass

@pytest.mark.nslab_topo("single,2")
def test_unknown_node(lab):
    record(lab)
    lab["h9"].run(["true"])
""")
    res = inner.pytester.runpytest(*PLUGIN, "-q")
    res.assert_outcomes(failed=5, errors=2)
    out = res.stdout.str()
    assert "nslab: " in out
    assert "Traceback" not in out and "During handling" not in out
    assert "nslab/lab/" not in out and "nslab/pytest_plugin.py" not in out
    for text in [
        "no-such-lab.yaml",
        "broken.yaml",
        "spaceship",
        "nslab: --topo single,x: ",
        "nslab_lab: give exactly one of file=, topo= or topology=",
        "nslab: --topo sinlge,3: unknown topology 'sinlge'",
        "did you mean 'single'?",
        "the lab fixture needs one marker",
        "has no node 'h9'",
        "hint: known nodes: ",
        'lab["h9"].run(["true"])',  # the test's own line is shown
    ]:
        assert text in out, text
    (name,) = inner.names()
    assert leftovers(name) == []
    # Debugging nslab itself: --tb=long keeps its frames.
    res = inner.pytester.runpytest(*PLUGIN, "-q", "--tb=long", "-k", "unknown_node")
    res.assert_outcomes(failed=1)
    assert "nslab/lab/plan.py" in res.stdout.str()


def test_markers_and_file_next_to_the_test(inner: Inner) -> None:
    inner.pytester.makefile(".yaml", two="name: two\nnodes:\n  a: {}\n  b: {}\nlinks:\n  - [a, b]\n")
    inner.pytester.makepyfile(HEADER + """
@pytest.mark.nslab_file("two.yaml")
def test_file(lab):
    record(lab)
    assert lab.name != "two"
    assert_reachable(lab, "a", "b")

@pytest.mark.nslab_topo("linear", 2)
def test_python_spelling(lab):
    record(lab)
    assert_reachable(lab, "h1", "h2")

def test_topology_object(nslab_lab):
    from nslab.lab.topology import Topology
    t = Topology.new("mine")
    t.add_node("x")
    t.add_node("y")
    t.add_link("x", "y")
    lab = nslab_lab(topology=t)
    record(lab)
    assert t.name == "mine"  # the caller's topology is not changed
    assert_reachable(lab, "x", "y")
""")
    res = inner.pytester.runpytest(*PLUGIN, "-q", "--strict-markers")
    res.assert_outcomes(passed=3)
    assert len(set(inner.names())) == 3


def test_module_scoped_lab_is_shared_then_removed(inner: Inner) -> None:
    inner.pytester.makepyfile(HEADER + """
@pytest.fixture(scope="module")
def shared(nslab_lab_module):
    lab = nslab_lab_module(topo="single,2")
    record(lab)
    return lab

def test_a(shared):
    assert os.path.exists(f"/run/netns/{shared.name}-h1")

def test_b(shared):
    assert os.path.exists(f"/run/netns/{shared.name}-h1")
    assert False, "fails with the module lab in the report"
""")
    res = inner.pytester.runpytest(*PLUGIN, "-q")
    res.assert_outcomes(passed=1, failed=1)
    (name,) = inner.names()
    assert f"nslab lab {name}: status" in res.stdout.str()
    assert leftovers(name) == []


def test_ctrl_c_tears_down(inner: Inner) -> None:
    inner.pytester.makepyfile(HEADER + """
def test_interrupted(nslab_lab):
    record(nslab_lab(topo="single,2"))
    raise KeyboardInterrupt

def test_never_run():
    pass
""")
    res = inner.pytester.runpytest_subprocess(*PLUGIN, "-q", timeout=60)
    assert res.ret == pytest.ExitCode.INTERRUPTED
    (name,) = inner.names()
    assert leftovers(name) == []


def test_sigterm_tears_down(inner: Inner) -> None:
    inner.pytester.makepyfile(HEADER + """
import signal
def test_terminated(nslab_lab):
    record(nslab_lab(topo="single,2"))
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
""")
    res = inner.pytester.runpytest_subprocess(*PLUGIN, "-q", timeout=60)
    assert res.ret == pytest.ExitCode.INTERRUPTED
    (name,) = inner.names()
    assert leftovers(name) == []


def test_pcap_option_notes_the_missing_capture_module(inner: Inner, monkeypatch: pytest.MonkeyPatch) -> None:
    import nslab.pytest_plugin

    monkeypatch.setattr(nslab.pytest_plugin, "capture_available", lambda: False)  # as before capture.py
    inner.pytester.makepyfile(HEADER + """
def test_fails(nslab_lab):
    record(nslab_lab(topo="single,2"))
    assert False
""")
    res = inner.pytester.runpytest(*PLUGIN, "-q", "--nslab-pcap")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*nslab pcap*", "pcap capture will be attached once the capture module lands*"])


@pytest.mark.skipif(importlib.util.find_spec("nslab.capture") is None, reason="nslab.capture not written yet")
def test_pcap_files_listed(inner: Inner) -> None:
    inner.pytester.makepyfile(HEADER + """
def test_fails(nslab_lab):
    lab = nslab_lab(topo="single,2")
    record(lab)
    assert_reachable(lab, "h1", "h2")
    assert False
""")
    res = inner.pytester.runpytest(*PLUGIN, "-q", "--nslab-pcap")
    res.assert_outcomes(failed=1)
    out = res.stdout.str()
    (name,) = inner.names()
    found = re.findall(rf"(\S+/{name}-h([12])-eth0\.pcap) \((\d+) packets\)", out)
    assert sorted(h for _, h, _ in found) == ["1", "2"], out
    assert all(Path(p).stat().st_size > 24 and int(n) >= 2 for p, _, n in found), found


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed")
def test_unique_names_under_xdist(inner: Inner) -> None:
    tests = "".join(f"""
def test_{i}(nslab_lab):
    lab = nslab_lab(topo="single,2")
    record(lab)
    assert_reachable(lab, "h1", "h2")
""" for i in range(6))
    inner.pytester.makepyfile(HEADER + tests)
    res = inner.pytester.runpytest_subprocess(*PLUGIN, "-p", "xdist", "-n", "2", "-q", timeout=120)
    res.assert_outcomes(passed=6)
    names = inner.names()
    assert len(names) == 6 and len(set(names)) == 6, names


def test_plugin_loads_from_the_command_line() -> None:
    """The module the entry point names imports cleanly on its own (what pytest11 loading does)."""
    code = "import nslab.pytest_plugin as p; print(sorted(n for n in dir(p) if n.startswith('nslab_')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert "'nslab_lab', 'nslab_lab_module'" in out.stdout
    assert signal.getsignal(signal.SIGTERM) is not None


UNPRIVILEGED_TESTS = """
import pytest

def test_factory(nslab_lab):
    nslab_lab(topo="single,2")

def test_module_factory(nslab_lab_module):
    nslab_lab_module(topo="single,2")

@pytest.mark.nslab_topo("single,2")
def test_marker(lab):
    pass

def test_plain():
    pass
"""

UNPRIVILEGED_CHECKS = """
name: unpriv
nodes:
  h1: {kind: host}
  h2: {kind: host}
links:
  - [h1, h2]
checks:
  - reach: [h1, h2]
  - reach: [h2, h1]
"""


@pytest.mark.parametrize("who", [
    pytest.param(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"], id="nobody"),
    pytest.param(["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"], id="root-without-caps"),
])
def test_unprivileged_items_skip_with_the_reason(who: list[str]) -> None:
    """The plugin loads in every pytest run of the environment: without privileges its items skip, saying
    why, and nothing errors (a traceback from the lab fixture or the checks file would be a defect)."""
    import shutil
    import tempfile

    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    d = tempfile.mkdtemp(prefix="nslab-unpriv-")
    try:
        os.chmod(d, 0o777)
        Path(d, "test_unpriv.py").write_text(UNPRIVILEGED_TESTS)
        Path(d, "unpriv.lab.yaml").write_text(UNPRIVILEGED_CHECKS)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", HOME=d,
                   PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        r = subprocess.run([*who, sys.executable, "-m", "pytest", *PLUGIN, "-p", "no:cacheprovider", "-rs",
                            "-q", "--rootdir", d, d], capture_output=True, text=True, cwd=d, env=env, timeout=120)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "1 passed, 5 skipped" in out and "error" not in out.lower() and "Traceback" not in out, out
    reason = "uid 65534" if "--reuid=65534" in who else "runs as root without CAP_SYS_ADMIN and CAP_NET_ADMIN"
    skips = [ln for ln in out.splitlines() if ln.startswith("SKIPPED")]
    assert skips and all(reason in ln and "CAP_SYS_ADMIN and CAP_NET_ADMIN" in ln for ln in skips), out
