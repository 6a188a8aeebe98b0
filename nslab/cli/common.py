"""Helpers shared by the object modules: the target namespace, iproute2-style keyword arguments."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Sequence

from ..errors import UsageError
from ..names import check_ifname, check_netns_name
from ..namespace import Namespace


def target_ns(args: argparse.Namespace) -> Namespace:
    """The namespace named by -n (never created: a typo is an error), or the caller's own."""
    name = getattr(args, "netns", None)
    # `is not None`: -n "" (an unset shell variable) is refused by the parser, and must never mean the root.
    return Namespace.open(name) if name is not None else Namespace.root()


# ---- argument types: every name and number on the command line is checked while parsing, before any
# handler runs, so bad input is exit 2 with the argument named and never reaches the kernel.
# They raise UsageError (argparse passes it through, unlike ValueError), keeping nslab's own message and hint.

def checked(check: Callable[[str], object], flag: str) -> Callable[[str], str]:
    """An argparse type that validates with `check` (a names-style checker) and names the argument."""
    def convert(text: str) -> str:
        try:
            check(text)
        except UsageError as exc:
            word = flag.split("/")[0].lstrip("-").lower()
            said = re.search(rf"\b{re.escape(word)}\b", exc.message.lower().split(":")[0]) is not None
            raise UsageError(exc.message if said else f"{flag}: {exc.message}", exc.hint) from None
        return text

    convert.__name__ = flag  # argparse shows it in some errors
    return convert


netns_arg = checked(lambda t: check_netns_name(t), "-n/--netns")


def add_globals(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """--json and -n NS are accepted before the object and, for convenience, after it too."""
    # Sub-parsers must not overwrite what was given before the object, hence SUPPRESS there.
    parser.add_argument(
        "-j", "--json", action="store_true", default=False if top else argparse.SUPPRESS,
        help="machine-readable output (keys follow `ip -j`)",
    )
    parser.add_argument(
        "-n", "--netns", metavar="NS", default=None if top else argparse.SUPPRESS, type=netns_arg,
        help="operate inside namespace NS",
    )


def add_show_options(parser: argparse.ArgumentParser, top: bool = False, family: bool = True,
                     brief: bool = True) -> None:
    """ip's display options: -s (repeatable), -4/-6 and -br, before the object (top) and after a show verb."""
    keep = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    # Before the object and after the verb they add up (ip -s link show -s is not ip, but -s -s is): two dests.
    parser.add_argument("-s", "--stats", dest="stats" if top else "stats_here", action="count", default=keep(0),
                        help="with counters, as ip -s (-s -s: with error details)")
    if family:
        parser.add_argument("-4", dest="family", action="store_const", const=4, default=keep(None), help="IPv4 only")
        parser.add_argument("-6", dest="family", action="store_const", const=6, default=keep(None), help="IPv6 only")
    if brief:
        parser.add_argument("-br", "--brief", action="store_true", default=keep(False),
                            help="one line per device, as ip -br")


def stats_level(args: argparse.Namespace) -> int:
    """How many -s were given, before the object and after the verb."""
    return int(getattr(args, "stats", 0) or 0) + int(getattr(args, "stats_here", 0) or 0)


def emit_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=None)
    sys.stdout.write("\n")


def dev_arg(flag: str = "DEV") -> Callable[[str], str]:
    return checked(lambda t: check_ifname(t, "device name"), flag)


def lab_arg(flag: str = "LAB") -> Callable[[str], str]:
    from ..lab.topology import check_lab_name

    return checked(check_lab_name, flag)


def node_arg(flag: str = "NODE") -> Callable[[str], str]:
    from ..lab.topology import check_node_name

    return checked(check_node_name, flag)


def node_list_arg(flag: str) -> Callable[[str], str]:
    """Comma-separated node names (h1,h2): each one a valid name, none empty."""
    from ..lab.topology import check_node_name

    def check(text: str) -> None:
        if not text.strip():
            raise UsageError("no node names given", f"e.g. '{flag.split('/')[0]} h1,h2'")
        for part in text.split(","):
            check_node_name(part.strip())

    return checked(check, flag)


def no_zone(text: str, what: str) -> str:
    """An IPv6 zone id (fe80::1%eth0) is taken by Python's ipaddress, and silently dropped on the way to the
    kernel: refuse it where an address is given."""
    if "%" in text:
        raise UsageError(f"invalid {what} {text!r}: zone ids ('%...') are not supported here",
                         "give the address without '%ZONE' (the device goes in 'dev DEV')")
    return text


_INT = re.compile(r"[0-9]+")
_DEC = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


def parse_int(text: str, what: str, lo: int, hi: int) -> int:
    """A whole number in plain ASCII decimal: int() would also take '٣', '+3', '3_0', ' 3' and, with base 0,
    0x5dc and 0o17; '01500' (octal to ip) is refused too. Refused with the range as the fix."""
    ok = isinstance(text, str) and _INT.fullmatch(text) is not None and (text == "0" or not text.startswith("0"))
    value = int(text) if ok and len(text) <= 20 else None
    if value is None or not lo <= value <= hi:
        raise UsageError(f"invalid {what} {text!r}", f"{what} must be a whole number from {lo} to {hi}, "
                         "in decimal digits")
    return value


def parse_float(text: str, what: str, lo: float, hi: float) -> float:
    """A finite decimal number (12, 0.5): no inf, nan, exponents or other scripts' digits."""
    ok = isinstance(text, str) and _DEC.fullmatch(text) is not None and len(text) <= 32
    value = float(text) if ok else math.nan
    if not (math.isfinite(value) and lo <= value <= hi):
        raise UsageError(f"invalid {what} {text!r}", f"{what} must be a number from {lo:g} to {hi:g}, e.g. 2 or 0.5")
    return value


def ascii_arg(flag: str, parse: Callable[[str], object] | None = None) -> Callable[[str], str]:
    """A value spelled in ASCII (a rate, a time, a percentage), then checked by `parse` if given: the
    parsers' regular expressions and float() would take other scripts' digits."""
    def check(text: str) -> None:
        if not text.isascii() or not text.isprintable() or not text.strip():
            raise UsageError(f"invalid value {text!r}", "write it in plain ASCII, e.g. 10mbit, 100ms, 5%")
        if parse is not None:
            parse(text)

    return checked(check, flag)


def file_arg(flag: str) -> Callable[[str], str]:
    def check(text: str) -> None:
        if not text:
            raise UsageError("the file name is empty", "give the path of a file (an unset shell variable?)")
        if "\0" in text:
            raise UsageError("the file name holds a NUL byte", "give the path of a file")

    return checked(check, flag)


def int_arg(flag: str, lo: int, hi: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        return parse_int(text, flag, lo, hi)

    convert.__name__ = flag
    return convert


def seconds_arg(flag: str, lo: float = 0.001, hi: float = 86400.0) -> Callable[[str], float]:
    def convert(text: str) -> float:
        return parse_float(text, flag, lo, hi)

    convert.__name__ = flag
    return convert


def object_parser(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                  name: str, help_text: str) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    p = sub.add_parser(name, help=help_text, description=help_text)
    add_globals(p)
    verbs: argparse._SubParsersAction = p.add_subparsers(  # type: ignore[type-arg]
        dest="verb", metavar="VERB", parser_class=type(p))
    verbs.required = True
    return verbs


def verb_parser(verbs: argparse._SubParsersAction,  # type: ignore[type-arg]
                name: str, help_text: str, aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = verbs.add_parser(name, help=help_text, description=help_text,
                                                  aliases=list(aliases))
    add_globals(p)
    return p


class Words:
    """iproute2-style trailing words: `mtu 9000 master br0 up`. Each key is taken once, by name."""

    def __init__(self, words: Sequence[str], context: str) -> None:
        self.words = list(words)
        self.context = context
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.words)

    def next(self) -> str:
        word = self.words[self.pos]
        self.pos += 1
        return word

    def value(self, key: str, meaning: str) -> str:
        if not self.more():
            raise UsageError(f"{self.context}: '{key}' needs a value ({meaning})", f"write '{key} {meaning.upper()}'")
        return self.next()

    def integer(self, key: str, meaning: str, lo: int, hi: int) -> int:
        text = self.value(key, meaning)
        try:
            return parse_int(text, key, lo, hi)
        except UsageError as exc:
            raise UsageError(f"{self.context}: {exc.message}", exc.hint) from None

    def name(self, key: str, meaning: str, check: Callable[[str], object]) -> str:
        """A value that names something (a device, a namespace): checked here, before any kernel call."""
        text = self.value(key, meaning)
        try:
            check(text)
            if not text:  # `via ""` must not mean "no gateway"
                raise UsageError(f"invalid {meaning}: it is empty", f"give the {meaning} (an unset shell variable?)")
        except UsageError as exc:
            raise UsageError(f"{self.context}: {key}: {exc.message}", exc.hint) from None
        return text

    def unknown(self, word: str, known: Sequence[str]) -> UsageError:
        import difflib

        close = difflib.get_close_matches(word, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "known words: " + ", ".join(known)
        return UsageError(f"{self.context}: unknown argument {word!r}", hint)
