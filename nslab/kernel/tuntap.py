"""Persistent tap devices through /dev/net/tun (TUNSETIFF + TUNSETPERSIST), as `ip tuntap add` does."""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from ..errors import ExistsError, FeatureMissing, KernelError, PermissionDenied
from ..names import check_ifname

TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_TUN_EXCL = 0x8000


def create_tap(name: str) -> None:
    """Create persistent tap NAME in the calling thread's namespace."""
    check_ifname(name)
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FeatureMissing(
            "cannot create tap: /dev/net/tun is missing", "load the tun module (modprobe tun)"
        ) from None
    except PermissionError:
        raise PermissionDenied("cannot open /dev/net/tun: permission denied", "run as root") from None
    try:
        ifr = struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL)
        try:
            fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as exc:
            if exc.errno in (errno.EBUSY, errno.EEXIST):
                raise ExistsError(f"cannot create tap {name!r}: a device of that name exists",
                                  "pick another name or delete it first") from None
            raise KernelError(f"cannot create tap {name!r}: {exc.strerror}", exc.errno or 0) from None
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    finally:
        os.close(fd)
