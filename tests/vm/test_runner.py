"""The guest runner and the tier's plumbing: pure parts without root, then real guests (root and QEMU).

A real guest must: give the command's exit status and its stdout and stderr apart, have no network device,
keep every write (to /etc, /tmp, the checkout) inside the guest except to a share, leave the host's links as
they were, and be killed at its timeout.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from . import features, runner, tier

IN_GUEST = "nslab_vm_guest=1" in Path("/proc/cmdline").read_text()


# ---- pure ----------------------------------------------------------------------------------------------
def _parse_cpio(blob: bytes) -> list[tuple[str, int, bytes, int]]:
    out, pos = [], 0
    while True:
        assert blob[pos:pos + 6] == b"070701"
        f = [int(blob[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, size = f[11], f[6]
        name = blob[pos + 110:pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        data = blob[pos:pos + size]
        pos = (pos + size + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out.append((name, f[1], data, os.makedev(f[9], f[10])))


def test_cpio_newc_holds_what_was_put_in() -> None:
    entries = [("bin", stat.S_IFDIR | 0o755, b"", 0), ("init", stat.S_IFREG | 0o755, b"#!/bin/sh\necho hi\n", 0),
               ("dev/console", stat.S_IFCHR | 0o600, b"", os.makedev(5, 1)), ("odd", stat.S_IFREG | 0o644, b"x" * 5, 0)]
    blob = runner.cpio_newc(entries)
    assert len(blob) % 4 == 0
    assert _parse_cpio(blob) == entries
    if os.access(runner.BUSYBOX, os.X_OK):  # an unpacker nobody here wrote agrees
        listing = subprocess.run([runner.BUSYBOX, "cpio", "-t"], input=blob, capture_output=True).stdout.decode()
        assert listing.split() == ["bin", "init", "dev/console", "odd"]


def test_static_elf_check() -> None:
    assert not runner.is_static_elf(Path("/bin/ls").read_bytes())  # has an interpreter (ld-linux)
    assert not runner.is_static_elf(b"#!/bin/sh\n")
    if os.path.exists(runner.BUSYBOX):
        out = subprocess.run(["ldd", runner.BUSYBOX], capture_output=True, text=True)
        assert runner.is_static_elf(Path(runner.BUSYBOX).read_bytes()) == ("not a dynamic" in out.stdout + out.stderr)


def test_module_closure_puts_dependencies_first() -> None:
    dep = ("kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko\n"
           "kernel/net/9p/9pnet.ko:\nkernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko\n"
           "kernel/fs/netfs/netfs.ko:\nkernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko\n"
           "kernel/drivers/virtio/virtio.ko:\nkernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko "
           "kernel/drivers/virtio/virtio.ko\n")
    order = [Path(p).name for p in runner.module_closure(dep, ["9p", "9pnet-virtio", "virtio_pci"])]
    assert order == ["netfs.ko", "fscache.ko", "9pnet.ko", "9p.ko", "virtio.ko", "9pnet_virtio.ko", "virtio_pci.ko"]
    with pytest.raises(runner.CannotRun, match="no module 'sch_netem'"):
        runner.module_closure(dep, ["sch_netem"])


def test_extract_vmlinux_from_an_xz_payload() -> None:
    elf = b"\x7fELF" + os.urandom(5000)
    image = b"MZ boot sector" + bytes(300) + lzma.compress(elf, format=lzma.FORMAT_XZ) + b"\x00\x10trailer"
    assert runner.extract_vmlinux(image) == elf
    with pytest.raises(runner.CannotRun, match="no XZ payload"):
        runner.extract_vmlinux(b"MZ" + bytes(100))
    with pytest.raises(runner.CannotRun, match="not an ELF"):
        runner.extract_vmlinux(lzma.compress(b"not elf", format=lzma.FORMAT_XZ))


def _kernel(tmp: Path) -> runner.Kernel:
    return runner.Kernel("6.1.0-57-amd64", tmp / "k", tmp / "k" / "vmlinux")


def test_qemu_command_has_no_network_and_a_read_only_root(tmp_path: Path) -> None:
    argv = runner.qemu_argv(_kernel(tmp_path), tmp_path / "i.cpio", tmp_path / "ctl", "tcg", "1G", 1,
                            ["/tmp/share"])
    joined = " ".join(argv)
    assert argv[argv.index("-nic") + 1] == "none" and "-nodefaults" in argv
    assert not any(a in argv for a in ("-netdev", "-net", "-device virtio-net-pci")) and "virtio-net" not in joined
    roots = [argv[i + 1] for i, a in enumerate(argv) if a == "-virtfs" and "path=/," in argv[i + 1]]
    assert roots == ["local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap"]
    assert argv[argv.index("-accel") + 1] == "tcg,thread=multi" and argv[argv.index("-cpu") + 1] == "max"
    assert "local,path=/tmp/share,mount_tag=s0,security_model=none,multidevs=remap" in argv
    assert "nslab_vm_guest=1" in argv[argv.index("-append") + 1]


def test_mount_plan_orders_parents_first_and_refuses_odd_paths(tmp_path: Path) -> None:
    k = _kernel(tmp_path)
    plan = runner.mount_plan(k, ["/work/repo/sub", "/etc", "/work/repo"], ["/work/repo/sub/share"])
    assert plan[:2] == ["tmpfs /run", "tmpfs /tmp"]
    targets = [line.split()[1] for line in plan]
    assert targets.index("/work/repo") < targets.index("/work/repo/sub") < targets.index("/work/repo/sub/share")
    lib = os.path.realpath("/lib")
    assert f"overlay {lib} {tmp_path}/k/lib" in plan  # the guest kernel's modules appear in /lib/modules
    for bad in ("/work/my repo", "/a,b", "relative", "/a/../etc"):
        with pytest.raises(runner.CannotRun, match="absolute paths"):
            runner.mount_plan(k, [bad], [])
    with pytest.raises(runner.CannotRun, match="already shared"):
        runner.mount_plan(k, ["/"], [])


def test_accelerator_choice_and_its_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "kvm_usable", lambda: (False, "/dev/kvm is PVM (kvm_pvm), which cannot boot"))
    monkeypatch.setenv("NSLAB_VM_ACCEL", "kvm")
    with pytest.raises(runner.CannotRun, match=r"KVM asked for .* PVM .* TCG is disabled"):
        runner.pick_accel()
    with pytest.raises(runner.CannotRun, match="choose auto, kvm or tcg"):
        runner.pick_accel("fast")
    monkeypatch.setattr(runner, "kvm_usable", lambda: (True, "KVM"))
    assert runner.pick_accel("auto") == "kvm"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(runner.CannotRun, match="needs root"):
        runner.availability()


@pytest.mark.kernel  # as another user /dev/kvm is not accessible, which hides what the host is
def test_kvm_on_this_host_is_judged_by_what_it_is() -> None:
    ok, why = runner.kvm_usable()
    if os.path.exists("/sys/module/kvm_pvm"):
        assert not ok and "PVM" in why
    elif not os.path.exists("/dev/kvm"):
        assert not ok and why == "no /dev/kvm"


def test_feature_names_are_checked() -> None:
    assert features.check_names(("netem", "vlan")) == ["netem", "vlan"]
    with pytest.raises(features.UnknownFeature, match=r"unknown kernel feature 'netm'.*known: bridge, dummy"):
        features.check_names(("netm",))
    with pytest.raises(features.UnknownFeature, match="without a feature"):
        features.check_names(())


# ---- the tier from outside: a pytest session that cannot have a guest -----------------------------------
def _pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "tests/vm/test_features.py", "-k", "netem_delay", *args],
                          capture_output=True, text=True, cwd=runner.REPO, env={**os.environ, **(env or {})},
                          timeout=300)


@pytest.mark.kernel  # without root its child run skips the netem test for want of root, not of a guest
@pytest.mark.skipif(IN_GUEST, reason="checks the host side of the tier")
def test_tier_skips_or_fails_with_the_reason_where_no_guest_can_run() -> None:
    if features.probe("netem")[0]:
        pytest.skip("this kernel has netem: the netem test runs on the host, no guest involved")
    if runner.kvm_usable()[0]:
        pytest.skip("KVM works here, so disabling TCG does not stop the guest")
    off = _pytest("--nslab-vm=off")
    assert off.returncode == 0 and "the host kernel lacks netem and the VM tier is off" in off.stdout, off.stdout
    no_tcg = _pytest(env={"NSLAB_VM_ACCEL": "kvm"})
    assert no_tcg.returncode == 0 and "1 skipped" in no_tcg.stdout, no_tcg.stdout
    assert "VM tier: KVM asked for (NSLAB_VM_ACCEL=kvm) but not usable" in no_tcg.stdout
    assert "no guest ran: KVM asked for" in no_tcg.stdout  # the summary says it too
    required = _pytest("--nslab-vm-require", env={"NSLAB_VM_ACCEL": "kvm"})
    assert required.returncode == 1 and "no guest could run (--nslab-vm-require)" in required.stdout


# ---- real guests ---------------------------------------------------------------------------------------------
def _can_boot() -> None:
    if IN_GUEST:
        pytest.skip("no guest inside the guest")
    try:
        runner.availability()
    except runner.CannotRun as exc:
        pytest.skip(f"no guest here: {exc}")


GUEST_SCRIPT = r"""
set -u
echo to-stderr >&2
probe=.nslab-vm-probe-$$
touch /etc/nslab-vm-probe /tmp/nslab-vm-probe "$probe" "$SHARE/from-guest"
rm -f "$probe.gone"
touch /usr/nslab-vm-probe 2>/dev/null && usr=writable || usr=read-only
printf '{"release": "%s", "net": "%s", "usr": "%s", "pid1": "%s", "env": "%s", "probe": "%s"}\n' \
  "$(uname -r)" "$(ls /sys/class/net | tr '\n' ' ')" "$usr" "$(cat /proc/1/comm)" \
  "$(env | cut -d= -f1 | sort | tr '\n' ' ')" "$probe"
exit 7
"""


@pytest.mark.kernel
def test_guest_status_output_isolation(tmp_path: Path) -> None:
    _can_boot()
    links_before = sorted(lk["ifname"] for lk in json.loads(subprocess.check_output(["ip", "-j", "link"])))
    share = tmp_path / "share"
    share.mkdir()
    out: dict[str, bytes] = {"out": b"", "err": b""}

    def sink(port: str, data: bytes) -> None:
        out[port] += data

    guest = runner.Guest(timeout=300, shares=[str(share)], env={"SHARE": str(share)})
    res = guest.run(["bash", "-c", GUEST_SCRIPT], sink)
    assert res.status == 7, (out, res.console)
    assert out["err"] == b"to-stderr\n"
    facts = json.loads(out["out"])
    assert facts["release"] == runner.prepare().release != os.uname().release
    assert facts["net"].split() == ["lo"]  # no network device at all
    assert facts["usr"] == "read-only" and facts["pid1"] == "bash"
    assert facts["env"].split() == ["HOME", "LANG", "PATH", "PWD", "SHARE", "SHLVL", "TERM", "_"]
    # Writes stayed in the guest, except to the share.
    assert not os.path.exists("/etc/nslab-vm-probe") and not os.path.exists("/usr/nslab-vm-probe")
    assert not (runner.REPO / facts["probe"]).exists()
    assert (share / "from-guest").exists()
    assert res.boot_s is not None and 0 < res.boot_s < res.wall_s
    links_after = sorted(lk["ifname"] for lk in json.loads(subprocess.check_output(["ip", "-j", "link"])))
    assert links_after == links_before


@pytest.mark.kernel
def test_guest_killed_at_its_timeout() -> None:
    _can_boot()
    res = runner.Guest(timeout=3).run(["sleep", "600"], lambda port, data: None)
    assert res.status == runner.EXIT_TIMEOUT and res.wall_s < 60


@pytest.mark.kernel
def test_vm_run_command_line_passes_the_exit_status() -> None:
    _can_boot()
    res = subprocess.run([str(runner.REPO / "scripts" / "vm-run"), "--", "sh", "-c", "echo $((6*7)); exit 3"],
                         capture_output=True, text=True, timeout=300)
    assert (res.returncode, res.stdout) == (3, "42\n"), res.stderr
    assert shutil.which("sh")


def test_in_slice_matches_node_ids_files_and_directories() -> None:
    class Item:
        nodeid = "tests/kernel/test_x.py::test_a[1]"

        def get_closest_marker(self, name: str) -> None:
            return None

    item = Item()
    for entry in ("tests/kernel/test_x.py::test_a[1]", "tests/kernel/test_x.py::test_a", "tests/kernel/test_x.py",
                  "tests/kernel", "tests/kernel/", "tests"):
        assert tier.in_slice(item, [entry]), entry  # type: ignore[arg-type]
    for entry in ("tests/kernel/test_x.py::test_", "tests/ker", "tests/kernel/test_x", "tests/kernel/test_y.py",
                  "tests/kernel/t"):
        assert not tier.in_slice(item, [entry]), entry  # type: ignore[arg-type]


def test_stand_ins_report_what_the_guest_recorded() -> None:
    option = SimpleNamespace(nslab_vm_require=False)
    session = tier.GuestSession(SimpleNamespace(option=option), [])  # type: ignore[arg-type]
    session.ran = True
    session.result = runner.Result(124, 50.0, 5.0, "tcg", console="[    9.0] the last console line")
    session.report = {"kernel": "6.1.0-57-amd64", "running": "t.py::hung", "tests": {
        "t.py::ok": {"outcome": "passed"},
        "t.py::bad": {"outcome": "failed", "when": "call", "longrepr": "E   assert 1 == 2"},
        "t.py::skip": {"outcome": "skipped", "reason": "iperf3 is not installed"},
        "t.py::hung": {"outcome": "passed"}}}  # its setup passed, then the guest was killed

    def result(nodeid: str) -> None:
        session.result_of(SimpleNamespace(guest_nodeid=nodeid))  # type: ignore[arg-type]

    result("t.py::ok")
    with pytest.raises(tier.GuestFailure, match=r"kernel 6\.1\.0-57-amd64\), call:\nE   assert 1 == 2"):
        result("t.py::bad")
    with pytest.raises(pytest.skip.Exception, match="in the guest: iperf3 is not installed"):
        result("t.py::skip")
    with pytest.raises(tier.GuestFailure, match=r"(?s)exit status 124.*was running when the guest stopped.*last cons"):
        result("t.py::hung")
    with pytest.raises(tier.GuestFailure, match=r"no result from the guest for t\.py::never"):
        result("t.py::never")
    session.cannot = "QEMU is not installed (qemu-system-x86_64; apt-get install qemu-system-x86)"
    with pytest.raises(pytest.skip.Exception, match=r"VM tier: QEMU is not installed \(qemu"):
        result("t.py::ok")
    option.nslab_vm_require = True
    with pytest.raises(tier.GuestFailure, match=r"no guest could run \(--nslab-vm-require\): QEMU is not installed"):
        result("t.py::ok")
