"""Kernel features a test can ask for with `@pytest.mark.needs(...)`, and how to tell whether a kernel has one.

Each probe is iproute2 (an oracle nobody here wrote) in a throw-away network namespace (`unshare --net`):
nothing is created where anyone else can see it, and everything goes when the probe's process ends.
The kernel loads the module on demand (request_module), as it would for nslab.
"""

from __future__ import annotations

import functools
import subprocess

# name -> (what it is, the shell commands that succeed only where the kernel has it)
FEATURES: dict[str, tuple[str, str]] = {
    "netem": ("the netem qdisc (sch_netem): delay, jitter, loss, reorder",
              "tc qdisc add dev lo root netem delay 1ms"),
    "dummy": ("dummy links", "ip link add nslabp0 type dummy"),
    "vlan": ("802.1Q VLAN links (8021q)",
             "ip link add nslabp0 type veth peer name nslabp1 && "
             "ip link add link nslabp0 name nslabp0.5 type vlan id 5"),
    "wireguard": ("WireGuard links", "ip link add nslabp0 type wireguard"),
    "veth": ("veth pairs", "ip link add nslabp0 type veth peer name nslabp1"),
    "bridge": ("bridges", "ip link add nslabp0 type bridge"),
    "vxlan": ("VXLAN links", "ip link add nslabp0 type vxlan id 42 dstport 4789"),
    "macvlan": ("macvlan links",
                "ip link add nslabp0 type veth peer name nslabp1 && "
                "ip link add link nslabp0 name nslabp2 type macvlan"),
    "tbf": ("the tbf qdisc (rate limits)", "tc qdisc add dev lo root tbf rate 1mbit burst 4k latency 50ms"),
}


class UnknownFeature(ValueError):
    pass


def check_names(names: tuple[object, ...]) -> list[str]:
    """The feature names of a needs(...) marker; UnknownFeature names a bad one and lists the known."""
    if not names:
        raise UnknownFeature("needs() without a feature: name one, e.g. @pytest.mark.needs('netem')")
    out = []
    for n in names:
        if not isinstance(n, str) or n not in FEATURES:
            raise UnknownFeature(f"unknown kernel feature {n!r} in needs(); known: {', '.join(sorted(FEATURES))} "
                                 "(add a probe to tests/vm/features.py for a new one)")
        out.append(n)
    return out


@functools.cache
def probe(name: str) -> tuple[bool, str]:
    """(whether this kernel has feature NAME, what the probe said), once per process."""
    _, cmd = FEATURES[name]
    try:
        res = subprocess.run(["unshare", "--net", "--", "sh", "-ec", f"ip link set lo up; {cmd}"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"probe failed: {exc}"
    return res.returncode == 0, (res.stderr or res.stdout).strip()


def missing(names: list[str]) -> list[str]:
    return [n for n in names if not probe(n)[0]]
