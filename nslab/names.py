"""Validation of the names users give nslab (pure: no kernel, no root)."""

from __future__ import annotations

from .errors import UsageError

IFNAMSIZ = 16  # kernel limit including the trailing NUL
NAME_MAX = 255


def check_netns_name(name: str, what: str = "namespace name") -> str:
    """A namespace name is a file in /run/netns: the rules of iproute2's `invalid_name`, plus no whitespace.

    Whitespace is refused because `ip netns list` prints names space-separated and shells split them.
    """
    _common(name, what, limit=NAME_MAX)
    return name


def check_ifname(name: str, what: str = "interface name") -> str:
    """An interface name: at most 15 bytes, no '/', ':' or whitespace, not '.' or '..' (dev_valid_name)."""
    _common(name, what, limit=IFNAMSIZ - 1)
    if ":" in name:
        raise UsageError(
            f"invalid {what} {name!r}: ':' is not allowed in interface names (it marks old-style aliases)",
            "choose a name without ':', for example " + repr(name.replace(":", "-")),
        )
    return name


def _common(name: str, what: str, limit: int) -> None:
    if not isinstance(name, str) or name == "":
        raise UsageError(f"invalid {what}: it is empty", f"give a non-empty {what}")
    if name in (".", ".."):
        raise UsageError(f"invalid {what} {name!r}: '.' and '..' are reserved", f"choose another {what}")
    if "/" in name:
        raise UsageError(
            f"invalid {what} {name!r}: '/' is not allowed",
            "choose a name without '/', for example " + repr(name.replace("/", "-")),
        )
    if "\0" in name:
        raise UsageError(f"invalid {what} {name!r}: NUL is not allowed", f"choose another {what}")
    if any(c.isspace() for c in name):
        raise UsageError(
            f"invalid {what} {name!r}: whitespace is not allowed",
            "choose a name without spaces, for example " + repr("-".join(name.split())),
        )
    size = len(name.encode())
    if size > limit:
        raise UsageError(
            f"invalid {what} {name!r}: {size} bytes long, the kernel allows at most {limit}",
            f"shorten it to {limit} bytes, for example {name.encode()[:limit].decode(errors='ignore')!r}",
        )
