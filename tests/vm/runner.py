"""Run one command in a QEMU guest on Debian's stock kernel, with this host's root filesystem read-only.

    scripts/vm-run [--mem 1G] [--cpus 1] [--timeout S] [--overlay PATH]... [--env K=V]... -- CMD [ARG]...
    scripts/vm-run --prepare          # fetch and unpack the kernel, build the initramfs; print the release

The guest sees the host's / over 9p, read-only. /tmp and /run are its own tmpfs; /etc, /var, /root, the
checkout (and any --overlay) are overlays whose writes stay in guest memory; /usr/lib gets the guest
kernel's modules as one more read-only layer. It has no network device (`-nic none`), and QEMU itself runs
in an empty network namespace. The only host paths it can write are the run's control directory and
--share paths. The command runs as PID 1's child in a minimal environment; its stdout and stderr come back
on two virtio ports; the exit status is the command's, 124 on --timeout, 125 when the guest reported none,
77 when a guest cannot run here (the reason is printed).

The kernel is `apt-get download`ed and unpacked into .cache/vm (nothing is installed: the package would
pull initramfs-tools and udev into the host). docs/vm-tier.md has the measurements and the reasons.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import hashlib
import lzma
import os
import platform
import re
import selectors
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = REPO / ".cache" / "vm"
KERNEL_PACKAGE = "linux-image-amd64"  # Debian's metapackage: its one dependency names the current kernel
QEMU = "qemu-system-x86_64"
BUSYBOX = "/bin/busybox"  # busybox-static
# Modules stage 1 loads to reach the 9p root and the output ports (their dependencies come from modules.dep).
INITRD_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_console")
TMPFS = ("/run", "/tmp")
OVERLAYS = ("/etc", "/var", "/root")
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EXIT_TIMEOUT, EXIT_NO_STATUS, EXIT_CANNOT_RUN = 124, 125, 77
CMDLINE = "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init random.trust_cpu=on nslab_vm_guest=1"

Sink = Callable[[str, bytes], None]


class CannotRun(Exception):
    """A guest cannot run on this machine; the message says why (tests skip with it)."""


@dataclass(frozen=True)
class Kernel:
    release: str  # 6.1.0-57-amd64
    root: Path  # the unpacked package: boot/, lib/modules/RELEASE/
    vmlinux: Path  # the uncompressed ELF (booted through its PVH entry: no decompression under emulation)

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.release


@dataclass
class Result:
    status: int
    wall_s: float
    boot_s: float | None  # guest uptime when stage 2 started
    accel: str
    console: str = ""  # the kernel console's last lines (for a guest that gave no status)
    qemu_err: str = ""


# ---- kernel ------------------------------------------------------------------------------------------
def tool(name: str) -> str | None:
    """NAME on PATH, or in /usr/sbin or /sbin (root's tools, when PATH lacks them)."""
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)),
                                      None)


def _run(argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, **kw)  # type: ignore[call-overload,no-any-return]


def kernel_package() -> str:
    """linux-image-RELEASE that Debian's linux-image-amd64 points at (apt lists refreshed once if empty)."""
    for attempt in range(2):
        res = _run(["apt-cache", "depends", KERNEL_PACKAGE])
        m = re.search(r"Depends: (linux-image-\d\S*-amd64)\b", res.stdout)
        if m:
            return m.group(1)
        if attempt == 0 and os.geteuid() == 0:
            _run(["apt-get", "update", "-qq"])
    raise CannotRun(f"apt-cache does not know {KERNEL_PACKAGE} (is this Debian? run apt-get update)")


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The ELF kernel inside a bzImage whose payload is XZ (Debian's): decompressed here once, on the host."""
    start = bzimage.find(b"\xfd7zXZ\x00")
    if start < 0:
        raise CannotRun("the kernel image has no XZ payload")
    dec = lzma.LZMADecompressor(lzma.FORMAT_XZ)
    elf = dec.decompress(bzimage[start:])
    if not elf.startswith(b"\x7fELF"):
        raise CannotRun("the kernel image's payload is not an ELF file")
    return elf


def find_kernel(cache: Path = CACHE) -> Kernel | None:
    """The newest kernel already unpacked in CACHE (complete ones only), or None."""
    found = sorted((cache / "kernel").glob("*/vmlinux"), key=lambda p: p.stat().st_mtime)
    for vmlinux in reversed(found):
        root = vmlinux.parent
        release = root.name
        if (root / "lib" / "modules" / release / "modules.dep").is_file():
            return Kernel(release, root, vmlinux)
    return None


def prepare(cache: Path = CACHE, log: Callable[[str], None] = lambda s: None, refresh: bool = False) -> Kernel:
    """Debian's current amd64 kernel unpacked under CACHE (downloaded, not installed). Without REFRESH a
    kernel already there is used as it is (asking apt which one is current costs a second)."""
    if not refresh and (found := find_kernel(cache)) is not None:
        return found
    _mkdir(cache)
    with open(cache / ".lock", "w") as lock:  # two first runs at once: one fetches, the other waits
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _prepare(cache, log)


def _prepare(cache: Path, log: Callable[[str], None]) -> Kernel:
    pkg = kernel_package()
    release = pkg.removeprefix("linux-image-")
    root = cache / "kernel" / release
    if (root / "vmlinux").is_file() and (root / "lib" / "modules" / release / "modules.dep").is_file():
        return Kernel(release, root, root / "vmlinux")
    for name, package in (("apt-get", "apt"), ("dpkg-deb", "dpkg"), ("depmod", "kmod")):
        if tool(name) is None:
            raise CannotRun(f"'{name}' is missing (apt-get install {package})")
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    log(f"nslab vm: fetching {pkg} (apt-get download, nothing installed) into {debs}")
    res = _run(["apt-get", "download", pkg], cwd=debs)
    deb = next(iter(sorted(debs.glob(f"{pkg}_*.deb"))), None)
    if deb is None:
        raise CannotRun(f"apt-get download {pkg} failed: {res.stderr.strip()[-300:]}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{release}-", dir=_mkdir(cache / "kernel")))
    try:
        for argv in (["dpkg-deb", "-x", str(deb), str(tmp)], [tool("depmod") or "depmod", "-b", str(tmp), release]):
            res = _run(argv)
            if res.returncode != 0:
                raise CannotRun(f"{' '.join(argv)} failed: {res.stderr.strip()[-300:]}")
        vmlinuz = tmp / "boot" / f"vmlinuz-{release}"
        (tmp / "vmlinux").write_bytes(extract_vmlinux(vmlinuz.read_bytes()))
        if root.exists():  # a half-made one from an interrupted run (a complete one returned above)
            shutil.rmtree(root)
        os.rename(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    deb.unlink()  # 70 MB; the unpacked tree is what is used
    return Kernel(release, root, root / "vmlinux")


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


# ---- initramfs ---------------------------------------------------------------------------------------
def module_closure(modules_dep: str, wanted: Iterable[str]) -> list[str]:
    """Paths (relative to lib/modules/RELEASE) of WANTED and their dependencies, each after what it needs."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in modules_dep.splitlines():
        if ":" not in line:
            continue
        path, rest = line.split(":", 1)
        deps[path] = rest.split()
        by_name[Path(path).name.split(".ko")[0].replace("-", "_")] = path
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in reversed(deps.get(path, [])):  # modules.dep lists the deepest dependency last
            visit(dep)
        order.append(path)

    for name in wanted:
        found = by_name.get(name.replace("-", "_"))
        if found is None:
            raise CannotRun(f"the guest kernel has no module {name!r} (is it built in? then drop it from the list)")
        visit(found)
    return order


def cpio_newc(entries: Sequence[tuple[str, int, bytes, int]]) -> bytes:
    """An uncompressed newc cpio archive of (name, mode, data, rdev) entries, as the kernel unpacks it."""
    out = bytearray()

    def pad() -> None:
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data, rdev) in enumerate([*entries, ("TRAILER!!!", 0, b"", 0)], 1):
        raw = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, os.major(rdev), os.minor(rdev), len(raw), 0)
        out.extend(b"070701" + b"".join(b"%08x" % f for f in fields) + raw)
        pad()
        out.extend(data)
        pad()
    return bytes(out)


def is_static_elf(data: bytes) -> bool:
    """A 64-bit ELF without a program interpreter (PT_INTERP): it runs in an initramfs that has no libc."""
    if data[:5] != b"\x7fELF\x02":
        return False
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


def build_initramfs(kernel: Kernel, cache: Path = CACHE) -> Path:
    """Stage 1 (init.sh), static busybox and the modules it loads; built once per content (by hash)."""
    if not os.access(BUSYBOX, os.X_OK) or not is_static_elf(Path(BUSYBOX).read_bytes()):
        raise CannotRun(f"{BUSYBOX} is missing or not static (apt-get install busybox-static)")
    mods = module_closure((kernel.modules / "modules.dep").read_text(), INITRD_MODULES)
    init = (HERE / "init.sh").read_bytes()
    busybox = Path(BUSYBOX).read_bytes()
    d, f, x = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644, stat.S_IFREG | 0o755
    entries: list[tuple[str, int, bytes, int]] = [
        (n, d, b"", 0) for n in ("bin", "dev", "proc", "sys", "ctl", "newroot", "ovl", "modules")]
    entries += [("dev/console", stat.S_IFCHR | 0o600, b"", os.makedev(5, 1)),
                ("dev/null", stat.S_IFCHR | 0o666, b"", os.makedev(1, 3)),
                ("init", x, init, 0), ("bin/busybox", x, busybox, 0)]
    entries += [(f"modules/{Path(m).name}", f, (kernel.modules / m).read_bytes(), 0) for m in mods]
    entries.append(("modules.order", f, "".join(Path(m).name + "\n" for m in mods).encode(), 0))
    blob = cpio_newc(entries)
    path = cache / f"initrd-{kernel.release}-{hashlib.sha256(blob).hexdigest()[:12]}.cpio"
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        for old in cache.glob(f"initrd-{kernel.release}-*.cpio"):  # built from an earlier init.sh
            if old != path:
                old.unlink(missing_ok=True)
    return path


# ---- can a guest run here? ---------------------------------------------------------------------------
def kvm_usable() -> tuple[bool, str]:
    """Whether /dev/kvm can boot a stock kernel. PVM (this host: a software hypervisor for PVM-built guest
    kernels only) cannot: a stock kernel never finishes booting there (docs/vm-tier.md)."""
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not accessible"
    if os.path.exists("/sys/module/kvm_pvm"):
        return False, "/dev/kvm is PVM (kvm_pvm), which cannot boot a stock kernel"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if not re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.M):
        return False, "the CPU shows no vmx/svm"
    return True, "KVM"


def pick_accel(want: str | None = None) -> str:
    """'kvm' or 'tcg' for WANT (auto, kvm, tcg; default $NSLAB_VM_ACCEL or auto); CannotRun says why not."""
    want = want or os.environ.get("NSLAB_VM_ACCEL", "auto")
    if want not in ("auto", "kvm", "tcg"):
        raise CannotRun(f"NSLAB_VM_ACCEL={want!r}: choose auto, kvm or tcg")
    kvm, why = kvm_usable()
    if want in ("auto", "kvm") and kvm:
        return "kvm"
    if want == "kvm":
        raise CannotRun(f"KVM asked for (NSLAB_VM_ACCEL=kvm) but not usable: {why}; TCG is disabled")
    res = _run([QEMU, "-accel", "help"])
    if not re.search(r"^tcg$", res.stdout, re.M):
        raise CannotRun(f"{QEMU} has no TCG accelerator and KVM is not usable ({why})")
    return "tcg"


def availability(accel: str | None = None) -> str:
    """The accelerator a guest would use here; CannotRun (with the reason) when none can run."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise CannotRun(f"the VM tier runs on x86_64 Linux only (this is {sys.platform} {platform.machine()})")
    if os.geteuid() != 0:
        raise CannotRun("the VM tier needs root (QEMU exports / over 9p as the caller and runs in an empty "
                        "network namespace)")
    if shutil.which(QEMU) is None:
        raise CannotRun(f"QEMU is not installed ({QEMU}; apt-get install qemu-system-x86)")
    for name, package in (("unshare", "util-linux"), ("modprobe", "kmod")):
        if tool(name) is None:
            raise CannotRun(f"'{name}' is missing (apt-get install {package}); the guest loads modules with it")
    if not os.access(BUSYBOX, os.X_OK) or not is_static_elf(Path(BUSYBOX).read_bytes()):
        raise CannotRun(f"{BUSYBOX} is missing or not static (apt-get install busybox-static)")
    return pick_accel(accel)


# ---- one run ------------------------------------------------------------------------------------------
def _check_path(p: str) -> str:
    if not p.startswith("/") or re.search(r"[\s,]", p) or "/../" in p + "/":
        raise CannotRun(f"path {p!r}: the guest needs absolute paths without spaces, commas or '..'")
    return p.rstrip("/") or "/"


def mount_plan(kernel: Kernel, overlays: Iterable[str], shares: Sequence[str]) -> list[str]:
    """Lines of /run/vm/mounts for stage 1: tmpfs first, then overlays and shares, parents before children."""
    lib = os.path.realpath("/lib")  # /usr/lib on a merged-/usr system: the modules appear in /lib/modules
    lines = [f"tmpfs {t}" for t in TMPFS]
    nested = [(_check_path(p), f"overlay {_check_path(p)}") for p in dict.fromkeys(overlays)]
    nested.append((lib, f"overlay {lib} {_check_path(str(kernel.root / 'lib'))}"))
    nested += [(_check_path(p), f"share {_check_path(p)} s{i}") for i, p in enumerate(shares)]
    for target, line in sorted(nested, key=lambda t: t[0].count("/")):
        if target == "/":
            raise CannotRun("the root is already shared (read-only); overlay or share a directory in it")
        lines.append(line)
    return lines


def qemu_argv(kernel: Kernel, initrd: Path, ctl: Path, accel: str, mem: str, cpus: int,
              shares: Sequence[str]) -> list[str]:
    argv = [QEMU, "-accel", "kvm" if accel == "kvm" else "tcg,thread=multi",
            "-cpu", "host" if accel == "kvm" else "max", "-m", mem, "-smp", str(cpus),
            "-machine", "pc", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-nic", "none", "-monitor", "none", "-serial", f"file:{ctl}/console.log",
            "-kernel", str(kernel.vmlinux), "-initrd", str(initrd), "-append", CMDLINE,
            "-virtfs", "local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap",
            "-virtfs", f"local,path={ctl},mount_tag=ctl,security_model=none",
            "-device", "virtio-serial-pci"]
    for i, share in enumerate(shares):
        argv += ["-virtfs", f"local,path={share},mount_tag=s{i},security_model=none,multidevs=remap"]
    for port in ("out", "err"):
        argv += ["-chardev", f"file,id={port},path={ctl}/{port}",
                 "-device", f"virtserialport,chardev={port},name={port}"]
    return argv


def _die_with_parent() -> None:
    # The guest never outlives its runner (a kill -9 of pytest): PR_SET_PDEATHSIG = 1, SIGKILL.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


@dataclass
class Guest:
    """One guest run's settings; `run(cmd)` boots it."""

    mem: str = "1G"
    cpus: int = 1
    timeout: float = 600.0
    overlays: list[str] = field(default_factory=lambda: [*OVERLAYS, str(REPO)])
    shares: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = str(REPO)
    accel: str | None = None

    def run(self, cmd: Sequence[str], sink: Sink, log: Callable[[str], None] = lambda s: None) -> Result:
        accel = availability(self.accel)
        kernel = prepare(log=log)
        initrd = build_initramfs(kernel)
        shares = [_check_path(s) for s in self.shares]
        plan = mount_plan(kernel, self.overlays, shares)
        env = {"PATH": GUEST_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", **self.env}
        ctl = Path(tempfile.mkdtemp(prefix="nslab-vm-"))
        try:
            (ctl / "argv").write_bytes(b"".join(a.encode() + b"\0" for a in cmd))
            (ctl / "env").write_bytes(b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()))
            (ctl / "cwd").write_text(self.cwd)
            (ctl / "mounts").write_text("".join(line + "\n" for line in plan))
            shutil.copy(HERE / "stage2.sh", ctl / "stage2")
            return self._boot(ctl, qemu_argv(kernel, initrd, ctl, accel, self.mem, self.cpus, shares), accel, sink)
        finally:
            shutil.rmtree(ctl, ignore_errors=True)

    def _boot(self, ctl: Path, argv: list[str], accel: str, sink: Sink) -> Result:
        fds: dict[int, str] = {}
        for port in ("out", "err"):
            os.mkfifo(ctl / port)
            # Read-write: the FIFO has a writer from the start, so QEMU's open never blocks and no EOF comes
            # before QEMU is done; the loop below ends on QEMU's exit instead.
            fds[os.open(ctl / port, os.O_RDWR | os.O_NONBLOCK)] = port
        sel = selectors.DefaultSelector()
        for fd in fds:
            sel.register(fd, selectors.EVENT_READ)
        t0 = time.monotonic()
        timed_out = False
        with open(ctl / "qemu.err", "wb") as qerr:
            proc = subprocess.Popen(["unshare", "--net", "--", *argv], stdin=subprocess.DEVNULL,
                                    stdout=qerr, stderr=qerr, preexec_fn=_die_with_parent)
            try:
                while proc.poll() is None:
                    if time.monotonic() - t0 > self.timeout:
                        timed_out = True
                        proc.terminate()
                        try:
                            proc.wait(5)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                        break
                    for key, _ in sel.select(0.2):
                        _copy(key.fd, fds[key.fd], sink)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                for fd in fds:
                    _copy(fd, fds[fd], sink)
                    sel.unregister(fd)
                    os.close(fd)
                sel.close()
        wall = time.monotonic() - t0
        status_text = _read(ctl / "status").strip()
        status = EXIT_TIMEOUT if timed_out else int(status_text) if status_text.isdigit() else EXIT_NO_STATUS
        booted = _read(ctl / "booted").strip()
        console = "\n".join(_read(ctl / "console.log").splitlines()[-30:])
        return Result(status, wall, float(booted) if booted else None, accel, console,
                      _read(ctl / "qemu.err").strip())


def _copy(fd: int, port: str, sink: Sink) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            return
        sink(port, data)


def _read(p: Path) -> str:
    try:
        return p.read_text(errors="replace")
    except OSError:
        return ""


# ---- command line -------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vm-run", description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--mem", default="1G", help="guest memory (default 1G)")
    ap.add_argument("--cpus", type=int, default=1, help="vCPUs (default 1: under TCG a second one costs boot time)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds before the guest is killed (exit 124)")
    ap.add_argument("--overlay", action="append", default=[], metavar="PATH",
                    help="a host directory the guest may write, in memory (besides /etc, /var and the checkout)")
    ap.add_argument("--share", action="append", default=[], metavar="PATH",
                    help="a host directory shared read-write: the guest's writes reach the host")
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="add to the guest's environment")
    ap.add_argument("--cwd", default=os.getcwd(), help="the command's directory in the guest")
    ap.add_argument("--accel", choices=("auto", "kvm", "tcg"), default=None, help="default $NSLAB_VM_ACCEL or auto")
    ap.add_argument("--prepare", action="store_true", help="fetch the kernel and build the initramfs, then exit")
    ap.add_argument("cmd", nargs="*")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        if args.prepare:
            kernel = prepare(log=log, refresh=True)
            build_initramfs(kernel)
            print(kernel.release)
            return 0
        if not args.cmd:
            ap.error("give a command after --")
        env = dict(e.split("=", 1) for e in args.env if "=" in e)
        guest = Guest(mem=args.mem, cpus=args.cpus, timeout=args.timeout, overlays=[*OVERLAYS, str(REPO),
                      *args.overlay], shares=args.share, env=env, cwd=args.cwd, accel=args.accel)
        outs = {"out": sys.stdout.buffer, "err": sys.stderr.buffer}

        def sink(port: str, data: bytes) -> None:
            outs[port].write(data)
            outs[port].flush()

        res = guest.run(args.cmd, sink, log)
    except CannotRun as exc:
        log(f"vm-run: cannot run a guest here: {exc}")
        return EXIT_CANNOT_RUN
    if res.status in (EXIT_TIMEOUT, EXIT_NO_STATUS):
        what = f"timed out after {args.timeout:g} s" if res.status == EXIT_TIMEOUT else "reported no exit status"
        log(f"vm-run: the guest {what}; last console lines:\n{res.console}\n{res.qemu_err}".rstrip())
    return res.status


if __name__ == "__main__":
    sys.exit(main())
