"""Talking to a lab's supervisor (nslab.lab.supervisor): start it with a lease, call it, get a node's view fds.

The server is checked like it checks us: SO_PEERCRED must give our own uid (anyone may bind an abstract name
first), and a pidfd taken right after that check is what `stop` kills, never a pid read later.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import NslabError, UsageError
from . import nodeview as nv
from .supervisor import address

_UCRED = struct.Struct("3i")
START_TIMEOUT_S = 30.0  # a loaded machine: the interpreter start is the slow part

Event = Callable[[dict[str, Any]], None]


class SupervisorGone(NslabError):
    """The lab's supervisor is not running (killed, or never started)."""

    def __init__(self, lab: str) -> None:
        super().__init__(f"lab {lab}: supervisor gone",
                         f"'nslab lab up FILE' (with the lab's file) starts a new one, 'nslab lab down {lab}' removes "
                         "the lab")


class Client:
    """One connection to a supervisor (a context manager)."""

    def __init__(self, lab: str, sock: socket.socket) -> None:
        self.lab = lab
        self.sock = sock
        self._buf = b""
        self._fds: list[int] = []
        self._next = 0
        self.pid, uid, _ = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        if uid != os.getuid():
            sock.close()
            raise NslabError(f"lab {lab}: the supervisor socket belongs to uid {uid}, not to us",
                             "another user bound the lab's socket name; take the lab down and up again")
        self.pidfd = os.pidfd_open(self.pid) if self.pid > 0 else -1

    @classmethod
    def connect(cls, lab: str) -> Client:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(address(lab))
        except OSError:
            sock.close()
            raise SupervisorGone(lab) from None
        return cls(lab, sock)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self, timeout: float | None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    raise NslabError(f"lab {self.lab}: the supervisor did not answer in {timeout:g} s",
                                     "see 'nslab lab status'; 'nslab lab down' removes the lab")
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 8)
            except OSError:  # reset: it exited with our request unread
                raise SupervisorGone(self.lab) from None
            self._fds.extend(fds)
            if not data:
                raise SupervisorGone(self.lab)
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        out: dict[str, Any] = json.loads(line)
        return out

    def send(self, op: str, **args: Any) -> int:
        self._next += 1
        self.sock.sendall((json.dumps({"id": self._next, "op": op, **args}) + "\n").encode())
        return self._next

    def call(self, op: str, *, events: Event | None = None, timeout: float | None = 60.0,
             fds: list[int] | None = None, **args: Any) -> Any:
        """Send one request and return its result; events met meanwhile go to EVENTS. Raises the server's
        error (exit 2: UsageError)."""
        self._next += 1
        data = (json.dumps({"id": self._next, "op": op, **args}) + "\n").encode()
        try:
            if fds:
                socket.send_fds(self.sock, [data], fds)
            else:
                self.sock.sendall(data)
        except OSError:  # EPIPE, ECONNRESET: it is gone
            raise SupervisorGone(self.lab) from None
        while True:
            msg = self._line(timeout)
            if "event" in msg:
                if events is not None:
                    events(msg)
                continue
            if msg.get("id") not in (self._next, None):
                continue
            if msg.get("ok"):
                return msg.get("result")
            err = msg.get("error") or {}
            cls = UsageError if err.get("exit") == 2 else NslabError
            exc = cls(err.get("message", "the supervisor refused"), err.get("hint"))
            exc.details = err  # type: ignore[attr-defined]
            raise exc

    def take_fds(self) -> list[int]:
        """The fds the last reply carried (the caller closes them)."""
        fds, self._fds = self._fds, []
        return fds

    def view_fds(self, node: str) -> dict[str, int]:
        names = self.call("view.fds", node=node)["fds"]
        return dict(zip(names, self.take_fds(), strict=True))

    def kill(self) -> None:
        """SIGKILL the supervisor through the pidfd taken when its uid was checked."""
        if self.pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def wait_exit(self, timeout: float) -> bool:
        """Wait until the supervisor process is gone (its pidfd becomes readable)."""
        if self.pidfd < 0:
            return True
        return bool(select.select([self.pidfd], [], [], timeout)[0])


def alive(lab: str) -> bool:
    """Whether LAB's supervisor answers (an abstract name in /proc/net/unix alone could be a squatter)."""
    try:
        with Client.connect(lab) as c:
            c.call("ping", timeout=10)
        return True
    except NslabError:
        return False


def has_views(lab: str) -> bool:
    """Whether LAB was brought up with a supervisor (its directory exists): then programs need its views."""
    return os.path.isdir(nv.lab_dir(lab))


def start(lab: str) -> Client:
    """Start LAB's supervisor and return the lease: the connection whose end before `up.commit` makes the
    supervisor stop everything and exit (so a killed `up` leaves no process behind)."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    os.makedirs(nv.lab_dir(lab), mode=0o755, exist_ok=True)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    try:
        with open(os.path.join(nv.lab_dir(lab), "supervisor.log"), "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "nslab.lab.supervisor", lab, str(theirs.fileno())],
                                    pass_fds=[theirs.fileno()], start_new_session=True, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log, env=env, cwd="/")
        theirs.close()
        proc.wait()  # the first process exits once pid 1 of the lab's pid namespace is forked
        lease = Client(lab, mine)
        first = lease._line(START_TIMEOUT_S)
    except BaseException:
        mine.close()
        with contextlib.suppress(OSError):
            theirs.close()
        raise
    if first.get("event") != "ready":
        lease.close()
        raise NslabError(f"lab {lab}: the supervisor did not start: {first.get('message', first)}",
                         f"see {os.path.join(nv.lab_dir(lab), 'supervisor.log')}")
    lease.pid = int(first["hostpid"])
    with contextlib.suppress(OSError):
        lease.pidfd = os.pidfd_open(lease.pid)
    return lease


def stop(lab: str, grace: float = 5.0) -> bool:
    """Ask LAB's supervisor to stop its services and exit; SIGKILL it if it does not. Returns whether one ran."""
    try:
        c = Client.connect(lab)
    except SupervisorGone:
        return False
    with c:
        try:
            c.call("down", grace=grace, timeout=grace + 10)
        except NslabError:
            c.kill()
        if not c.wait_exit(5.0):
            c.kill()
            c.wait_exit(5.0)
    return True


@contextlib.contextmanager
def view(lab: str, node: str) -> Iterator[dict[str, int]]:
    """NODE's view fds (net, uts, mnt, pid), closed on exit."""
    with Client.connect(lab) as c:
        fds = c.view_fds(node)
        try:
            yield fds
        finally:
            for fd in fds.values():
                os.close(fd)
