"""The per-lab supervisor (docs/nodes.md): one small single-threaded process per lab, pid 1 of the lab's pid
namespace, serving JSON lines on the abstract unix socket `@nslab/UID/LAB`.

It holds the nodes' views (their uts and mount namespaces, as fds), runs the lab's services (start in
dependency order, readiness, restart on failure, logs, stop), and reaps every orphan of the lab (it is their
init). Its death, kill -9 included, makes the kernel kill every process of the lab's pid namespace and frees
the views: only the network namespaces remain, which `lab down` removes.

Started by `lab up` (client.start): `python -m nslab.lab.supervisor LAB FD` in a new session; this first
process unshares a pid namespace, forks pid 1 and exits. FD is the *lease*, a socket to the `up` that started
it: on EOF before `up.commit` (that `up` failed or was killed) the supervisor stops everything and exits.

Protocol (one JSON object a line; replies carry the request's id; fds travel as SCM_RIGHTS):
  hello | ping | up.commit | view.create {nodes: [{node, netns, mounts}]} | view.fds {node} -> fds
  svc.up {services: [...]} (events {"event":"service",...} until all are ready or one fails)
  svc.ps | svc.stop|svc.start|svc.restart {node, name} | down (stops services, replies, exits)
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ..kernel import nsops
from . import nodeview as nv

VERSION = 1
GRACE_S = 5.0  # SIGTERM, then SIGKILL after this long (as `lab down` does for other processes)
POLL_S = 0.1  # readiness checks
SETTLE_S = 0.5  # a service without `ready` is ready once it has run this long (one that exits at once fails)
WATCH_S = 2.0  # how often an idle supervisor checks that its lab's namespaces still exist
_UCRED = struct.Struct("3i")


def address(lab: str, uid: int | None = None) -> str:
    """The abstract socket name (no file; it vanishes with the process)."""
    return f"\0nslab/{os.getuid() if uid is None else uid}/{lab}"


def _tail(path: str, n: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "backslashreplace").splitlines()[-n:])


class Reply(Exception):
    """An error answered to the client: exit status and message (and a hint)."""

    def __init__(self, message: str, hint: str | None = None, exit: int = 1) -> None:
        super().__init__(message)
        self.message, self.hint, self.exit = message, hint, exit


@dataclass
class Conn:
    sock: socket.socket
    buf: bytes = b""
    lease: bool = False

    def send(self, obj: dict[str, Any], fds: list[int] | None = None) -> None:
        data = (json.dumps(obj) + "\n").encode()
        try:
            self.sock.setblocking(True)
            if fds:
                socket.send_fds(self.sock, [data], fds)
            else:
                self.sock.sendall(data)
        except OSError:
            pass  # a client that left: its connection is closed on the next read
        finally:
            self.sock.setblocking(False)


@dataclass
class Service:
    spec: dict[str, Any]
    state: str = "pending"  # pending | starting | ready | running | exited | failed | stopping | stopped
    pid: int | None = None
    restarts: int = 0
    status: int | None = None  # last exit status (negative: signal)
    since: float = field(default_factory=time.time)
    deadline: float = 0.0
    log_offset: int = 0
    probe_pid: int | None = None
    next_probe: float = 0.0
    stop_at: float | None = None  # SIGKILL time while stopping
    want: str = "up"  # up | stopped: what the user asked for
    waiters: list[tuple[Conn, Any]] = field(default_factory=list)
    error: str | None = None
    settle_at: float = 0.0  # without `ready`: when a still-running start counts as ready
    ready_once: bool = False  # restarts before the first readiness keep the first start's deadline

    @property
    def key(self) -> str:
        return f"{self.spec['node']}/{self.spec['name']}"

    def to_json(self) -> dict[str, Any]:
        return {"node": self.spec["node"], "name": self.spec["name"], "state": self.state, "pid": self.pid,
                "restarts": self.restarts, "status": self.status, "since": round(self.since, 3),
                "cmd": self.spec["cmd"], "ready": self.spec.get("ready"), "log": self.spec["log"],
                "error": self.error}


class Supervisor:
    def __init__(self, lab: str, lease: socket.socket) -> None:
        self.lab = lab
        self.uid = os.getuid()
        self.hostpid = int(os.readlink("/proc/self"))
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}
        self.views: dict[str, dict[str, int]] = {}
        self.netns: dict[str, str] = {}  # node -> its namespace's name under /run/netns (the watchdog's)
        self.next_watch = 0.0
        self.orphaned = False  # the watchdog found the lab gone: its directory goes with us
        self.services: dict[str, Service] = {}
        self.order: list[str] = []
        self.batches: list[tuple[Conn, Any, list[str]]] = []  # svc.up requests waiting for readiness
        self.committed = False
        self.exiting: tuple[Conn, Any] | None = None
        self.home = {k: os.open(f"/proc/self/ns/{k}", os.O_RDONLY | os.O_CLOEXEC) for k in ("net", "mnt", "uts")}
        self.pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.tmpl = self._template()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.listener.bind(address(lab))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self.lease = Conn(lease, lease=True)
        lease.setblocking(False)
        self.conns[lease.fileno()] = self.lease
        self.sel.register(lease, selectors.EVENT_READ, "conn")
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake = r
        signal.set_wakeup_fd(w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.sel.register(r, selectors.EVENT_READ, "wake")

    # ---- views -------------------------------------------------------------------------------------
    def _template(self) -> int:
        """A private copy of the host's mount table without /sys and the namespace mounts, made once: every
        view is cut from it (a per-node copy of the host's table would be O(mounts) per node)."""
        nsops.unshare(nsops.CLONE_NEWNS)
        nsops.mount("none", "/", None, nsops.MS_REC | nsops.MS_PRIVATE)
        for target in ("/run/netns", "/sys"):
            try:
                nsops.umount(target)
            except OSError:
                pass
        with open("/proc/self/mountinfo") as f:
            nsfs = [line.split()[4] for line in f if " - nsfs " in line]
        for target in reversed(nsfs):
            try:
                nsops.umount(target)
            except OSError:
                pass
        fd = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        nsops.setns(self.home["mnt"], nsops.CLONE_NEWNS)
        return fd

    def _view(self, node: str, netns: str, mounts: list[list[str]]) -> None:
        if node in self.views:
            raise Reply(f"node {node!r} has a view already")
        net = os.open(os.path.join("/run/netns", netns), os.O_RDONLY | os.O_CLOEXEC)
        held: list[int] = []
        try:
            nsops.setns(net, nsops.CLONE_NEWNET)
            nsops.setns(self.tmpl, nsops.CLONE_NEWNS)
            nsops.unshare(nsops.CLONE_NEWNS | nsops.CLONE_NEWUTS)
            nsops.sethostname(node)
            nsops.mount("sysfs", "/sys", "sysfs", 0)
            nsops.mount("proc", "/proc", "proc", nsops.MS_NOSUID | nsops.MS_NODEV | nsops.MS_NOEXEC)
            for kind, source, target in mounts:
                if kind == "overlay":
                    work = os.path.join(nv.node_dir(self.lab, node), "work", target.lstrip("/"))
                    os.makedirs(work, exist_ok=True)
                    nsops.mount("overlay", target, "overlay", 0, f"lowerdir={target},upperdir={source},workdir={work}")
            # Bind sources are opened before the first bind: a private /run covers /run/nslab/labs.
            binds = [(os.open(s, os.O_PATH | os.O_CLOEXEC), t) for k, s, t in mounts if k == "bind"]
            held.extend(fd for fd, _ in binds)
            for fd, target in binds:
                nsops.mount(f"/proc/self/fd/{fd}", target, None, nsops.MS_BIND)
            mnt = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            uts = os.open("/proc/self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            os.close(net)
            raise
        finally:
            for fd in held:
                os.close(fd)
            nsops.setns(self.home["mnt"], nsops.CLONE_NEWNS)
            nsops.setns(self.home["uts"], nsops.CLONE_NEWUTS)
            nsops.setns(self.home["net"], nsops.CLONE_NEWNET)
        self.views[node] = {"net": net, "uts": uts, "mnt": mnt}
        self.netns[node] = netns

    # ---- processes ------------------------------------------------------------------------------------
    def _spawn(self, node: str, argv: list[str], env: dict[str, str], cwd: str, out: int) -> int:
        """Start a program in NODE's view, in a session of its own (its process group is what stop kills).

        posix_spawn (vfork: 5x cheaper than forking this process) from inside the view: the supervisor joins
        the node's net, uts and mount namespaces around the call (it is single-threaded), and is already in
        the lab's pid namespace, of which it is init."""
        view = self.views[node]
        nsops.setns(view["net"], nsops.CLONE_NEWNET)
        nsops.setns(view["uts"], nsops.CLONE_NEWUTS)
        nsops.setns(view["mnt"], nsops.CLONE_NEWNS)
        try:
            prog = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env.get("PATH", os.defpath))
            if prog is None:
                raise Reply(f"cannot start {argv[0]!r}: not found in PATH {env.get('PATH', os.defpath)}")
            try:
                os.chdir(cwd)
            except OSError as exc:
                raise Reply(f"cannot start {argv[0]!r}: cwd {cwd}: {exc.strerror}") from None
            try:
                return os.posix_spawn(prog, argv, env, setsid=True, setsigmask=(),
                                      file_actions=[(os.POSIX_SPAWN_DUP2, self.devnull, 0),
                                                    (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, out, 2)])
            except OSError as exc:
                raise Reply(f"cannot start {argv[0]!r}: {exc.strerror}") from None
        finally:
            os.chdir("/")
            nsops.setns(self.home["mnt"], nsops.CLONE_NEWNS)
            nsops.setns(self.home["uts"], nsops.CLONE_NEWUTS)
            nsops.setns(self.home["net"], nsops.CLONE_NEWNET)

    def _start(self, svc: Service) -> None:
        spec = svc.spec
        os.makedirs(os.path.dirname(spec["log"]), exist_ok=True)
        log = os.open(spec["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            os.write(log, f"==> nslab: {stamp} starting {spec['name']}: {' '.join(spec['cmd'])}\n".encode())
            svc.log_offset = os.fstat(log).st_size  # a log regex sees the program's output, not our header
            svc.pid = self._spawn(spec["node"], spec["cmd"], spec["env"], spec["cwd"], log)
        except Reply as exc:
            os.write(log, f"==> nslab: {exc.message}\n".encode())
            svc.state, svc.error, svc.pid = "failed", exc.message, None
            self._settled(svc)
            return
        finally:
            os.close(log)
        restarting = svc.state == "restarting"
        svc.state, svc.since, svc.status, svc.error = "starting", time.time(), None, None
        if svc.ready_once or not restarting:
            svc.deadline = time.monotonic() + float(spec["timeout"])
        svc.next_probe = 0.0
        if not spec.get("ready") and spec["restart"] == "on-failure":  # its restarts are what was asked for
            svc.state, svc.ready_once = "ready", True
            self._settled(svc)
        elif not spec.get("ready"):  # ready once it has run SETTLE_S (bounded by its timeout): see _tick
            svc.settle_at = time.monotonic() + min(SETTLE_S, float(spec["timeout"]) / 2)

    def _probe(self, svc: Service) -> bool | None:
        """Readiness: True ready, False not yet, None a probe is running (cmd)."""
        ready = svc.spec["ready"]
        node = svc.spec["node"]
        if "tcp" in ready or "udp" in ready:
            proto, want = ("tcp", "0A") if "tcp" in ready else ("udp", "07")
            port = int(ready[proto])
            nsops.setns(self.views[node]["net"], nsops.CLONE_NEWNET)
            try:
                for table in (proto, proto + "6"):
                    try:
                        with open(f"/proc/self/net/{table}") as f:
                            next(f)
                            for line in f:
                                cols = line.split()
                                if cols[3] == want and int(cols[1].rsplit(":", 1)[1], 16) == port:
                                    return True
                    except OSError:
                        continue
            finally:
                nsops.setns(self.home["net"], nsops.CLONE_NEWNET)
            return False
        if "log" in ready:
            try:
                with open(svc.spec["log"], "rb") as f:
                    f.seek(svc.log_offset)
                    text = f.read(4 << 20).decode("utf-8", "replace")
            except OSError:
                return False
            return re.search(ready["log"], text, re.MULTILINE) is not None
        if svc.probe_pid is not None:
            return None
        cmd = ready["cmd"]
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        try:
            svc.probe_pid = self._spawn(node, argv, svc.spec["env"], svc.spec["cwd"], self.devnull)
        except Reply:
            return False
        return None

    def _kill(self, svc: Service, sig: int) -> None:
        if svc.pid is not None:
            try:
                os.killpg(svc.pid, sig)
            except ProcessLookupError:
                pass

    def _stop(self, svc: Service, grace: float = GRACE_S) -> None:
        svc.want = "stopped"
        if svc.pid is None:
            if svc.state not in ("failed", "exited"):
                svc.state = "stopped"
            return
        svc.state = "stopping"
        self._kill(svc, signal.SIGTERM)
        svc.stop_at = time.monotonic() + grace

    def _exited(self, pid: int, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        for svc in self.services.values():
            if svc.probe_pid == pid:
                svc.probe_pid = None
                if code == 0 and svc.state == "starting":
                    svc.state, svc.ready_once = "ready", True
                    self._settled(svc)
                return
            if svc.pid != pid:
                continue
            self._kill(svc, signal.SIGKILL)  # what the leader left in its group
            svc.pid, svc.status, svc.since, svc.stop_at = None, code, time.time(), None
            self._log(svc, f"exited with status {code}" if code >= 0 else f"killed by signal {-code}")
            if svc.want == "stopped":
                if svc.state != "failed":
                    svc.state = "stopped"
                self._answer_stop(svc)
            elif svc.spec["restart"] == "on-failure" and code != 0 and (
                    svc.state != "starting" or time.monotonic() < svc.deadline):
                svc.restarts += 1
                delay = min(5.0, 0.2 * 2 ** min(svc.restarts, 5))
                svc.state = "restarting"
                svc.next_probe = time.monotonic() + delay
            else:
                was_starting = svc.state == "starting"
                svc.state = "failed" if code != 0 or was_starting else "exited"
                if was_starting:
                    svc.error = f"exited with status {code} before it was ready"
                    self._settled(svc)
            return

    def _log(self, svc: Service, text: str) -> None:
        try:
            with open(svc.spec["log"], "a") as f:
                f.write(f"==> nslab: {time.strftime('%Y-%m-%d %H:%M:%S')} {svc.spec['name']} {text}\n")
        except OSError:
            pass

    def _answer_stop(self, svc: Service) -> None:
        for conn, rid in svc.waiters:
            conn.send({"id": rid, "ok": True, "result": svc.to_json()})
        svc.waiters.clear()

    def _settled(self, svc: Service) -> None:
        """A service became ready or failed: tell the waiting svc.up and start what waited on it."""
        for conn in {id(c): c for c, _, _ in self.batches}.values():
            conn.send({"event": "service", **svc.to_json()})
        if svc.state == "failed":
            for conn, rid, keys in list(self.batches):
                if svc.key in keys:
                    self.batches.remove((conn, rid, keys))
                    conn.send({"id": rid, "ok": False, "error": {
                        "exit": 1, "service": svc.key, "log_tail": _tail(svc.spec["log"], 20),
                        "message": f"service {svc.key}: {svc.error or 'failed'}"}})
            return
        self._schedule()

    def _schedule(self) -> None:
        """Start every pending service whose `after` are all ready; answer the svc.up that are complete."""
        for key in self.order:
            svc = self.services[key]
            if svc.state == "pending" and svc.want == "up" and all(
                    self.services[a].state in ("ready", "running") for a in svc.spec["after"]):
                self._start(svc)
        for conn, rid, keys in list(self.batches):
            if (conn, rid, keys) in self.batches and all(
                    self.services[k].state in ("ready", "running") for k in keys):
                self.batches.remove((conn, rid, keys))
                conn.send({"id": rid, "ok": True, "result": {"services": len(keys)}})

    def _tick(self) -> None:
        now = time.monotonic()
        for svc in list(self.services.values()):
            if svc.state == "stopping" and svc.stop_at is not None and now >= svc.stop_at:
                self._kill(svc, signal.SIGKILL)
                svc.stop_at = None
            elif svc.state == "restarting" and not svc.ready_once and now >= svc.deadline:
                svc.error = f"not ready after {svc.spec['timeout']} s: it kept exiting (last status {svc.status})"
                self._log(svc, svc.error)
                svc.want, svc.state = "stopped", "failed"
                self._settled(svc)
            elif svc.state == "restarting" and now >= svc.next_probe:
                self._start(svc)
            elif svc.state == "starting":
                if now >= svc.deadline:
                    svc.error = f"not ready after {svc.spec['timeout']} s (ready: {json.dumps(svc.spec['ready'])})"
                    self._log(svc, svc.error)
                    self._kill(svc, signal.SIGKILL)
                    svc.want, svc.state = "stopped", "failed"
                    self._settled(svc)
                elif not svc.spec.get("ready"):
                    if now >= svc.settle_at:
                        svc.state, svc.ready_once = "ready", True
                        self._settled(svc)
                elif now >= svc.next_probe:
                    svc.next_probe = now + POLL_S
                    if self._probe(svc):
                        svc.state, svc.ready_once = "ready", True
                        self._settled(svc)
            elif svc.state == "ready" and svc.pid is not None:
                svc.state = "running"

    # ---- requests -----------------------------------------------------------------------------------
    def _find(self, req: dict[str, Any]) -> Service:
        key = f"{req.get('node')}/{req.get('name')}"
        if key not in self.services:
            known = ", ".join(self.order) or "none"
            raise Reply(f"lab {self.lab}: no service {key}", f"services: {known}", exit=2)
        return self.services[key]

    def handle(self, conn: Conn, req: dict[str, Any]) -> None:
        rid, op = req.get("id"), req.get("op")
        result: Any = None
        fds: list[int] = []
        if op == "hello" or op == "ping":
            result = {"lab": self.lab, "pid": os.getpid(), "hostpid": self.hostpid, "version": VERSION,
                      "committed": self.committed, "views": len(self.views), "services": len(self.services),
                      "rss_kb": _rss_kb()}
        elif op == "up.commit":
            self.committed = True
        elif op == "view.create":
            for item in req["nodes"]:
                self._view(item["node"], item["netns"], item.get("mounts", []))
            result = {"views": len(self.views)}
        elif op == "view.fds":
            node = req.get("node")
            if node not in self.views:
                raise Reply(f"lab {self.lab}: node {node!r} has no view", exit=2)
            fds = [self.views[node]["net"], self.views[node]["uts"], self.views[node]["mnt"], self.pidns]
            result = {"fds": ["net", "uts", "mnt", "pid"]}
        elif op == "svc.up":
            keys = []
            for spec in req["services"]:
                key = f"{spec['node']}/{spec['name']}"
                if key not in self.services:
                    self.services[key] = Service(spec)
                    self.order.append(key)
                keys.append(key)
            self.batches.append((conn, rid, keys))
            self._schedule()
            return  # answered by _schedule once all are ready, or by _settled when one fails
        elif op == "svc.ps":
            result = [self.services[k].to_json() for k in self.order]
        elif op in ("svc.stop", "svc.restart", "svc.start"):
            svc = self._find(req)
            if op != "svc.stop":  # what it waits for must be up: say which is not (before stopping it)
                for a in svc.spec["after"]:
                    dep = self.services[a]
                    if dep.state not in ("ready", "running", "starting"):
                        raise Reply(f"service {svc.key}: its dependency {a} is {dep.state}",
                                    f"start it first: nslab lab service {self.lab} {a} start")
            if op in ("svc.stop", "svc.restart") and svc.pid is not None:
                self._stop(svc)
                if op == "svc.stop":
                    svc.waiters.append((conn, rid))
                    return
                deadline = time.monotonic() + GRACE_S + 2
                while svc.pid is not None and time.monotonic() < deadline:  # restart: wait here for the exit
                    time.sleep(0.02)
                    self._reap()
                    self._tick()
            if op != "svc.stop":
                svc.want = "up"
                if svc.pid is None:
                    self._start(svc)
                if svc.state == "failed":
                    raise Reply(f"service {svc.key}: {svc.error}")
            else:
                svc.want, svc.state = "stopped", "stopped" if svc.state not in ("failed", "exited") else svc.state
            result = svc.to_json()
        elif op == "down":
            for svc in self.services.values():
                self._stop(svc, float(req.get("grace", GRACE_S)))
            self.exiting = (conn, rid)
            return
        else:
            raise Reply(f"unknown op {op!r}", exit=2)
        conn.send({"id": rid, "ok": True, "result": result}, fds)

    def _read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        conn.buf += data
        while b"\n" in conn.buf:
            line, conn.buf = conn.buf.split(b"\n", 1)
            try:
                req = json.loads(line)
                if not isinstance(req, dict):
                    raise Reply("a request is a JSON object", exit=2)
                self.handle(conn, req)
            except Reply as exc:
                conn.send({"id": req.get("id") if isinstance(req, dict) else None, "ok": False,
                           "error": {"exit": exc.exit, "message": exc.message, "hint": exc.hint}})
            except (ValueError, KeyError, TypeError, OSError) as exc:
                conn.send({"id": None, "ok": False, "error": {"exit": 1, "message": f"{type(exc).__name__}: {exc}"}})

    def _close(self, conn: Conn) -> None:
        self.sel.unregister(conn.sock)
        del self.conns[conn.sock.fileno()]
        conn.sock.close()
        self.batches = [b for b in self.batches if b[0] is not conn]
        if conn.lease and not self.committed and self.exiting is None:
            # The `up` that started us is gone before committing: undo everything.
            for svc in self.services.values():
                self._stop(svc, 1.0)
            self.exiting = (conn, None)

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        _, uid, _ = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        if uid != self.uid:  # another user: no access to this lab
            sock.close()
            return
        sock.setblocking(False)
        self.conns[sock.fileno()] = Conn(sock)
        self.sel.register(sock, selectors.EVENT_READ, "conn")

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._exited(pid, status)

    def _watch(self) -> None:
        """The lab was removed without us (its namespaces deleted by other means: `ip netns del`, a test, an
        older nslab): stop the services and exit rather than outlive it."""
        now = time.monotonic()
        if now < self.next_watch or not self.committed or not self.netns or self.exiting:
            return
        self.next_watch = now + WATCH_S
        if not any(os.path.lexists(os.path.join("/run/netns", ns)) for ns in self.netns.values()):
            for svc in self.services.values():
                self._stop(svc, 1.0)
            self.exiting = (self.lease, None)
            self.orphaned = True

    def run(self) -> None:
        self.lease.send({"event": "ready", "pid": os.getpid(), "hostpid": self.hostpid})
        while True:
            timeout = POLL_S if any(s.state in ("starting", "stopping", "restarting")
                                    for s in self.services.values()) or self.exiting else WATCH_S
            for key, _ in self.sel.select(timeout):
                if key.data == "listen":
                    self._accept()
                elif key.data == "wake":
                    try:
                        while os.read(self.wake, 512):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    conn = self.conns.get(key.fd)
                    if conn is not None:
                        self._read(conn)
            self._reap()
            self._tick()
            self._watch()
            if self.exiting and all(s.pid is None for s in self.services.values()):
                conn, rid = self.exiting
                if rid is not None:
                    conn.send({"id": rid, "ok": True, "result": {"stopped": len(self.services)}})
                if self.orphaned and not os.path.exists(os.path.join(nv.LABS_DIR, f"{self.lab}.json")):
                    shutil.rmtree(nv.lab_dir(self.lab), ignore_errors=True)
                os._exit(0)  # pid 1 exits: the kernel kills the rest of the pid namespace


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main(argv: list[str]) -> int:
    lab, lease_fd = argv[0], int(argv[1])
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    os.set_inheritable(lease_fd, False)
    lease = socket.socket(fileno=lease_fd)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 3 fds per node
    nsops.unshare(nsops.CLONE_NEWPID)
    if os.fork() != 0:
        os._exit(0)  # the starter reaps us; pid 1 lives on, a child of init
    os.chdir("/")
    try:
        sup = Supervisor(lab, lease)
    except OSError as exc:
        what = "another supervisor serves this lab" if exc.errno == errno.EADDRINUSE else str(exc)
        Conn(lease).send({"event": "error", "message": what})
        os._exit(1)
    sup.run()
    return 0


if __name__ == "__main__":
    # Started as a program: nothing of nslab but this module and nodeview is imported.
    sys.exit(main(sys.argv[1:]))
