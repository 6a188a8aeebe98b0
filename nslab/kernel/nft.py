"""nftables inside a namespace, through the `nft` program (the well-kept tool).

nslab owns the tables named `nslab` (families `inet` and `netdev`) in lab namespaces and nothing else.
A script goes to `nft -f -`, which the kernel applies as ONE transaction: all of it or none of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from ..errors import FeatureMissing, KernelError
from .spawn import ParkedThread, finish

TABLE = "nslab"  # the name of every table nslab creates (inet and netdev families)
FAMILIES = ("inet", "netdev")


def nft_path() -> str:
    """The `nft` program, or FeatureMissing naming the package that has it."""
    path = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)), None)
    if path is None:
        raise FeatureMissing("the 'nft' program (nftables) is not installed; partitions, loss and duplicate need it",
                             "install it: apt-get install nftables (Debian/Ubuntu), dnf install nftables (Fedora)")
    return path


def run_in(netns: str, argv: Sequence[str], input: str | None = None,
           timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a program inside NETNS (fast path: a parked thread spawns it), capturing its output as text."""
    parked = ParkedThread(netns)
    try:
        proc = parked.popen(list(argv), stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return finish(proc, input, timeout)
    finally:
        parked.close()


def reset_script(families: Sequence[str] = FAMILIES) -> str:
    """Lines that remove nslab's tables whether or not they exist (`add` of an existing table is a no-op)."""
    return "".join(f"add table {f} {TABLE}\ndelete table {f} {TABLE}\n" for f in families)


def apply(netns: str, script: str) -> None:
    """Apply SCRIPT in NETNS as one nft transaction; on refusal nothing of it is applied."""
    res = run_in(netns, [nft_path(), "-f", "-"], input=script)
    if res.returncode != 0:
        msg = (res.stderr or res.stdout).strip().splitlines()
        raise KernelError(f"nft refused the rules for namespace {netns!r}: {msg[0] if msg else 'no message'}", 22,
                          "nothing of this change was applied (nft applies a file as one transaction)")


def ruleset(netns: str) -> str:
    """`nft list ruleset` in NETNS (every table, not only nslab's: for comparisons before/after)."""
    res = run_in(netns, [nft_path(), "list", "ruleset"])
    if res.returncode != 0:
        raise KernelError(f"nft list ruleset failed in {netns!r}: {res.stderr.strip()}", 22)
    return res.stdout


def tables(netns: str) -> list[tuple[str, str]]:
    """(family, name) of every nft table in NETNS."""
    res = run_in(netns, [nft_path(), "list", "tables"])
    out = []
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "table":
            out.append((parts[1], parts[2]))
    return out
