"""Running programs inside a namespace.

Two ways:
- fast: a thread parked in the namespace starts the program with plain subprocess (the child inherits
  the spawning thread's namespaces), at the cost of a plain `subprocess.Popen`. Parked in the network
  namespace only, the program sees the host's hostname, /etc, /sys and /run: good for bulk work (probes,
  counters). Parked in a lab node's *view* (`view=` fds of net, uts, mnt and pid from the lab's supervisor,
  docs/nodes.md) it sees the node's hostname, /etc/hosts, /sys, private dirs and files, and gets a pid in the
  lab's pid namespace, at about the same cost;
- full: `enter_full` gives the calling process the namespace plus its own /sys and /etc/netns/NAME/*
  files, as `ip netns exec` does, and is meant to be followed by exec (the CLI's `ns exec`/`shell`).
"""

from __future__ import annotations

import os
import queue
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from .. import threads
from . import netns

T = TypeVar("T")


class ParkedThread:
    """A thread that entered one namespace and stays there, running what it is given.

    It holds the namespace alive while it runs: close it before expecting the namespace to vanish.
    """

    def __init__(self, name: str, view: Mapping[str, int] | None = None) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        fd = netns.open_fd(name) if view is None else -1
        started: Future[None] = Future()

        def main() -> None:
            try:
                if view is not None:
                    # The thread's own file-system context first: setns of a mount namespace needs it.
                    from .nsops import enter

                    enter(view, thread=True)
                else:
                    netns.setns(fd, name=name)
            except BaseException as exc:
                started.set_exception(exc)
                return
            finally:
                if fd >= 0:
                    os.close(fd)
            started.set_result(None)
            while (job := self._jobs.get()) is not None:
                fn, fut = job
                try:
                    fut.set_result(fn())
                except BaseException as exc:
                    fut.set_exception(exc)

        self._thread = threads.Thread(target=main, name=f"nslab-parked-{name}", daemon=True)
        self._thread.start()
        started.result()

    def call(self, fn: Callable[[], T]) -> T:
        fut: Future[T] = Future()
        self._jobs.put((fn, fut))
        return fut.result()

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        def spawn() -> subprocess.Popen[Any]:
            # The child inherits this thread's signal mask across exec: open SIGINT/SIGTERM for the fork
            # only, so that the program can be stopped (and Ctrl-C'd) like any other.
            with threads.signals_unblocked():
                return subprocess.Popen(list(argv), **kwargs)

        return self.call(spawn)

    def close(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()


def finish(proc: subprocess.Popen[Any], input: str | bytes | None = None,
           timeout: float | None = None) -> subprocess.CompletedProcess[Any]:
    """Wait for a started program like subprocess.run does; it is killed if the wait is interrupted."""
    with proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def enter_full(name: str) -> None:
    """Move the calling (single-threaded) process into namespace NAME the way `ip netns exec` does:
    setns, a private mount namespace, a fresh /sys for the namespace, /etc/netns/NAME/* over /etc."""
    fd = netns.open_fd(name)
    try:
        netns.setns(fd, name=name)
    finally:
        os.close(fd)
    netns.unshare(netns.CLONE_NEWNS)
    # Nothing we mount below may propagate back to the host's mount namespace.
    netns.mount("", "/", "none", netns.MS_SLAVE | netns.MS_REC)
    flags = 0
    try:
        st = os.statvfs("/sys")
        flags = netns.MS_RDONLY if st.f_flag & os.ST_RDONLY else 0
        netns.umount("/sys")
    except OSError:
        pass
    netns.mount(name, "/sys", "sysfs", flags)
    etc = os.path.join("/etc/netns", name)
    if os.path.isdir(etc):
        for entry in sorted(os.listdir(etc)):
            src, dst = os.path.join(etc, entry), os.path.join("/etc", entry)
            try:
                netns.mount(src, dst, "none", netns.MS_BIND)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot bind {src} over {dst}: {exc.strerror}") from None
