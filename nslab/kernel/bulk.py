"""Many namespaces at once: the lab's fast path through the kernel door.

Creating a namespace, writing its sysctls and opening its netlink socket happen in one visit of the
door thread; requests then go out in batches on those sockets (docs/architecture.md has the numbers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence

from .. import threads
from ..errors import NslabError, PermissionDenied
from ..shield import shielded
from . import netns, procs, sysctl
from .netlink import NetlinkSocket
from .rtnl import Request, Rtnl


def create(name: str, sysctls: Sequence[tuple[str, str]] = (), via: netns._Door | None = None,
           marker: str | None = None) -> Rtnl:
    """Create namespace NAME, set its sysctls, bring lo up with MARKER as its ifalias, and return a
    socket into it. All of it happens before the name is mounted, so a namespace of ours is never
    visible without its marker (cleanup can then trust the marker alone)."""

    def inside() -> NetlinkSocket:
        for key, value in sysctls:
            sysctl.write(key, value)
        sock = NetlinkSocket()
        try:
            if marker is not None:
                Rtnl(sock, name).do(Rtnl.req_set_link(1, "lo", up=True, alias=marker))
        except BaseException:
            sock.close()
            raise
        return sock

    sock = netns.create(name, then=inside, via=via)
    assert sock is not None
    return Rtnl(sock, name)


def inode(name: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the namespace mounted on /run/netns/NAME: its identity while it lives."""
    return procs.netns_inode(netns.path(name))


def send(sockets: Mapping[str, Rtnl], requests: Mapping[str, Sequence[Request]],
         done: list[tuple[str, Request]] | None = None) -> None:
    """Send each namespace's requests as one batch; raise the first failure (after all were sent).
    DONE collects (namespace key, request) of every request the kernel acknowledged as done."""
    first: NslabError | None = None
    for name, reqs in requests.items():
        if not reqs:
            continue
        for req, err in zip(reqs, sockets[name].run(reqs), strict=True):
            if err is None and done is not None:
                done.append((name, req))
            if err is not None and first is None:
                first = err
    if first is not None:
        raise first


def with_fds(names: Iterable[str], fn: Callable[[dict[str, int]], None]) -> None:
    """Run fn with O_CLOEXEC fds of the named namespaces open (for veth peers), closing them after."""
    fds: dict[str, int] = {}
    try:
        for n in names:
            fds[n] = netns.open_fd(n)
        fn(fds)
    finally:
        for fd in fds.values():
            os.close(fd)


def lo_alias(name: str) -> str | None:
    """The ifalias of lo in namespace NAME (nslab's ownership marker), None if unset or unreadable."""
    try:
        with Rtnl.open(name) as r:
            return r.link("lo").alias
    except PermissionDenied:
        raise  # "no marker" would be a wrong answer: cleanup would think the namespace is not ours
    except NslabError:
        return None


def remove_stale(names: Iterable[str]) -> int:
    """Unlink names in /run/netns that are empty files with no namespace mounted on them (callers pass only
    names that are theirs: created by them with O_EXCL, or recorded in their intent log)."""
    removed = 0
    for n in names:
        if netns.stale(n):
            try:
                os.unlink(netns.path(n))
                removed += 1
            except FileNotFoundError:
                continue
    return removed


DELETE_THREADS = 16


def _each(fn: Callable[[str], None], names: Sequence[str]) -> list[BaseException | None]:
    """fn(name) for every name, on DELETE_THREADS threads when there are many; the error of each (None: done).

    For namespace deletion: each umount waits for an RCU grace period after releasing the mount lock,
    so umounts from several threads share their grace periods. Measured for 1000 lab namespaces on a
    loaded 2-CPU machine: 0.2-1.1 s from 4-32 threads against 1.6-3.2 s for one (`ip -b netns del`
    and nslab alike); bench/README.md. All are done before this returns (the threads block signals)."""
    out: list[BaseException | None] = [None] * len(names)

    def one(i: int) -> None:
        try:
            fn(names[i])
        except BaseException as exc:
            out[i] = exc

    k = min(DELETE_THREADS, len(names) // 16)  # a thread per 16 names at most: starting one costs ~1 umount
    if k < 2:
        for i in range(len(names)):
            one(i)
        return out

    def share(j: int) -> None:  # one job per thread (not per name): each submit costs two sigmask calls
        for i in range(j, len(names), k):
            one(i)

    with threads.Executor(k, "nslab-del") as ex:
        for f in [ex.submit(share, j) for j in range(k)]:
            f.result()
    return out


def delete(names: Iterable[str], kill: bool = True) -> list[str]:
    """Kill what runs in the namespaces (one /proc walk for all), then delete them. Returns the deleted.

    Names given must be the caller's (proven by marker, or made by this process). A name left as a stale
    file (a delete cut short by kill -9) is removed too, so a retry always finishes the job."""
    names = list(names)
    existing = [n for n in names if netns.exists(n)]
    if kill:
        inodes = [i for i in (procs.netns_inode(netns.path(n)) for n in existing) if i is not None]
        procs.terminate(procs.pids_in(inodes))
    done = []
    with shielded():  # no name left unmounted but present, whatever Ctrl-C does
        first: BaseException | None = None
        for n, err in zip(existing, _each(netns.delete, existing), strict=True):
            if err is None:
                done.append(n)
            elif not isinstance(err, NslabError) or isinstance(err, PermissionDenied):
                first = first or err
        if first is not None:
            raise first
        gone = set(done)
        remove_stale(n for n in names if n not in gone)
    return done
