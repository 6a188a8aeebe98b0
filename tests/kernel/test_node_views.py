"""Node views and declared services against oracles nobody here wrote (ip -j, getent, ss, ps, /proc): hostname,
names, /sys, private dirs, files, services in dependency order, the lease, kill -9 of the supervisor and of
`lab up`, and nothing left behind after `down` (processes, abstract socket, mounts, /run/nslab/labs/LAB)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import NSLAB_MAIN, REPO, ROOT_REASON, TESTS, _pids_in, ipj, is_root, lab_name, nslab_subprocess, wait_for

from nslab.errors import NslabError
from nslab.lab import apply, client
from nslab.lab import nodeview as nv
from nslab.lab import state as st
from nslab.lab.lab import Lab

from .lab_leaks import leftovers

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]

LISTENER = ["busybox", "nc", "-ll", "-p", "{port}", "-e", "echo", "hi"]

TOPO = """\
name: {name}
nodes:
  h1:
    private: [/run, /tmp]
    files:
      /etc/nslab-test-app.conf: "h1 conf\\n"
      /run/app/x.conf: {{file: x.conf}}
    services:
      - name: web
        cmd: [busybox, nc, -ll, -p, "8080", -e, echo, hi]
        ready: {{tcp: 8080}}
  h2:
    private: [/run]
    services:
      - name: client
        # Proves the order: h1/web must already answer when this starts.
        cmd: "busybox nc h1 8080 </dev/null > /run/got; echo $$ > /run/x.pid; exec sleep 1000"
        ready: {{cmd: "test -s /run/got"}}
        after: [h1/web]
      - name: daemon
        # Daemonizes a grandchild out of its process group: down must still end it.
        cmd: "setsid sleep 1000 & echo up; exec sleep 1000"
        ready: {{log: "^up$"}}
  r1: {{kind: router}}
links:
  - [h1, r1]
  - [h2, r1]
"""


def host_fingerprint() -> tuple[str, list[str]]:
    with open("/etc/hosts", "rb") as f:
        hosts = hashlib.sha256(f.read()).hexdigest()
    return hosts, sorted(os.listdir("/run"))


@pytest.fixture
def topo_file(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    name = lab_name()
    (tmp_path / "x.conf").write_text("x from a file\n")
    path = tmp_path / "lab.yaml"
    path.write_text(TOPO.format(name=name))
    yield name, path
    Lab.from_file(path).down()
    nv.remove_lab_dir(name)


def cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return nslab_subprocess(list(argv), timeout=timeout)


def test_views_services_and_a_clean_down(topo_file: tuple[str, Path]) -> None:
    name, path = topo_file
    before = host_fingerprint()
    up = cli("lab", "up", str(path), "-q")  # another process: the services outlive it
    assert up.returncode == 0, up.stderr
    lab = Lab.attach(name)
    netns = [n.netns for n in lab.plan.nodes]
    try:
        for node in ("h1", "h2", "r1"):
            # hostname: Python API and lab exec alike
            assert lab[node].run(["hostname"], capture_output=True, text=True).stdout.strip() == node
            ex = cli("lab", "exec", name, node, "--", "hostname")
            assert (ex.returncode, ex.stdout.strip()) == (0, node), ex.stderr
        for node in ("h1", "h2"):
            # /sys is the node's: its eth0's MAC as `ip -j link` of the node gives it
            mac = ipj(lab[node].netns, "link", "show", "eth0")[0]["address"]
            got = lab[node].run(["cat", "/sys/class/net/eth0/address"], capture_output=True, text=True)
            assert got.stdout.strip() == mac
            ex = cli("lab", "exec", name, node, "--", "cat", "/sys/class/net/eth0/address")
            assert ex.stdout.strip() == mac
        # Names: getent reads the node's /etc/hosts; the address is one of h2's (on the segment h1 shares
        # with it, if any; h1 and h2 share none here: h2's first address).
        res = lab["h1"].run(["getent", "ahostsv4", "h2"], capture_output=True, text=True)
        assert res.returncode == 0 and res.stdout.split()[0] == lab.plan.primary_ipv4("h2")
        res = lab["h1"].run(["getent", "hosts", "r1"], capture_output=True, text=True)
        r1_on_h1 = {a.split("/")[0] for lk in lab.plan.links for e in (lk.a, lk.b) if e.node == "r1"
                    and {lk.a.node, lk.b.node} == {"h1", "r1"} for a in e.addresses}
        assert res.stdout.split()[0] in r1_on_h1
        assert lab["h2"].run(["cat", "/etc/hostname"], capture_output=True, text=True).stdout == "h2\n"
        # Files: inline over a missing path (an overlay), from a file under a private dir.
        assert lab["h1"].run(["cat", "/etc/nslab-test-app.conf"], capture_output=True, text=True).stdout == \
            "h1 conf\n"
        assert lab["h1"].run(["cat", "/run/app/x.conf"], capture_output=True, text=True).stdout == "x from a file\n"
        # Private /run: two nodes write /run/x.pid; each sees its own, the host sees neither.
        for node in ("h1", "h2"):
            lab[node].run(["sh", "-c", f"echo {node} > /run/x.pid"], check=True)
        for node in ("h1", "h2"):
            assert lab[node].run(["cat", "/run/x.pid"], capture_output=True, text=True).stdout == f"{node}\n"
        assert not os.path.exists("/run/x.pid") and not os.path.exists("/etc/nslab-test-app.conf")
        assert host_fingerprint() == before
        # Services: ss in h1 sees the listener; h2/client got h1/web's answer, so it started after it.
        ss = lab["h1"].run(["ss", "-Hltn", "sport = :8080"], capture_output=True, text=True).stdout
        assert "8080" in ss
        assert lab["h2"].run(["cat", "/run/got"], capture_output=True, text=True).stdout.strip() == "hi"
        ps = cli("lab", "ps", name, "--json")
        rows = {f"{r['node']}/{r['name']}": r for r in json.loads(ps.stdout)}
        assert set(rows) == {"h1/web", "h2/client", "h2/daemon"}
        assert all(r["state"] == "running" for r in rows.values()), rows
        # Every program is in the lab's pid namespace: ps in a node lists the supervisor as pid 1.
        top = lab["h2"].run(["ps", "-o", "pid=,args=", "-p", "1"], capture_output=True, text=True).stdout
        assert "nslab.lab.supervisor" in top
        # lab shell: the same view (here a non-interactive sh reading its commands from stdin).
        sh = subprocess.run([sys.executable, "-c", NSLAB_MAIN, REPO, TESTS, "lab", "shell", name, "h2"],
                            input="hostname; cat /run/x.pid; exit 7\n", capture_output=True, text=True,
                            timeout=60, cwd=REPO, env={**os.environ, "SHELL": "/bin/sh"})
        assert (sh.returncode, sh.stdout.split()) == (7, ["h2", "h2"]), sh.stderr
        st = json.loads(cli("lab", "status", name, "--json").stdout)
        assert st["supervisor"] == "running" and len(st["services"]) == 3
        logs = cli("lab", "logs", name, "h2/daemon", "--tail", "1")
        assert logs.stdout.strip() == "up"
        # A failing test's report shows the declared services' logs.
        from nslab.pytest_plugin import report_sections

        titles = [t for t, _ in report_sections(lab)]
        assert any("h2/daemon.log" in t for t in titles), titles
        # The supervisor blocks SIGINT and SIGTERM (SigBlk bits 2 and 15).
        sup = client.Client.connect(name)
        with sup:
            blk = next(line for line in Path(f"/proc/{sup.pid}/status").read_text().splitlines()
                       if line.startswith("SigBlk:"))
        assert int(blk.split()[1], 16) & (1 << 1 | 1 << 14) == (1 << 1 | 1 << 14)
    finally:
        down = cli("lab", "down", name)
    assert down.returncode == 0, down.stderr
    assert wait_for(lambda: not leftovers(name, netns), 10), leftovers(name, netns)
    assert host_fingerprint() == before


def test_service_verbs_and_restart_on_failure(tmp_path: Path) -> None:
    name = lab_name()
    path = tmp_path / "svc.yaml"
    path.write_text(f"""\
name: {name}
nodes:
  h1:
    services:
      - name: web
        cmd: [busybox, nc, -ll, -p, "8081", -e, echo, hi]
        ready: {{tcp: 8081}}
      - name: flaky
        cmd: "echo try; exit 3"
        restart: on-failure
      - name: dns
        cmd: [python3, -c, "import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
time.sleep(0.5); s.bind(('0.0.0.0', 5353)); time.sleep(1000)"]
        ready: {{udp: 5353}}
links: []
""")
    lab = Lab.from_file(path)
    lab.up()
    netns = [n.netns for n in lab.plan.nodes]
    try:
        def listening() -> bool:
            out = lab["h1"].run(["ss", "-Hltn", "sport = :8081"], capture_output=True, text=True).stdout
            return "8081" in out

        assert listening()
        udp = lab["h1"].run(["ss", "-Hlun", "sport = :5353"], capture_output=True, text=True).stdout
        assert "5353" in udp  # ready by its UDP port: bound when up returned
        stop = cli("lab", "service", name, "h1/web", "stop")
        assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stderr
        assert not listening()
        start = cli("lab", "service", name, "h1/web", "start")
        assert start.returncode == 0, start.stderr
        assert wait_for(listening, 10)
        restart = cli("lab", "service", name, "h1/web", "restart", "--json")
        assert json.loads(restart.stdout)["state"] in ("ready", "running")
        assert wait_for(listening, 10)
        # on-failure: restarted again and again (with a growing pause), each start logged.

        def restarts() -> int:
            with client.Client.connect(name) as c:
                row = next(r for r in c.call("svc.ps") if r["name"] == "flaky")
            return int(row["restarts"])

        assert wait_for(lambda: restarts() >= 3, 30)
        log = Path(nv.log_path(name, "h1", "flaky")).read_text()
        assert log.count("starting flaky") >= 3 and "exited with status 3" in log
        # logs -f --tail 0: only what is appended from now on (flaky keeps restarting).
        follow = subprocess.Popen([sys.executable, "-c", NSLAB_MAIN, REPO, TESTS, "lab", "logs", name, "h1/flaky",
                                   "-f", "--tail", "0"], stdout=subprocess.PIPE, text=True, cwd=REPO)
        try:
            assert follow.stdout is not None
            seen = []
            for _ in range(2):  # a restart comes every few seconds: a wait of 30 s cannot be the pause
                assert select.select([follow.stdout], [], [], 30)[0], seen
                seen.append(follow.stdout.readline())
        finally:
            follow.kill()
            follow.wait()
        assert all(line.startswith(("==> nslab:", "try")) for line in seen), seen
        bad = cli("lab", "service", name, "h1/nope", "stop")
        assert bad.returncode == 2 and "no service 'nope'" in bad.stderr
    finally:
        lab.down()
    assert wait_for(lambda: not leftovers(name, netns), 10), leftovers(name, netns)


def test_a_service_never_ready_fails_up_and_rolls_back(tmp_path: Path) -> None:
    name = lab_name()
    path = tmp_path / "never.yaml"
    path.write_text(f"""\
name: {name}
nodes:
  h1:
    services:
      - name: mute
        cmd: "echo no port here; exec sleep 1000"
        ready: {{tcp: 9}}
        timeout: 1.5
  h2: {{}}
links:
  - [h1, h2]
""")
    up = cli("lab", "up", str(path))
    assert up.returncode == 1, up.stdout + up.stderr
    assert "service h1/mute: not ready after 1.5 s" in up.stderr and "no port here" in up.stderr, up.stderr
    assert "rolled back" in up.stderr
    assert leftovers(name, [f"{name}-h1", f"{name}-h2"]) == []
    assert Lab.running().count(name) == 0


def test_kill_9_of_the_supervisor_kills_every_service(topo_file: tuple[str, Path]) -> None:
    name, path = topo_file
    lab = Lab.from_file(path)
    lab.up()
    netns = [n.netns for n in lab.plan.nodes]
    with client.Client.connect(name) as c:
        pid = c.pid
        in_h2 = _pids_in(f"{name}-h2")
        assert len(in_h2) >= 3  # client, daemon, its setsid grandchild
        os.kill(pid, signal.SIGKILL)
    # The kernel ends the lab's pid namespace: every service, the escaped grandchild too.
    assert wait_for(lambda: not any(_pids_in(ns) for ns in netns), 10)
    st = cli("lab", "status", name)
    assert "supervisor gone" in st.stdout, st.stdout
    ex = cli("lab", "exec", name, "h1", "--", "hostname")
    assert ex.returncode == 1 and "supervisor gone" in ex.stderr
    with pytest.raises(NslabError, match="supervisor gone"):
        lab["h1"].run(["true"])
    # `up` of the degraded lab starts a new supervisor with new views and the services again.
    again = cli("lab", "up", str(path))
    assert again.returncode == 0 and "supervisor was gone" in again.stdout, again.stdout + again.stderr
    assert lab["h1"].run(["hostname"], capture_output=True, text=True).stdout.strip() == "h1"
    assert lab["h2"].run(["cat", "/run/got"], capture_output=True, text=True).stdout.strip() == "hi"
    assert cli("lab", "down", name).returncode == 0
    assert wait_for(lambda: not leftovers(name, netns), 10), leftovers(name, netns)


@pytest.mark.parametrize("seed", range(4))
def test_kill_9_of_lab_up_at_a_random_moment_leaves_nothing_after_down(topo_file: tuple[str, Path],
                                                                        seed: int) -> None:
    name, path = topo_file
    netns = [f"{name}-{n}" for n in ("h1", "h2", "r1")]
    delay = random.Random(seed).uniform(0.3, 3.0)
    proc = subprocess.Popen([sys.executable, "-c", NSLAB_MAIN, REPO, TESTS, "lab", "up", str(path), "-q"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.kill()
    proc.wait()
    # Killed before its commit (the record is saved "up" just before it), the `up` leaves a supervisor without
    # its lease, which ends its services and itself; the netns remain for down.
    rec = st.load(name)
    if rec is None or rec.status != "up":
        assert wait_for(lambda: not client.alive(name), 15), delay
        assert wait_for(lambda: not any(_pids_in(ns) for ns in netns), 10)
    down = cli("lab", "down", name)
    assert down.returncode == 0, down.stderr
    assert wait_for(lambda: not leftovers(name, netns), 10), (delay, leftovers(name, netns))


def test_a_crash_looping_service_fails_up_at_its_timeout(tmp_path: Path) -> None:
    name = lab_name()
    path = tmp_path / "loop.yaml"
    path.write_text(f"""\
name: {name}
nodes:
  h1:
    services:
      - name: loop
        cmd: "echo crashing; exit 3"
        ready: {{tcp: 8080}}
        restart: on-failure
        timeout: 2
links: []
""")
    up = cli("lab", "up", str(path))
    assert up.returncode == 1, up.stdout + up.stderr
    assert "service h1/loop: not ready after 2.0 s: it kept exiting (last status 3)" in up.stderr, up.stderr
    assert "crashing" in up.stderr
    assert leftovers(name, [f"{name}-h1"]) == []


def test_a_lab_removed_behind_its_back_takes_its_supervisor_and_directory(tmp_path: Path) -> None:
    """The nodes deleted by other means (`ip netns del`; apply.down alone): the supervisor notices, ends its
    services and exits instead of outliving its lab (and blocking the name's next up); with the record gone
    too, it removes the lab's directory itself."""
    name = lab_name()
    path = tmp_path / "gone.yaml"
    path.write_text(f"name: {name}\nnodes:\n  h1:\n    services:\n      - {{name: s, cmd: [sleep, '1000']}}\n"
                    f"  h2: {{}}\nlinks:\n  - [h1, h2]\n")
    lab = Lab.from_file(path)
    lab.up()
    netns = [n.netns for n in lab.plan.nodes]
    try:
        with client.Client.connect(name) as c:
            pid = c.pid
        for ns in netns:
            subprocess.run(["ip", "netns", "del", ns], check=True)
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 20)
        assert leftovers(name, netns) == [f"dir {nv.lab_dir(name)}"]  # the record remains: down's to remove
        assert cli("lab", "down", name).returncode == 0
        assert wait_for(lambda: not leftovers(name, netns), 10), leftovers(name, netns)
        lab.up()  # the name is free again: a fresh lab with a fresh supervisor
        assert lab["h1"].run(["hostname"], capture_output=True, text=True).stdout.strip() == "h1"
        rec = st.load(name)
        assert rec is not None
        apply.down(rec)  # namespaces and record, without the supervisor
        assert wait_for(lambda: not leftovers(name, netns), 20), leftovers(name, netns)
    finally:
        lab.down()
    assert wait_for(lambda: not leftovers(name, netns), 10), leftovers(name, netns)
