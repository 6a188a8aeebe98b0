"""Network namespaces: create, delete, list, enter, without forking (docs/architecture.md).

A namespace created here is a bind mount of an nsfs inode on /run/netns/NAME, exactly as `ip netns add`
makes it, so iproute2 and nslab see each other's namespaces. All setns/unshare calls happen on one
dedicated "door" thread (never the main thread, where a signal between two setns calls could strand it).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import queue
import socket
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TypeVar

from .. import threads
from ..errors import ExistsError, KernelError, NotFoundError, PermissionDenied, path_error, privilege_error
from ..names import check_netns_name
from ..shield import shielded

T = TypeVar("T")

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 2
NS_GET_ID = 0x8008B70D  # _IOR(NSIO=0xb7, 13, __u64): a namespace's 64-bit id, never reused (Linux 6.18)
SO_NETNS_COOKIE = 71  # the same id, of the namespace a socket belongs to (Linux 5.14)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def setns(fd: int, nstype: int = CLONE_NEWNET, name: str | None = None) -> None:
    """Move the calling thread into the namespace of fd (NAME only for the message)."""
    if _libc.setns(fd, nstype) != 0:
        code = ctypes.get_errno()
        if code == errno.EPERM:
            raise privilege_error(f"cannot enter namespace {name!r}" if name else "cannot enter a namespace",
                                  ("CAP_SYS_ADMIN",))
        raise OSError(code, f"setns: {os.strerror(code)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str, target: str, fstype: str | None, flags: int) -> None:
    _check(
        _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags, None),
        f"mount {target}",
    )


def umount(target: str, flags: int = MNT_DETACH) -> None:
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def path(name: str) -> str:
    if name in _paths:  # checked and joined once: a 1000-node `down` asks 4 times per name
        return _paths[name]
    p = os.path.join(NETNS_RUN_DIR, check_netns_name(name))
    if len(_paths) < 65536:
        _paths[name] = p
    return p


_paths: dict[str, str] = {}


def _privilege_error(what: str) -> PermissionDenied:
    return privilege_error(what, ("CAP_SYS_ADMIN",))


class _Door(threads.Thread):
    """The thread that enters namespaces. It always returns to the namespace it started in."""

    def __init__(self) -> None:
        super().__init__(name="nslab-netns-door", daemon=True)
        self.jobs: queue.SimpleQueue[tuple[Callable[[], object], Future[object]] | None] = queue.SimpleQueue()
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            fn, fut = job
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def go_home(self) -> None:
        try:
            setns(self.home)
        except Exception:
            # A thread stranded in a foreign namespace would silently configure the wrong one.
            os._exit(70)

    def call(self, fn: Callable[[], T]) -> T:
        fut: Future[object] = Future()
        self.jobs.put((fn, fut))
        return fut.result()  # type: ignore[return-value]


_door: _Door | None = None
_door_lock = threading.Lock()


def door() -> _Door:
    global _door
    with _door_lock:
        if _door is None or not _door.is_alive():
            _door = _Door()
            _door.start()
        return _door


_pool: list[_Door] = []


def doors(n: int) -> list[_Door]:
    """N door threads, for creating many namespaces in parallel (the kernel work of namespace setup and
    of /run/netns file creation overlaps across CPUs). The first is the ordinary door."""
    with _door_lock:
        global _pool
        _pool = [d for d in _pool if d.is_alive()]
        while len(_pool) < n - 1:
            extra = _Door()
            extra.start()
            _pool.append(extra)
    return [door(), *_pool[: n - 1]]


_shared_done = False


def _ensure_run_dir() -> None:
    """Make /run/netns a shared mount point, under flock as iproute2 does (Debian bug 949235)."""
    global _shared_done
    if _shared_done:
        return
    try:
        os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise path_error(f"cannot create {NETNS_RUN_DIR}", exc) from None
        raise
    dfd = os.open(NETNS_RUN_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(dfd, fcntl.LOCK_EX)
        while True:
            try:
                mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC)
                break
            except OSError as exc:
                if exc.errno == errno.EPERM:
                    raise _privilege_error(f"cannot make {NETNS_RUN_DIR} a shared mount") from exc
                if exc.errno != errno.EINVAL:
                    raise
                # Not a mount point yet: bind it onto itself, make it private (a new peer group,
                # iproute2 82c8b9fe), then loop to make it shared.
                mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC)
                mount("", NETNS_RUN_DIR, "none", MS_PRIVATE | MS_REC)
    finally:
        os.close(dfd)
    _shared_done = True


def create(name: str, then: Callable[[], T] | None = None, via: _Door | None = None) -> T | None:
    """Create namespace NAME; run `then` inside it (e.g. open a netlink socket, set a marker) before
    the name is mounted: a namespace is visible under /run/netns only once `then` succeeded.

    Shielded from SIGINT/SIGTERM (nslab.shield): the file, the namespace and its mount appear together
    or not at all. Only kill -9 can stop it half-way, leaving an empty file that is no mount (`stale`),
    which `delete` and a lab's `down` remove.
    """
    target = path(name)
    with shielded():
        _ensure_run_dir()
        try:
            fd = os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0)
        except FileExistsError:
            if stale(name):
                raise ExistsError(
                    f"cannot create namespace {name!r}: {target} exists but no namespace is mounted on it "
                    "(left by a create that was killed)",
                    f"remove it with 'nslab ns del {name}' (or 'ip netns del {name}'), then create it again",
                ) from None
            raise ExistsError(
                f"namespace {name!r} already exists",
                f"choose another name, or delete it first with 'nslab ns del {name}'",
            ) from None
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise path_error(f"cannot create namespace {name!r}", exc) from None
            raise
        os.close(fd)
        d = via or door()

        def inside() -> T | None:
            try:
                unshare(CLONE_NEWNET)
            except OSError as exc:
                if exc.errno == errno.EPERM:
                    raise _privilege_error(f"cannot create namespace {name!r}") from None
                raise
            try:
                result = then() if then is not None else None
                mount("/proc/thread-self/ns/net", target, "none", MS_BIND)
                return result
            finally:
                d.go_home()

        try:
            # The door finishes the job before this returns or raises (nothing interrupts the wait: the
            # shield here, and no KeyboardInterrupt outside the main thread), so the removal below never
            # races a mount still to come.
            return d.call(inside)
        except BaseException:
            _remove_path(target)
            raise


def _remove_path(target: str) -> None:
    """Unmount (if mounted) and unlink TARGET; each step is idempotent, so a retry finishes the job."""
    try:
        umount(target)
    except OSError:
        pass
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass


def stale(name: str) -> bool:
    """Whether /run/netns/NAME is an empty regular file with no namespace mounted on it (what a create or
    a delete killed half-way leaves; `ip netns del` removes such files too)."""
    p = path(name)
    try:
        st = os.lstat(p)
        return stat.S_ISREG(st.st_mode) and st.st_size == 0 and not _is_nsfs(p)
    except OSError:
        return False


def delete(name: str) -> None:
    """Unmount and unlink /run/netns/NAME (as `ip netns del`, which also removes a stale file). The kernel
    frees the namespace, and the devices in it, once nothing else holds it: kill its processes first (see
    `pids`). Shielded from SIGINT/SIGTERM: an interrupt never leaves the name unmounted but present."""
    target = path(name)
    if not os.path.lexists(target):
        raise NotFoundError(f"namespace {name!r} does not exist", "see 'nslab ns list' for the names")
    with shielded():
        try:
            umount(target)
        except OSError as exc:
            if exc.errno == errno.EPERM:
                raise _privilege_error(f"cannot delete namespace {name!r}") from None
            # EINVAL: a stale file that is no mount; ENOENT: someone else just removed it.
            if exc.errno not in (errno.EINVAL, errno.ENOENT):
                raise KernelError(f"cannot unmount {target}: {exc.strerror}", exc.errno or 0) from exc
        try:
            os.unlink(target)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise path_error(f"cannot delete namespace {name!r}", exc) from None
            raise


def socket_ns_id(sock: socket.socket) -> int | None:
    """The id of the namespace SOCK was born in (None on kernels before 5.14)."""
    try:
        return int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), sys.byteorder)
    except OSError:
        return None


def ns_id(name: str) -> int | None:
    """The id of the namespace mounted on /run/netns/NAME: the kernel's net cookie, unique for the whole
    boot (inode numbers, by contrast, are reused). None when NAME is no namespace or the kernel has no
    NS_GET_ID (before 6.18): the caller then needs another proof. One open and one ioctl, no setns."""
    try:
        fd = os.open(path(name), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return fd_ns_id(fd)
    finally:
        os.close(fd)


def fd_ns_id(fd: int) -> int | None:
    """The id of the namespace of FD (see ns_id); None if FD is no namespace or the kernel lacks NS_GET_ID."""
    try:
        return int.from_bytes(fcntl.ioctl(fd, NS_GET_ID, bytes(8)), sys.byteorder)
    except OSError:  # ENOTTY: a plain file (stale), or an older kernel
        return None


def exists(name: str) -> bool:
    try:
        return _is_nsfs(path(name))
    except OSError:
        return False


def _is_nsfs(p: str) -> bool:
    # A name in /run/netns is a namespace only while an nsfs inode is mounted on it.
    st = os.stat(p)
    return stat.S_ISREG(st.st_mode) and os.stat(os.path.dirname(p)).st_dev != st.st_dev


def list_names() -> list[str]:
    """Names of the namespaces in /run/netns (those of iproute2 included), sorted."""
    try:
        entries = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    out = []
    for entry in entries:
        try:
            if _is_nsfs(os.path.join(NETNS_RUN_DIR, entry)):
                out.append(entry)
        except OSError:
            continue
    return sorted(out)


def open_fd(name: str) -> int:
    """An O_CLOEXEC fd on the namespace; it keeps the namespace alive until closed."""
    target = path(name)
    try:
        if not _is_nsfs(target):
            raise FileNotFoundError
        return os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFoundError(
            f"namespace {name!r} does not exist",
            f"create it with 'nslab ns add {name}', or see 'nslab ns list'",
        ) from None


def run_in_netns(name: str, fn: Callable[[], T]) -> T:
    """Run fn on a thread of its own that has entered namespace NAME, and wait for it.

    Sockets fn opens belong to NAME and stay usable from any thread afterwards. A thread of its own
    (not the door) so that long work, such as a listener, blocks nobody else.
    """
    fd = open_fd(name)
    box: list[T] = []
    err: list[BaseException] = []

    def inside() -> None:
        try:
            setns(fd, name=name)
        except BaseException as exc:
            err.append(exc)
            return
        try:
            box.append(fn())
        except BaseException as exc:
            err.append(exc)
        # The thread ends here, and its namespace membership with it: no way back is needed.

    thread = threads.Thread(target=inside, name=f"nslab-in-{name}", daemon=True)
    try:
        thread.start()
        while thread.is_alive():
            thread.join(0.2)  # short joins keep the caller responsive to Ctrl-C
    finally:
        os.close(fd)
    if err:
        raise err[0]
    return box[0]


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """The calling process (its main thread) inside namespace NAME while the block runs, then back home.

    The CLI runs its long-running commands for NAME (a listener, a capture) in here, so that they are
    processes of NAME: `ns pids NAME` lists them, `ns del NAME` and `lab down` end them. Threads started
    meanwhile are born in NAME. If the way back fails, the process exits (code 70): a main thread stuck
    in a foreign namespace would silently act on the wrong one.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("netns.entered: only the main thread can move the process")
    fd = open_fd(name)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd, name=name)
        yield
    finally:
        # Compared, not flagged: an interrupt right after the setns must not leave us in NAME either.
        try:
            if os.stat("/proc/thread-self/ns/net").st_ino != os.fstat(home).st_ino:
                setns(home)
        except Exception:
            os._exit(70)
        finally:
            os.close(home)
            os.close(fd)


def inode(name: str) -> tuple[int, int]:
    st = os.stat(path(name))
    return st.st_dev, st.st_ino


def pids(name: str) -> list[int]:
    """Processes whose network namespace is NAME (walks /proc, as `ip netns pids`)."""
    from .procs import pids_in

    return sorted(pids_in([inode(name)], f"namespace {name!r}"))
