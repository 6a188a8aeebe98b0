"""Helpers shared by the object modules: the target namespace, iproute2-style keyword arguments."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..errors import UsageError
from ..namespace import Namespace


def target_ns(args: argparse.Namespace) -> Namespace:
    """The namespace named by -n (never created: a typo is an error), or the caller's own."""
    name = getattr(args, "netns", None)
    return Namespace.open(name) if name else Namespace.root()


def object_parser(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                  name: str, help_text: str) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    from .main import add_globals

    p = sub.add_parser(name, help=help_text, description=help_text)
    add_globals(p)
    verbs: argparse._SubParsersAction = p.add_subparsers(  # type: ignore[type-arg]
        dest="verb", metavar="VERB", parser_class=type(p))
    verbs.required = True
    return verbs


def verb_parser(verbs: argparse._SubParsersAction,  # type: ignore[type-arg]
                name: str, help_text: str, aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
    from .main import add_globals

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
            n = int(text, 0)
        except ValueError:
            n = lo - 1
        if not lo <= n <= hi:
            raise UsageError(f"{self.context}: invalid {key} {text!r}", f"{key} must be a number from {lo} to {hi}")
        return n

    def unknown(self, word: str, known: Sequence[str]) -> UsageError:
        import difflib

        close = difflib.get_close_matches(word, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "known words: " + ", ".join(known)
        return UsageError(f"{self.context}: unknown argument {word!r}", hint)
