"""A real distributed program under partition: a 3-member etcd cluster in an nslab lab.

Run as root (python examples/etcd_partition.py). It needs etcd and etcdctl: on PATH, or unpacked into
.cache/etcd by `scripts/bootstrap.sh --dev`. docs/tutorial-etcd.md walks through it; tests/kernel/test_etcd.py
asserts the same promises.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nslab import Lab

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "etcd" / "usr" / "bin"


def etcd_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    local = CACHE / name
    return str(local) if local.exists() else None


@dataclass
class Reply:
    ok: bool
    out: str
    seconds: float


class Etcd:
    """etcd members in lab hosts; each listens on its lab address and on its own 127.0.0.1."""

    def __init__(self, lab: Lab, members: list[str], workdir: str) -> None:
        self.lab, self.members, self.workdir = lab, members, workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.etcd, self.etcdctl = etcd_bin("etcd"), etcd_bin("etcdctl")
        if not self.etcd or not self.etcdctl:
            raise RuntimeError("etcd and etcdctl are needed: run scripts/bootstrap.sh --dev")

    def start(self) -> None:
        ip = {m: self.lab[m].ipv4 for m in self.members}
        cluster = ",".join(f"{m}=http://{ip[m]}:2380" for m in self.members)
        for m in self.members:
            log = open(os.path.join(self.workdir, f"{m}.log"), "wb")  # noqa: SIM115 (the child keeps it)
            self.procs.append(self.lab[m].popen([
                str(self.etcd), "--name", m, "--data-dir", os.path.join(self.workdir, f"{m}.etcd"),
                "--listen-peer-urls", f"http://{ip[m]}:2380",
                "--initial-advertise-peer-urls", f"http://{ip[m]}:2380",
                "--listen-client-urls", f"http://{ip[m]}:2379,http://127.0.0.1:2379",
                "--advertise-client-urls", f"http://{ip[m]}:2379",
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", self.lab.name,
                "--heartbeat-interval", "100", "--election-timeout", "1000",
            ], resolve=False, stdout=log, stderr=subprocess.STDOUT))
            log.close()

    def ctl(self, member: str, *args: str, timeout: str = "2s") -> Reply:
        """etcdctl run inside MEMBER's namespace against its own local endpoint."""
        t0 = time.monotonic()
        res = self.lab[member].run(
            [str(self.etcdctl), "--endpoints=http://127.0.0.1:2379", f"--command-timeout={timeout}", *args],
            resolve=False, capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"},
        )
        return Reply(res.returncode == 0, (res.stdout or res.stderr).strip(), time.monotonic() - t0)

    def put(self, member: str, key: str, value: str) -> Reply:
        return self.ctl(member, "put", key, value)

    def get(self, member: str, key: str) -> Reply:
        """A linearizable read: it needs the member to reach a quorum."""
        return self.ctl(member, "get", key, "--print-value-only")

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.ctl(m, "endpoint", "health").ok for m in self.members):
                return
            time.sleep(0.2)
        raise TimeoutError(f"etcd did not become healthy in {timeout} s (logs in {self.workdir})")

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@contextmanager
def etcd_lab(name: str = "etcd3") -> Iterator[tuple[Lab, Etcd]]:
    """A lab of three hosts on a switch with an etcd member on each; everything removed on exit."""
    workdir = tempfile.mkdtemp(prefix="nslab-etcd-")
    with Lab.topo("single", 3, name=name) as lab:
        cluster = Etcd(lab, ["h1", "h2", "h3"], workdir)
        try:
            cluster.start()
            cluster.wait_healthy()
            yield lab, cluster
        finally:
            cluster.stop()
            shutil.rmtree(workdir, ignore_errors=True)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> float:
    """Poll until check() holds; return how long it took."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(0.2)
    return time.monotonic() - t0


def converged(etcd: Etcd, key: str) -> bool:
    replies = [etcd.get(m, key) for m in etcd.members]
    return all(r.ok for r in replies) and len({r.out for r in replies}) == 1


def main() -> None:
    with etcd_lab() as (lab, etcd):
        print("healthy: put via h1:", etcd.put("h1", "color", "red").out, "| get via h3:", etcd.get("h3", "color").out)

        lab.partition(["h1"], ["h2", "h3"])
        print("partition: h1 | h2,h3")
        took = wait_for("majority write", lambda: etcd.put("h2", "color", "blue").ok)
        print(f"  the majority (h2, h3) accepts writes again after {took:.1f} s (a new leader is elected)")
        minority = etcd.put("h1", "color", "green")
        print(f"  the minority (h1) does not: put failed after {minority.seconds:.1f} s; "
              f"linearizable read ok={etcd.get('h1', 'color').ok}")

        lab.heal()
        took = wait_for("convergence", lambda: converged(etcd, "color"))
        print(f"healed: all members read {etcd.get('h1', 'color').out!r} after {took:.1f} s "
              "(the minority's timed-out write may or may not have been applied: it was indeterminate)")
        print("  and h1 takes writes again:", etcd.put("h1", "color", "purple").ok)


if __name__ == "__main__":
    main()
