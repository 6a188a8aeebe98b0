"""Validation of the names users give nslab (pure: no kernel, no root)."""

from __future__ import annotations

from .errors import UsageError

IFNAMSIZ = 16  # kernel limit including the trailing NUL
NAME_MAX = 255
# /proc/sys/net/ipv{4,6}/conf/{all,default} exist in every namespace: the kernel refuses a device so named.
RESERVED_IFNAMES = ("all", "default")


def check_netns_name(name: str, what: str = "namespace name") -> str:
    """A namespace name is a file in /run/netns: the rules of iproute2's `invalid_name`, plus no whitespace.

    Whitespace is refused because `ip netns list` prints names space-separated and shells split them.
    """
    _common(name, what, limit=NAME_MAX)
    return name


def check_ifname(name: str, what: str = "interface name") -> str:
    """An interface name: at most 15 bytes, no '/', ':' or whitespace, not '.' or '..' (dev_valid_name)."""
    _common(name, what, limit=IFNAMSIZ - 1)
    if name in RESERVED_IFNAMES:
        raise UsageError(
            f"invalid {what} {name!r}: reserved (the kernel keeps per-interface settings under "
            f"net.ipv4.conf.{name})",
            f"choose another {what}, for example {name + '0'!r}",
        )
    if ":" in name:
        raise UsageError(
            f"invalid {what} {name!r}: ':' is not allowed in interface names (it marks old-style aliases)",
            "choose a name without ':', for example " + repr(name.replace(":", "-")),
        )
    return name


def _common(name: str, what: str, limit: int) -> None:
    if not isinstance(name, str):
        raise UsageError(f"invalid {what}: expected text, got {type(name).__name__}", f"give the {what} as text")
    if name == "":
        raise UsageError(f"invalid {what}: it is empty", f"give a non-empty {what} (an unset shell variable?)")
    check_utf8(name, f"{what} {name!r}")
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


def check_utf8(text: str, what: str) -> str:
    """Text that can be written as UTF-8: a command line with undecodable bytes reaches Python as lone
    surrogates (surrogateescape), and YAML's "\\udcff" escape makes them too; the kernel, files and JSON
    records need real text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        bad = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"lone surrogate U+{code:04X}"
        raise UsageError(f"invalid {what}: not valid UTF-8 ({bad} at character {exc.start + 1})",
                         "use plain text (letters, digits, '-'); check the terminal's encoding is UTF-8") from None
    return text
