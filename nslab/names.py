"""Validation of the names users give nslab: namespaces, interfaces, labs and their nodes (pure: no kernel,
no root). Every module that takes, stores or recognises such a name asks here."""

from __future__ import annotations

import functools
import re

from .errors import UsageError

IFNAMSIZ = 16  # kernel limit including the trailing NUL
NAME_MAX = 255
LAB_NAME_MAX = 12
NODE_NAME_MAX = 10  # a node's namespace is f"{lab}-{node}": short enough to read in `ip netns list`
LAB_NAME_RE = re.compile(r"[a-z][a-z0-9-]*")
NODE_NAME_RE = re.compile(r"[a-z][a-z0-9-]*")
IMPLICIT_SWITCH_RE = re.compile(r"lan[0-9]+")  # the switches nslab adds for links of 3+ endpoints
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


def is_lab_name(name: object) -> bool:
    """Whether NAME is a lab name nslab could have made (a record file, a marker, a lock must be one)."""
    return isinstance(name, str) and 0 < len(name) <= LAB_NAME_MAX and LAB_NAME_RE.fullmatch(name) is not None


def is_node_name(name: object) -> bool:
    return isinstance(name, str) and 0 < len(name) <= NODE_NAME_MAX and NODE_NAME_RE.fullmatch(name) is not None


def check_lab_name(name: object, what: str = "lab name") -> str:
    """A lab name (it prefixes every namespace name): for the command line and file paths, where there is
    no file line. Anything else never reaches a file path or the kernel."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"invalid {what}: it is empty", "give the lab's name (an unset shell variable?)")
    if not is_lab_name(name):
        raise UsageError(f"invalid {what} {name!r}",
                         f"lab names are 1..{LAB_NAME_MAX} characters from a-z, 0-9 and '-', starting with a letter; "
                         "see 'nslab lab list'")
    return name


def check_node_name(name: object, what: str = "node name") -> str:
    """A node of a lab as the command line names it (lanN, the implicit switches, included)."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"invalid {what}: it is empty", "give a node's name (an unset shell variable?)")
    if not is_node_name(name):
        raise UsageError(f"invalid {what} {name!r}",
                         f"node names are 1..{NODE_NAME_MAX} characters from a-z, 0-9 and '-', starting with a "
                         "letter; 'nslab lab status LAB' lists them")
    return name


@functools.lru_cache(maxsize=65536)
def natural_key(name: str) -> tuple[tuple[str, int], ...]:
    """Sort key that puts h2 before h10 (plain string order would not)."""
    return tuple((text, int(num) if num else -1) for text, num in re.findall(r"(\D*)(\d*)", name) if text or num)


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
