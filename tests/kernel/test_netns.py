"""Namespaces made by nslab and by iproute2, seen by both; deletion; exec with the namespace's /sys and /etc."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import (
    NSLAB_MAIN,
    REPO,
    TESTS,
    CliResult,
    NetnsFactory,
    ip,
    ip_netns_names,
    ipj,
    nslab_subprocess,
    our_netns_names,
    pids_in,
    wait_for,
)

from nslab.kernel import bulk
from nslab.kernel import netns as nslab_netns
from nslab.namespace import Namespace

pytestmark = pytest.mark.kernel

Cli = Callable[..., CliResult]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_nslab_namespace_is_an_iproute2_namespace(netns_factory: NetnsFactory) -> None:
    ns = netns_factory()
    assert ns.name in ip_netns_names()
    res = ip(None, "netns", "exec", ns.name, "ip", "-j", "link", "show")
    import json

    links = json.loads(res.stdout)
    assert [lk["ifname"] for lk in links] == ["lo"]  # a fresh namespace: only lo, and down
    assert "UP" not in links[0]["flags"]
    assert ns.name in Namespace.list()


def test_iproute2_namespace_is_listed_usable_and_deletable(netns_factory: NetnsFactory, cli: Cli) -> None:
    name = netns_factory.reserve()
    ip(None, "netns", "add", name)
    assert name in Namespace.list()
    res = cli("--json", "ns", "list")
    assert res.rc == 0 and {"name": name} in res.json()
    res = cli("ns", "list")
    assert name in res.out.split()

    assert cli("-n", name, "link", "set", "lo", "up").rc == 0
    (lo,) = ipj(name, "link", "show", "lo")
    assert "UP" in lo["flags"]

    res = cli("ns", "del", name)
    assert res.rc == 0, res.err
    assert name not in ip_netns_names()
    assert not os.path.lexists(f"/run/netns/{name}")
    assert name not in Namespace.list()


def test_delete_kills_processes_inside(netns_factory: NetnsFactory) -> None:
    ns = netns_factory()
    other = netns_factory()
    proc = ns.popen(["sleep", "1000"])
    bystander = other.popen(["sleep", "1000"])
    try:
        oracle = {int(p) for p in ip(None, "netns", "pids", ns.name).stdout.split()}
        assert proc.pid in oracle
        assert proc.pid in ns.pids()
        assert set(ns.pids()) == oracle
        ns.delete()
        assert proc.wait(timeout=5) in (-signal.SIGTERM, -signal.SIGKILL)
        assert _gone(proc.pid)
        assert ns.name not in ip_netns_names()
        assert bystander.poll() is None, "a process in another namespace was killed"
    finally:
        for p in (proc, bystander):
            if p.poll() is None:
                p.kill()
            p.wait()


def test_cli_ns_del_kills_processes_and_ns_pids_matches_ip(netns_factory: NetnsFactory, cli: Cli) -> None:
    ns = netns_factory()
    proc = ns.popen(["sleep", "1000"])
    try:
        ns.close()  # only the process keeps it alive now
        res = cli("--json", "ns", "pids", ns.name)
        assert res.rc == 0, res.err
        oracle = sorted(int(p) for p in ip(None, "netns", "pids", ns.name).stdout.split())
        assert res.json() == oracle and proc.pid in oracle
        res = cli("ns", "pids", ns.name)
        assert [int(x) for x in res.out.split()] == oracle

        res = cli("ns", "del", ns.name)
        assert res.rc == 0, res.err
        assert proc.wait(timeout=5) < 0
        assert ns.name not in ip_netns_names()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_ns_del_no_kill_leaves_process(netns_factory: NetnsFactory, cli: Cli) -> None:
    ns = netns_factory()
    proc = ns.popen(["sleep", "1000"])
    try:
        ns.close()
        assert cli("ns", "del", "--no-kill", ns.name).rc == 0
        assert ns.name not in ip_netns_names()
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def etc_netns_hosts(netns_factory: NetnsFactory) -> Iterator[tuple[Namespace, str]]:
    ns = netns_factory()
    made_top = not os.path.exists("/etc/netns")
    d = f"/etc/netns/{ns.name}"
    os.makedirs(d)
    text = f"10.9.8.7 only-in-{ns.name}\n"
    with open(f"{d}/hosts", "w") as f:
        f.write(text)
    try:
        yield ns, text
    finally:
        shutil.rmtree(d)
        if made_top and not os.listdir("/etc/netns"):
            os.rmdir("/etc/netns")


def test_ns_exec_sees_own_sys_and_etc_netns(etc_netns_hosts: tuple[Namespace, str]) -> None:
    ns, text = etc_netns_hosts
    assert ns.name is not None
    ns.add_bridge("nsbr0")
    with open("/etc/hosts") as f:
        host_hosts = f.read()

    res = nslab_subprocess(["ns", "exec", ns.name, "--", "ls", "/sys/class/net"])
    assert res.returncode == 0, res.stderr
    inside = set(res.stdout.split())
    assert inside == {lk["ifname"] for lk in ipj(ns.name, "link", "show")} == {"lo", "nsbr0"}

    res = nslab_subprocess(["ns", "exec", ns.name, "--", "cat", "/sys/class/net/nsbr0/ifindex"])
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) == ipj(ns.name, "link", "show", "nsbr0")[0]["ifindex"]

    res = nslab_subprocess(["ns", "exec", ns.name, "--", "cat", "/etc/hosts"])
    assert res.returncode == 0, res.stderr
    assert res.stdout == text

    # nothing leaked back to the host's mount namespace
    assert not os.path.exists("/sys/class/net/nsbr0")
    with open("/etc/hosts") as f:
        assert f.read() == host_hosts


def test_ns_exec_exit_status_and_missing_command(netns_factory: NetnsFactory) -> None:
    ns = netns_factory()
    assert ns.name is not None
    assert nslab_subprocess(["ns", "exec", ns.name, "--", "sh", "-c", "exit 7"]).returncode == 7
    res = nslab_subprocess(["ns", "exec", ns.name, "--", "no-such-program-xyz"])
    assert res.returncode == 2 and "no-such-program-xyz" in res.stderr


def test_add_existing_name_is_exit_2(netns_factory: NetnsFactory, cli: Cli) -> None:
    ns = netns_factory()
    before = our_netns_names()
    res = cli("ns", "add", ns.name)
    assert res.rc == 2
    assert "already exists" in res.err and ns.name in res.err and "hint:" in res.err
    assert our_netns_names() == before
    # the namespace itself is intact and still usable
    ns.link("lo").up()
    assert "UP" in ipj(ns.name, "link", "show", "lo")[0]["flags"]


def test_cli_ns_add_then_del(netns_factory: NetnsFactory, cli: Cli) -> None:
    name = netns_factory.reserve()
    assert cli("ns", "add", name).rc == 0
    assert name in ip_netns_names()
    (lo,) = ipj(name, "link", "show")
    assert lo["ifname"] == "lo" and "UP" not in lo["flags"]
    assert cli("ns", "del", name).rc == 0
    assert wait_for(lambda: name not in ip_netns_names())


@pytest.mark.parametrize("argv", [
    ["-n", "{typo}", "link", "show"],
    ["-n", "{typo}", "link", "set", "lo", "up"],
    ["link", "show", "-n", "{typo}"],
    ["-n", "{typo}", "addr", "add", "10.0.0.1/24", "dev", "lo"],
    ["-n", "{typo}", "route", "add", "10.1.0.0/24", "dev", "lo"],
    ["-n", "{typo}", "link", "add", "br9", "type", "bridge"],
    ["ns", "pids", "{typo}"],
    ["ns", "del", "{typo}"],
])
def test_mistyped_namespace_is_never_created(netns_factory: NetnsFactory, cli: Cli, argv: list[str]) -> None:
    typo = netns_factory.reserve()  # booked, never made: cleanup would catch it if nslab made it
    before = our_netns_names()
    res = cli(*[a.replace("{typo}", typo) for a in argv])
    assert res.rc == 2
    assert typo in res.err and "does not exist" in res.err
    assert our_netns_names() == before and typo not in ip_netns_names()
    assert not os.path.lexists(f"/run/netns/{typo}")


def test_mistyped_namespace_in_exec_and_netns_move(netns_factory: NetnsFactory, cli: Cli) -> None:
    ns = netns_factory()
    ns.add_bridge("br0")
    typo = netns_factory.reserve()
    before = our_netns_names()
    res = cli("-n", ns.name, "link", "set", "br0", "up", "netns", typo)
    assert res.rc == 2 and typo in res.err
    assert "UP" not in ipj(ns.name, "link", "show", "br0")[0]["flags"]  # nothing half-done
    res2 = nslab_subprocess(["ns", "exec", typo, "--", "true"])
    assert res2.returncode == 2 and typo in res2.stderr
    assert our_netns_names() == before and typo not in ip_netns_names()


def test_ns_del_with_one_unknown_name_deletes_nothing(netns_factory: NetnsFactory, cli: Cli) -> None:
    ns = netns_factory()
    typo = netns_factory.reserve()
    res = cli("ns", "del", ns.name, typo)
    assert res.rc == 2 and typo in res.err
    assert ns.name in ip_netns_names()


def test_context_manager_deletes(netns_factory: NetnsFactory) -> None:
    name = netns_factory.reserve()
    with Namespace.create(name) as ns:
        proc = ns.popen(["sleep", "1000"])
        assert name in ip_netns_names()
    try:
        assert name not in ip_netns_names()
        assert proc.wait(timeout=5) < 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_open_attaches_without_deleting(netns_factory: NetnsFactory) -> None:
    name = netns_factory.reserve()
    ip(None, "netns", "add", name)
    with Namespace.open(name) as ns:
        ns.link("lo").up()
    assert name in ip_netns_names()
    assert "UP" in ipj(name, "link", "show", "lo")[0]["flags"]


# ---- nslab's own long-running commands for a namespace live in it ------------------------------------
def _listener(name: str) -> subprocess.Popen[str]:
    """`nslab -n NAME probe listen 0` as the README runs it (`... &`), once it listens."""
    p = subprocess.Popen([sys.executable, "-c", NSLAB_MAIN, REPO, TESTS, "-n", name, "probe", "listen", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.startswith("Listening on 0.0.0.0 "), (line, p.poll())
    return p


def test_probe_listen_in_a_namespace_is_its_process_and_ns_del_ends_it(netns_factory: NetnsFactory,
                                                                       cli: Cli) -> None:
    ns = netns_factory()
    ns.close()
    p = _listener(ns.name)
    try:
        # The oracle: iproute2 sees the listener as a process of the namespace, and so does nslab.
        assert p.pid in [int(x) for x in ip(None, "netns", "pids", ns.name).stdout.split()]
        res = cli("--json", "ns", "pids", ns.name)
        assert res.rc == 0 and p.pid in res.json(), res
        # Held open by this test, so that its inode number cannot go to a new namespace meanwhile.
        fd = os.open(f"/run/netns/{ns.name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            res = cli("ns", "del", ns.name)
            assert res.rc == 0, res.err
            assert p.wait(timeout=5) == 143  # ended by SIGTERM, through the CLI's ordinary exit path
            assert p.stderr is not None and p.stderr.read().strip() == "nslab: terminated (SIGTERM)"
            assert ns.name not in ip_netns_names()
            # No process has it as its network namespace any more.
            st = os.fstat(fd)
            assert pids_in({(st.st_dev, st.st_ino)}) == []
        finally:
            os.close(fd)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()






def test_in_process_probe_with_n_returns_to_its_own_namespace(netns_factory: NetnsFactory, cli: Cli) -> None:
    """The CLI called as a function (tests, embedding) must not leave the caller in NS."""
    ns = netns_factory()
    home = os.stat("/proc/thread-self/ns/net").st_ino
    assert cli("-n", ns.name, "probe", "connect", "127.0.0.1", "9").rc == 1
    assert os.stat("/proc/thread-self/ns/net").st_ino == home
    with pytest.raises(ZeroDivisionError), nslab_netns.entered(ns.name):
        assert os.stat("/proc/thread-self/ns/net").st_ino == os.stat(f"/run/netns/{ns.name}").st_ino
        1 / 0  # noqa: B018
    assert os.stat("/proc/thread-self/ns/net").st_ino == home


def test_probe_connect_hint_names_the_namespace(netns_factory: NetnsFactory, cli: Cli) -> None:
    ns = netns_factory()
    res = cli("-n", ns.name, "probe", "connect", "127.0.0.1", "8900")
    assert res.rc == 1 and f"nslab -n {ns.name} link set lo up" in res.err, res.err


# ---- what an interrupt or kill -9 may leave: a name with no namespace mounted on it ----------------------
def _make_stale(netns_factory: NetnsFactory) -> str:
    """/run/netns/NAME as a delete cut between its umount and its unlink leaves it (a kill -9 can)."""
    ns = netns_factory()
    ns.close()
    nslab_netns.umount(nslab_netns.path(ns.name))
    assert nslab_netns.stale(ns.name) and not os.path.ismount(nslab_netns.path(ns.name))
    return str(ns.name)


def test_bulk_delete_removes_a_stale_name_it_was_given(netns_factory: NetnsFactory) -> None:
    """A lab's rollback retried after such a cut: the name must not stay (it made every later `lab up` of
    the lab refuse, and `lab down` no longer knew it)."""
    name = _make_stale(netns_factory)
    assert bulk.delete([name]) == []
    assert not os.path.lexists(nslab_netns.path(name))


def test_ns_del_removes_a_stale_name_and_ns_add_explains_it(netns_factory: NetnsFactory, cli: Cli) -> None:
    name = _make_stale(netns_factory)
    res = cli("ns", "add", name)
    assert res.rc == 2 and "no namespace is mounted on it" in res.err and f"nslab ns del {name}" in res.err, res.err
    res = cli("ns", "del", name)
    assert res.rc == 0 and "leftover" in res.err, res.err
    assert not os.path.lexists(nslab_netns.path(name))
    res = cli("ns", "add", name)  # the name is usable again
    assert res.rc == 0, res.err


def test_delete_and_create_are_shielded_from_ctrl_c(netns_factory: NetnsFactory,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT sent to ourselves in the middle of create and of delete: each finishes, then it is raised."""
    name = netns_factory.reserve()

    def inside() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # from the door thread, in the middle of the create
        time.sleep(0.05)

    with pytest.raises(KeyboardInterrupt):
        nslab_netns.create(name, then=inside)
    assert name in ip_netns_names()  # whole: the interrupt came after it was done
    real_umount = nslab_netns.umount

    def umount_then_interrupt(target: str, flags: int = nslab_netns.MNT_DETACH) -> None:
        real_umount(target, flags)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)

    monkeypatch.setattr(nslab_netns, "umount", umount_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        nslab_netns.delete(name)
    monkeypatch.undo()
    assert not os.path.lexists(nslab_netns.path(name))  # unlinked too, not left unmounted but present


def test_lab_capture_is_a_process_of_its_node_and_lab_down_ends_it() -> None:
    from conftest import lab_name

    lab = lab_name()
    up = nslab_subprocess(["lab", "up", "--topo", "single,2", "--name", lab])
    assert up.returncode == 0, up.stderr
    p = subprocess.Popen([sys.executable, "-c", NSLAB_MAIN, REPO, TESTS, "lab", "capture", lab, "h1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert p.stderr is not None and p.stderr.readline().startswith("capturing on h1:"), p.poll()
        node = f"{lab}-h1"
        assert wait_for(lambda: p.pid in [int(x) for x in ip(None, "netns", "pids", node).stdout.split()])
        down = nslab_subprocess(["lab", "down", lab])
        assert down.returncode == 0, down.stderr
        assert p.wait(timeout=5) == 0  # tcpdump-like: SIGTERM ends the capture with its summary
        assert "packets captured on h1:" in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        nslab_subprocess(["lab", "down", lab])
