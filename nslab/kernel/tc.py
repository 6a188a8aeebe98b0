"""Traffic control inside a namespace, through the `tc` program (iproute2): rate limits and feature probes.

nslab marks every qdisc it creates with the handle `5e1a:` and removes only qdiscs carrying it.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from ..errors import FeatureMissing, KernelError, NslabError
from .nft import run_in

HANDLE = "5e1a:"  # nslab's qdiscs: "5e1a" reads "sela(b)"; never a handle the kernel assigns by itself
_PROBE_HANDLE = "5e1b:"


def tc_path() -> str:
    path = shutil.which("tc") or ("/usr/sbin/tc" if shutil.which("/usr/sbin/tc") else None)
    if path is None:
        raise FeatureMissing("the 'tc' program (iproute2) is not installed; rate limits need it",
                             "install it: apt-get install iproute2")
    return path


def _tc(netns: str, *args: str) -> tuple[int, str]:
    res = run_in(netns, [tc_path(), *args])
    return res.returncode, (res.stderr or res.stdout).strip()


def qdiscs(netns: str, dev: str | None = None) -> list[dict[str, Any]]:
    """`tc -j qdisc show [dev DEV]` in NETNS, parsed."""
    res = run_in(netns, [tc_path(), "-j", "qdisc", "show", *(["dev", dev] if dev else [])])
    if res.returncode != 0:
        raise KernelError(f"tc qdisc show failed in {netns!r}: {res.stderr.strip()}", 22)
    data: list[dict[str, Any]] = json.loads(res.stdout or "[]")
    return data


def root_qdisc(netns: str, dev: str) -> dict[str, Any] | None:
    for q in qdiscs(netns, dev):
        if q.get("root"):
            return q
    return None


def is_ours(q: dict[str, Any] | None) -> bool:
    return q is not None and q.get("handle") == HANDLE


def set_rate(netns: str, dev: str, bits_per_s: int, mtu: int = 1500) -> None:
    """Shape DEV's egress to BITS_PER_S with a token bucket (tbf), replacing only nslab's own root qdisc."""
    root = root_qdisc(netns, dev)
    if root is not None and not is_ours(root) and root.get("kind") != "noqueue":
        raise NslabError(f"{dev} in {netns!r} has a root qdisc nslab did not create ({root.get('kind')}); "
                         "leaving it alone", "remove it yourself first if the rate limit should replace it")
    # Burst: 25 ms of traffic, at least two full frames (tbf drops a frame bigger than its bucket).
    burst = max(bits_per_s // 8 // 40, 2 * (mtu + 64), 4096)
    rc, msg = _tc(netns, "qdisc", "replace", "dev", dev, "root", "handle", HANDLE, "tbf",
                  "rate", f"{bits_per_s}bit", "burst", str(burst), "latency", "50ms")
    if rc != 0:
        raise KernelError(f"cannot limit the rate of {dev} in {netns!r}: {msg}", 22)


def clear_rate(netns: str, dev: str) -> None:
    """Remove nslab's root qdisc from DEV (the device gets its default back); others are left alone."""
    if not is_ours(root_qdisc(netns, dev)):
        return
    rc, msg = _tc(netns, "qdisc", "del", "dev", dev, "root", "handle", HANDLE)
    if rc != 0:
        raise KernelError(f"cannot remove the rate limit of {dev} in {netns!r}: {msg}", 22)


def have_qdisc(netns: str, kind: str, *args: str) -> bool:
    """Whether the kernel has qdisc KIND: add one to NETNS's lo under a probe handle, then delete it."""
    rc, msg = _tc(netns, "qdisc", "add", "dev", "lo", "root", "handle", _PROBE_HANDLE, kind, *args)
    if rc == 0:
        _tc(netns, "qdisc", "del", "dev", "lo", "root", "handle", _PROBE_HANDLE)
        return True
    if "unknown" in msg.lower() or "no such file" in msg.lower() or "not supported" in msg.lower():
        return False
    raise KernelError(f"cannot probe for the {kind} qdisc in {netns!r}: {msg}", 22)
