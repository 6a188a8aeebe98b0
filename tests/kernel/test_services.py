"""Services in lab nodes (nslab.services): start, logs, readiness, stop/restart, and what `down` leaves.

Every lab is named `t` + 6 random hex digits and is taken down (with its logs) even when a test fails.
Traffic flows between lab namespaces or inside one node's loopback only.
"""

from __future__ import annotations

import os
import sys
import time

import pytest
from conftest import ROOT_REASON, is_root, lab_name

from nslab import probe
from nslab.errors import NotFoundError, NslabError, UsageError
from nslab.lab.lab import Lab
from nslab.namespace import Namespace
from nslab.services import log_dir, remove_logs, services, start
from nslab.testing import wait_until

from .labkit import LabFactory

kernel = pytest.mark.kernel
needs_root = pytest.mark.skipif(not is_root(), reason=ROOT_REASON)
PY = sys.executable










@pytest.fixture(scope="module")
def mlab(module_labs: LabFactory) -> Lab:
    return module_labs.add(Lab.from_topo_arg("single,3", name=module_labs.name()))


@pytest.fixture
def flab(labs: LabFactory) -> Lab:
    return labs.add(Lab.from_topo_arg("single,3", name=labs.name()))


def _ns_pids(lab: Lab, node: str) -> list[int]:
    ns = Namespace.open(lab[node].netns)
    try:
        return ns.pids()
    finally:
        ns.close()


# ---- in the kernel --------------------------------------------------------------------------------
@kernel
@needs_root
def test_http_service_logs_ready_reachable_stop_restart(mlab: Lab) -> None:
    web = start(mlab, "h2", "web", [PY, "-m", "http.server", "8000", "--bind", "0.0.0.0"], ready_port=8000)
    assert web.running and web.pid is not None
    assert web.log_path == log_dir(mlab.name) / "h2" / "web.log"
    assert oct(os.stat(web.log_path.parent).st_mode & 0o777) == oct(0o755)
    assert web in services(mlab) and web in services(mlab.name)
    # The process runs in h2's namespace, in a session of its own.
    assert web.pid in _ns_pids(mlab, "h2")
    assert os.getpgid(web.pid) == web.pid
    # Reachable from h1 (namespace to namespace), and what it logged is captured.
    h2 = mlab["h2"].ipv4
    assert h2 is not None
    assert probe.connect(h2, 8000, netns=mlab["h1"].netns).ok
    res = probe.http(f"http://{h2}:8000/", netns=mlab["h1"].netns)
    assert res.status == 200
    wait_until(lambda: "GET / HTTP" in web.log_tail(50), 5, message="the request in the web log")
    assert "Serving HTTP on 0.0.0.0 port 8000" in web.log_tail(50)
    assert f"starting web: {PY} -m http.server" in web.log_tail(50)

    old_pid = web.pid
    rc = web.stop()
    assert rc == -15 and not web.running and web.pid is None
    assert not probe.connect(h2, 8000, timeout=1, netns=mlab["h1"].netns).ok
    assert old_pid not in _ns_pids(mlab, "h2")
    assert web.stop() == -15  # idempotent

    assert web.restart() is web
    assert web.running and web.pid != old_pid
    assert probe.connect(h2, 8000, netns=mlab["h1"].netns).ok
    assert web.log_tail(200).count("==> nslab:") == 2  # appended, one header per start
    web.stop()


@kernel
@needs_root
def test_wait_ready_timeout_names_everything_and_stops(mlab: Lab) -> None:
    t0 = time.monotonic()
    with pytest.raises(NslabError) as ei:
        start(mlab, "h1", "sleeper", ["sh", "-c", "echo waiting-forever; exec sleep 60"], ready_port=9099,
              ready_timeout=0.5)
    assert time.monotonic() - t0 < 3
    msg = str(ei.value)
    assert "service 'sleeper' in node 'h1'" in msg and mlab.name in msg
    assert "port 9099" in msg and "after 0.5 s" in msg and "connection refused" in msg
    assert "waiting-forever" in msg and "/h1/sleeper.log" in msg
    assert "hint:" in msg
    sleeper = [s for s in services(mlab) if s.name == "sleeper"][-1]
    assert not sleeper.running  # a failed start leaves nothing running


@kernel
@needs_root
def test_exit_before_ready(mlab: Lab) -> None:
    t0 = time.monotonic()
    with pytest.raises(NslabError) as ei:
        start(mlab, "h3", "crash", ["sh", "-c", "echo boom >&2; exit 3"], ready_port=9098, ready_timeout=5)
    assert time.monotonic() - t0 < 3  # noticed at once, not after the timeout
    msg = str(ei.value)
    assert "exited with status 3 before port 9098 was ready" in msg and "boom" in msg


@kernel
@needs_root
def test_wait_ready_later(mlab: Lab) -> None:
    svc = start(mlab, "h3", "late", ["sh", "-c", f"sleep 0.3; exec {PY} -m http.server 8123"])
    svc.wait_ready(8123, timeout=5)
    assert svc.running
    svc.stop()


@kernel
@needs_root
def test_stop_kills_the_process_group(mlab: Lab) -> None:
    svc = start(mlab, "h1", "group", ["sh", "-c", "sleep 300 & sleep 301 & wait"])
    wait_until(lambda: len(_ns_pids(mlab, "h1")) >= 3, 5, message="the shell and its two sleeps")
    svc.stop()
    wait_until(lambda: _ns_pids(mlab, "h1") == [], 5, message="no process left in h1")


@kernel
@needs_root
def test_stop_escalates_to_sigkill(mlab: Lab) -> None:
    svc = start(mlab, "h1", "stubborn", ["sh", "-c", "trap '' TERM; echo trap-$((1+1)); while :; do sleep 0.1; done"])
    wait_until(lambda: "trap-2" in svc.log_tail(), 5, message="the trap installed")
    t0 = time.monotonic()
    assert svc.stop(timeout=0.3) == -9
    assert 0.25 < time.monotonic() - t0 < 3


@kernel
@needs_root
def test_env_cwd_and_resolve(mlab: Lab, tmp_path: os.PathLike[str]) -> None:
    svc = start(mlab, "h1", "env", ["sh", "-c", 'echo "foo=$FOO home=$HOME"; pwd; echo peer "$1"', "sh", "h2"],
                env={"FOO": "bar"}, cwd=tmp_path)
    wait_until(lambda: not svc.running, 5, message="the shell to finish")
    text = svc.log_tail()
    assert "foo=bar" in text and f"home={os.environ.get('HOME', '')}" in text  # added to, not replacing
    assert str(tmp_path) in text
    assert f"peer {mlab['h2'].ipv4}" in text  # node names resolve, as in LabNode.run
    assert svc.returncode == 0


@kernel
@needs_root
def test_python_output_reaches_the_log_while_running(mlab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    # No PYTHONUNBUFFERED in the environment (a fresh shell, CI); env= given, so the child's environment is
    # built from this process's (without env= it may come from nslab's namespace helper, started earlier).
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    svc = start(mlab, "h1", "printer", [PY, "-c", "import time; print('answer', 6 * 7); time.sleep(60)"],
                env={"GREETING": "hi"})
    wait_until(lambda: "answer 42" in svc.log_tail(), 5, message="the print in the log, unflushed")
    assert svc.running
    svc.stop()


@kernel
@needs_root
def test_bad_input(mlab: Lab) -> None:
    with pytest.raises(NotFoundError, match="has no node 'h9'"):
        start(mlab, "h9", "x", ["true"])
    for bad in ("", "a/b", ".hidden", "x" * 65):
        with pytest.raises(UsageError, match="service name"):
            start(mlab, "h1", bad, ["true"])
    with pytest.raises(UsageError, match="no command"):
        start(mlab, "h1", "empty", [])
    with pytest.raises(UsageError, match="not a port number"):
        start(mlab, "h1", "p", ["true"], ready_port=70000)
    with pytest.raises(UsageError, match="No such file or directory"):
        start(mlab, "h1", "missing", ["/nonexistent/program"])
    svc = start(mlab, "h1", "dup", ["sleep", "30"])
    try:
        with pytest.raises(UsageError, match="already running"):
            start(mlab, "h1", "dup", ["sleep", "30"])
        start(mlab, "h2", "dup", ["sleep", "30"]).stop()  # the same name in another node is another service
    finally:
        svc.stop()


@kernel
@needs_root
def test_not_running_after_down_and_logs_removed(flab: Lab) -> None:
    svc = start(flab, "h2", "web", [PY, "-m", "http.server", "8000"], ready_port=8000)
    assert svc.log_path.exists()
    flab.down()
    wait_until(lambda: not svc.running, 5, message="the service killed by down")
    assert svc.pid is None
    remove_logs(flab.name)
    assert not log_dir(flab.name).exists()
    assert svc.log_tail() == ""
    remove_logs(flab.name)  # idempotent
    with pytest.raises(NotFoundError, match="not up"):
        svc.restart()


@kernel
@needs_root
def test_start_on_a_lab_not_up() -> None:
    lab = Lab.from_topo_arg("single,2", name=lab_name())
    with pytest.raises(NotFoundError, match="the lab is not up"):
        start(lab, "h1", "x", ["true"])
    assert not log_dir(lab.name).exists()
