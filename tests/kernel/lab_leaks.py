"""What a lab may leave behind, read from the kernel and /proc (a helper of the kernel tests, not a test)."""

from __future__ import annotations

import os

from conftest import _pids_in

from nslab.lab import nodeview as nv


def leftovers(name: str, netns: list[str]) -> list[str]:
    """What a lab may leave: processes in its netns, its abstract socket, mounts from its directory (in any
    process's mount table), its directory, its namespaces."""
    found = []
    for ns in netns:
        if os.path.lexists(f"/run/netns/{ns}"):
            found.append(f"netns {ns}")
        found += [f"pid {p} in {ns}" for p in _pids_in(ns)]
    with open("/proc/net/unix") as f:
        sock = f"@nslab/{os.getuid()}/{name}"
        found += [f"socket {sock}" for line in f if line.split()[-1] == sock]
    labdir = nv.lab_dir(name)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/mountinfo") as f:
                found += [f"mount in pid {entry}: {line.split()[4]}" for line in f if labdir + "/" in line]
        except OSError:
            continue
    if os.path.exists(labdir):
        found.append(f"dir {labdir}")
    return found
