"""Traffic control inside a namespace: netem through rtnetlink, tbf rate limits and probes through `tc`.

nslab marks every root qdisc it creates with the handle `5e1a:` and removes only qdiscs carrying it. A
direction with both netem and a rate holds netem at the root (5e1a:) and the tbf as its child (5e1c:, under
class 5e1a:1): packets are delayed, then shaped (docs/impairments.md has what the kernel accepts and why).

netem goes through nslab's own rtnetlink codec (nslab.kernel.netem encodes its options byte for byte as tc does):
one request, no process to start, which matters inside slow guests and in labs of many links.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
from typing import TYPE_CHECKING, Any

from ..errors import FeatureMissing, KernelError, NslabError
from .netlink import NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, attr, attr_str
from .nft import run_in

if TYPE_CHECKING:
    from ..netem import Netem
    from .rtnl import Qdisc

HANDLE = "5e1a:"  # nslab's qdiscs: "5e1a" reads "sela(b)"; never a handle the kernel assigns by itself
_PROBE_HANDLE = "5e1b:"
CHILD = "5e1c:"  # the tbf under nslab's netem
ROOT_ID, CHILD_ID, NETEM_CLASS = 0x5E1A0000, 0x5E1C0000, 0x5E1A0001
RTM_NEWQDISC, RTM_DELQDISC = 36, 37
TCA_KIND, TCA_OPTIONS = 1, 2
TC_H_ROOT = 0xFFFFFFFF
_TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info


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
    _tbf(netns, dev, ["root", "handle", HANDLE], bits_per_s, mtu)


def _tbf(netns: str, dev: str, where: list[str], bits_per_s: int, mtu: int) -> None:
    # Burst: 25 ms of traffic, at least two full frames (tbf drops a frame bigger than its bucket).
    burst = max(bits_per_s // 8 // 40, 2 * (mtu + 64), 4096)
    rc, msg = _tc(netns, "qdisc", "replace", "dev", dev, *where, "tbf",
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


# ---- netem (rtnetlink) and the shape of one sending end ----------------------------------------------------
def req_netem(index: int, q: Netem, table: list[int] | None, change: bool) -> tuple[int, int, bytes]:
    """RTM_NEWQDISC for nslab's netem at DEV's root: created (exclusive), or CHANGE'd in place (every value
    said, since the kernel keeps what a change leaves out)."""
    from .netem import options

    flags = NLM_F_CREATE | (NLM_F_REPLACE if change else NLM_F_EXCL)
    body = (_TCMSG.pack(socket.AF_UNSPEC, index, ROOT_ID, TC_H_ROOT, 0) + attr_str(TCA_KIND, "netem")
            + attr(TCA_OPTIONS, options(q, table, complete=change)))
    return RTM_NEWQDISC, flags, body


def req_del(index: int, handle: int, parent: int) -> tuple[int, int, bytes]:
    return RTM_DELQDISC, 0, _TCMSG.pack(socket.AF_UNSPEC, index, handle, parent, 0)


def set_shape(netns: str, dev: str, rate: int, netem: Netem | None, mtu: int = 1500,
              previous: Netem | None = None) -> None:
    """Make DEV's egress nslab's shape: netem (and a tbf under it for RATE), a tbf alone, or nothing. Only
    nslab's own qdiscs are replaced or removed. PREVIOUS: the netem the kernel is believed to hold (a change
    in place keeps the delay table, so only a change back to uniform needs a new qdisc)."""
    from ..netem import load_table
    from .netlink import NetlinkError
    from .rtnl import Rtnl

    table = load_table(netem.distribution) if netem is not None else None  # before anything changes
    with Rtnl.open(netns) as r:
        index = r.index(dev)
        mine = [q for q in r.qdiscs() if q.ifindex == index]
        root = next((q for q in mine if q.parent == TC_H_ROOT), None)
        ours = root is not None and root.handle == ROOT_ID
        if root is not None and not ours and root.kind != "noqueue":
            raise NslabError(f"{dev} in {netns!r} has a root qdisc nslab did not create ({root.kind}); "
                             "leaving it alone", "remove it yourself first if the impairment should replace it")

        def send(req: tuple[int, int, bytes], what: str) -> None:
            try:
                r.nl.request(*req)
            except NetlinkError as exc:
                raise KernelError(f"cannot {what} on {dev} in {netns!r}: {exc}", exc.code) from None

        if netem is None:
            if ours and (root is None or root.kind != "tbf" or not rate):
                send(req_del(index, ROOT_ID, TC_H_ROOT), "remove nslab's qdisc")
            if rate:
                set_rate(netns, dev, rate, mtu)
            return
        in_place = ours and root is not None and root.kind == "netem" and (
            netem.distribution != "uniform" or (previous is not None and previous.distribution == "uniform"))
        if ours and not in_place:
            send(req_del(index, ROOT_ID, TC_H_ROOT), "replace nslab's qdisc")
        send(req_netem(index, netem, table, in_place), "set netem")
        child = in_place and any(q.handle == CHILD_ID and q.parent == NETEM_CLASS for q in mine)
    if rate:
        _tbf(netns, dev, ["parent", "5e1a:1", "handle", CHILD], rate, mtu)
    elif child:
        rc, msg = _tc(netns, "qdisc", "del", "dev", dev, "parent", "5e1a:1", "handle", CHILD)
        if rc != 0:
            raise KernelError(f"cannot remove the rate limit under netem on {dev} in {netns!r}: {msg}", 22)


def shapes(qdiscs: list[Qdisc], names: dict[int, str]) -> dict[str, tuple[str, bool]]:
    """ifname -> (kind of nslab's root qdisc, whether nslab's tbf is under it), from one qdisc dump."""
    out: dict[str, tuple[str, bool]] = {}
    children = {q.ifindex for q in qdiscs if q.handle == CHILD_ID and q.parent == NETEM_CLASS}
    for q in qdiscs:
        if q.parent == TC_H_ROOT and q.handle == ROOT_ID and q.ifindex in names:
            out[names[q.ifindex]] = (q.kind, q.ifindex in children)
    return out
