"""Per-namespace sysctls (net.*), written by a thread that is inside the namespace."""

from __future__ import annotations

import os

from ..errors import FeatureMissing


def write(key: str, value: str) -> None:
    """Write net.* sysctl KEY in the calling thread's network namespace (/proc/sys/net is per netns)."""
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FeatureMissing(
            f"sysctl {key} does not exist on this kernel", "check the key or the kernel build"
        ) from None
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read(key: str) -> str:
    with open("/proc/sys/" + key.replace(".", "/")) as f:
        return f.read().strip()
