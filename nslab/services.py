"""Services: long-running programs in lab nodes, with their output captured to a per-node log.

    from nslab.services import start
    web = start(lab, "h2", "web", ["python3", "-m", "http.server", "8000"], ready_port=8000)
    ...
    web.restart(); web.stop()

- Each service runs in its node (`LabNode.popen`: the node's view, docs/nodes.md), in a session and process
  group of its own, so `stop` reaches its children too. It lives as long as this process: services that
  outlive it, with restarts and readiness by port, command or log, are declared in the topology file and
  run by the lab's supervisor (docs/services.md).
- stdout and stderr go, interleaved, to `/run/nslab/logs/LAB/NODE/NAME.log` (appended: a restart adds to
  the same file, after a `==> nslab:` line saying what started when). /run is a tmpfs, like /run/netns.
- Readiness is a TCP connect to 127.0.0.1:PORT made from inside the node's namespace, so it needs no route
  and never leaves the node; the program must listen on 0.0.0.0, :: or 127.0.0.1.
- `lab down` kills every process in the lab's namespaces, services included; `remove_logs(lab)` deletes the
  lab's logs (down calls it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import nodes, probe
from .errors import NotFoundError, NslabError, UsageError

if TYPE_CHECKING:
    from .lab.view import LabView

LOG_ROOT = "/run/nslab/logs"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_POLL_S = 0.05

# Every service this process started, by lab name, in start order.
_STARTED: dict[str, list[Service]] = {}


def log_dir(lab_name: str) -> Path:
    """The directory of LAB's service logs: one subdirectory per node, one `NAME.log` per service."""
    return Path(LOG_ROOT) / lab_name


def check_service_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(
            f"service name {name!r} is not valid",
            "use 1 to 64 letters, digits, '_', '.' or '-', not starting with '.' or '-' (it names the log file)",
        )
    return name


class Service:
    """A program started by `start` in one node of a lab. Use `start` to make one."""

    def __init__(
        self,
        lab: LabView,
        node: str,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        ready_port: int | None = None,
        ready_timeout: float = 10.0,
        resolve: bool = True,
    ) -> None:
        self.lab = lab
        self.node = node
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ready_port = ready_port
        self.ready_timeout = ready_timeout
        self.resolve = resolve
        self.log_path = log_dir(lab.name) / node / f"{name}.log"
        self._proc: subprocess.Popen[Any] | None = None

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"Service({self.lab.name!r}, {self.node!r}, {self.name!r}, {state})"

    @property
    def where(self) -> str:
        return f"service {self.name!r} in node {self.node!r} of lab {self.lab.name!r}"

    # ---- state ----------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The process id while it runs (also its process group id), else None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it ended (negative: killed by that signal), None while it runs."""
        return None if self._proc is None else self._proc.poll()

    def log_tail(self, n: int = 20) -> str:
        """The last n lines of the log ('' if there is none yet)."""
        return tail(self.log_path, n)

    # ---- life cycle -----------------------------------------------------------------------------
    def _spawn(self) -> None:
        netns = self.lab.plan.node(self.node).netns
        if not os.path.lexists(f"/run/netns/{netns}"):
            raise NotFoundError(
                f"cannot start {self.where}: the lab is not up (no namespace {netns!r})",
                "bring the lab up first: lab.up(), or 'nslab lab up'",
            )
        self.log_path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        # Python buffers stdout written to a file: a Python service's prints would reach its log only when
        # the buffer fills or the program exits. Unbuffered unless the environment or env= says otherwise.
        env = {"PYTHONUNBUFFERED": "1", **os.environ, **(self.env or {})}
        with open(self.log_path, "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"==> nslab: {stamp} starting {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self._proc = nodes.popen(
                    self.lab,
                    self.node,
                    self.argv,
                    self.resolve,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.cwd,
                    start_new_session=True,
                )
            except FileNotFoundError as exc:
                raise UsageError(
                    f"cannot start {self.where}: {exc.strerror}: {exc.filename or self.argv[0]!r}",
                    "check the program name (is it installed?) and cwd",
                ) from None
            except PermissionError as exc:
                raise UsageError(
                    f"cannot start {self.where}: permission denied: {exc.filename or self.argv[0]!r}",
                    "is the program executable?",
                ) from None

    def wait_ready(self, port: int | None = None, timeout: float | None = None) -> None:
        """Wait until 127.0.0.1:PORT accepts a TCP connection inside the node (retried until timeout).

        Raises NslabError naming the node, the service, the port and the last reason, with the log's last
        lines, on timeout or if the program exits first.
        """
        port = probe.check_port(port if port is not None else self.ready_port)
        timeout = probe.check_timeout(timeout if timeout is not None else self.ready_timeout)
        netns = self.lab.plan.node(self.node).netns
        deadline = time.monotonic() + timeout
        reason = "not tried"
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                what = "was not started" if code is None else f"exited with status {code}"
                raise NslabError(
                    f"{self.where} {what} before port {port} was ready" + self._log_excerpt(),
                    f"see the whole log: {self.log_path}",
                )
            left = deadline - time.monotonic()
            res = probe.connect("127.0.0.1", port, timeout=max(0.05, min(1.0, left)), netns=netns)
            if res.ok:
                return
            reason = res.reason
            if time.monotonic() + _POLL_S >= deadline:
                break
            time.sleep(_POLL_S)
        raise NslabError(
            f"{self.where} not ready: port {port} on 127.0.0.1 not open after {timeout:g} s "
            f"(last: {reason})" + self._log_excerpt(),
            f"does the program listen on port {port} (on 0.0.0.0 or 127.0.0.1)? Is it slow to start "
            f"(raise the timeout)? Whole log: {self.log_path}",
        )

    def _log_excerpt(self, n: int = 10) -> str:
        text = self.log_tail(n)
        if not text:
            return f"\n  log {self.log_path}: empty"
        body = "\n".join("    " + line for line in text.splitlines())
        return f"\n  log {self.log_path}, last lines:\n{body}"

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM to the service's process group, SIGKILL after `timeout` s. Returns the exit status."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            _killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            # Children that outlived the leader are still in its group (which keeps the id from reuse).
            _killpg(proc.pid, signal.SIGKILL)
        return proc.returncode

    def restart(self, timeout: float = 5.0) -> Service:
        """Stop (see `stop`), start again with the same arguments, and wait until ready if a ready_port is set."""
        self.stop(timeout)
        self._spawn()
        if self.ready_port is not None:
            self.wait_ready()
        return self

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def tail(path: str | os.PathLike[str], n: int = 20) -> str:
    """The last n lines of a file, read from its end ('' when it does not exist)."""
    if n <= 0:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            chunk = min(size, max(4096, 256 * n))
            while True:
                f.seek(size - chunk)
                data = f.read(chunk)
                if data.count(b"\n") > n or chunk == size:
                    break
                chunk = min(size, chunk * 4)
    except (FileNotFoundError, NotADirectoryError):
        return ""
    lines = data.decode("utf-8", "backslashreplace").splitlines()
    return "\n".join(lines[-n:])


def start(
    lab: LabView,
    node: str,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    ready_port: int | None = None,
    ready_timeout: float = 10.0,
    resolve: bool = True,
) -> Service:
    """Start ARGV as service NAME in NODE of a running lab; output appended to its log.

    env: variables added to (not replacing) this process's environment. resolve: words naming nodes become
    their IPv4 addresses, as in `LabNode.run`. ready_port: wait until 127.0.0.1:PORT is open inside the node
    (at most ready_timeout s); if it does not open, the service is stopped and NslabError raised.
    """
    lab.plan.node(node)  # NotFoundError for an unknown node, with the known ones
    check_service_name(name)
    if not argv:
        raise UsageError(f"service {name!r} in node {node!r}: no command given", "pass argv, e.g. ['sleep', '60']")
    if ready_port is not None:
        probe.check_port(ready_port, "ready_port")
        probe.check_timeout(ready_timeout)
    for other in _STARTED.get(lab.name, []):
        if other.node == node and other.name == name and other.running:
            raise UsageError(
                f"{other.where} is already running (pid {other.pid})",
                "stop or restart it, or give the new one another name",
            )
    svc = Service(lab, node, name, argv, env=env, cwd=cwd, ready_port=ready_port, ready_timeout=ready_timeout,
                  resolve=resolve)
    svc._spawn()
    _STARTED.setdefault(lab.name, []).append(svc)
    if ready_port is not None:
        try:
            svc.wait_ready()
        except BaseException:
            svc.stop(1.0)
            raise
    return svc


def services(lab: LabView | str) -> list[Service]:
    """The services this process started in LAB (a Lab or its name), running or not, in start order."""
    name = lab if isinstance(lab, str) else lab.name
    return list(_STARTED.get(name, []))


def log_files(lab_name: str) -> list[Path]:
    """Every service log of LAB on this machine, sorted by node/name: those of this API (also started by other
    processes), then those of the services the topology file declares (run by the lab's supervisor)."""
    from .lab.nodeview import lab_dir

    declared = Path(lab_dir(lab_name)) / "logs"
    return sorted(log_dir(lab_name).glob("*/*.log")) + sorted(declared.glob("*/*.log"))


def forget(lab_name: str, timeout: float = 1.0) -> None:
    """Stop (and reap) the services this process started in LAB and forget them (after or before `down`)."""
    for svc in _STARTED.pop(lab_name, []):
        svc.stop(timeout)


def remove_logs(lab_name: str) -> None:
    """Delete LAB's service logs (`lab down` calls it). Idempotent; touches nothing outside LAB's log dir."""
    if not lab_name or "/" in lab_name or lab_name in (".", ".."):
        raise UsageError(f"lab name {lab_name!r} is not valid", "give the name of a lab")
    shutil.rmtree(log_dir(lab_name), ignore_errors=True)


__all__ = ["LOG_ROOT", "Service", "forget", "log_dir", "log_files", "remove_logs", "services", "start", "tail"]
