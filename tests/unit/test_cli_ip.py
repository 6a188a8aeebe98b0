"""iproute2 habits in the CLI (issue 13), the parser's side: abbreviations in ip's own order (from iproute2's
source), -s in the help, one `nslab:` per error, hints that keep -n NS. Against `ip` itself:
tests/kernel/test_cli_ip.py."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

import pytest
from conftest import CliResult

from nslab.cli.main import IP_OBJECTS, IP_VERBS, build_parser, resolve_word

Cli = Callable[..., CliResult]
# ---- abbreviations (no root) ----------------------------------------------------------------------
def _ip_object(word: str) -> str | None:
    """The object `ip WORD help` takes WORD for, from ip's usage line (no root, nothing changed)."""
    res = subprocess.run(["ip", word, "help"], capture_output=True, text=True)
    m = re.search(r"Usage:\s+ip (\w+)", res.stdout + res.stderr)
    return m.group(1) if m else None


IP_TO_NSLAB = {"address": "addr", "addr": "addr", "route": "route", "neigh": "neigh", "neighbor": "neigh",
               "neighbour": "neigh", "link": "link", "netns": "ns"}


def test_object_abbreviations_are_ips() -> None:
    """Every prefix of every ip object nslab has is taken for the object ip takes it for (ip's own answer)."""
    names = ["ns", "link", "addr", "route", "neigh", "ifconfig", "probe", "demo", "lab"]
    checked = 0
    for spelling, _ in IP_OBJECTS:
        for n in range(1, len(spelling) + 1):
            word = spelling[:n]
            theirs = _ip_object(word)
            assert theirs is not None, word
            want = IP_TO_NSLAB.get(theirs)
            if want is None:  # ip takes it for an object nslab lacks
                continue
            assert resolve_word(word, IP_OBJECTS, names) == want, (word, theirs)
            checked += 1
    assert checked >= 20
    assert resolve_word("la", IP_OBJECTS, names) == "lab"  # not ip's: nslab's own unique prefix
    assert resolve_word("d", IP_OBJECTS, names) == "demo"
    assert resolve_word("zz", IP_OBJECTS, names) == "zz"


@pytest.mark.parametrize(("argv", "obj", "verb"), [
    (["l"], "link", "show"), (["link"], "link", "show"), (["l", "sh"], "link", "show"),
    (["link", "lst"], "link", "show"), (["link", "l"], "link", "show"), (["a"], "addr", "show"),
    (["addr"], "addr", "show"), (["address", "show"], "addr", "show"), (["addr", "s"], "addr", "show"),
    (["a", "list"], "addr", "show"), (["r"], "route", "show"), (["ro", "sh"], "route", "show"),
    (["n"], "neigh", "show"), (["neighbour"], "neigh", "show"), (["neighbor", "lst"], "neigh", "show"),
    (["ns"], "ns", "list"), (["netns", "l"], "ns", "list"), (["la", "list"], "lab", "list"),
    (["li", "s", "lo", "up"], "link", "set"), (["link", "d", "x0"], "link", "del"),
    (["l", "a", "x0", "type", "bridge"], "link", "add"), (["r", "d", "default"], "route", "del"),
])
def test_abbreviations_parse_as_ip(argv: list[str], obj: str, verb: str) -> None:
    args = build_parser().parse_args(argv)
    assert args.object == obj
    assert args.verb in (verb, *[s for s, n in IP_VERBS.get(obj, []) if n == verb])
    assert args.handler.__module__ == f"nslab.cli.{obj}"


def test_verb_orders_follow_iproute2_source() -> None:
    """`ip link s` is set (set before show in iplink.c), `ip addr s` show; both ends of every table are ours."""
    assert resolve_word("s", IP_VERBS["link"], ["show", "list", "ls", "set", "add", "del", "delete"]) == "set"
    assert resolve_word("s", IP_VERBS["addr"], ["show", "list", "ls", "add", "del", "delete"]) == "show"
    assert resolve_word("r", IP_VERBS["route"], ["show", "list", "ls", "add", "del", "delete"]) == "r"  # replace
    parser = build_parser()
    objects = next(a for a in parser._actions if a.dest == "object").choices
    assert objects is not None
    for obj, table in IP_VERBS.items():
        verbs = next(a for a in objects[obj]._actions if a.dest == "verb").choices  # type: ignore[index]
        assert verbs is not None
        assert all(name in verbs for _, name in table), obj


def test_stats_option_in_help() -> None:
    text = build_parser().format_help()
    assert re.search(r"-s, --stats\s+with counters", text) and "-br, --brief" in text and "-4 " in text


# ---- errors (no root) -----------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [[], ["frob"], ["link", "frob"], ["lab"], ["link", "show", "--frob"],
                                  ["route", "r"], ["-n"], ["addr", "add"], ["neigh", "show", "nud", "bogus"]])
def test_argparse_errors_say_nslab_once(cli: Cli, argv: list[str]) -> None:
    res = cli(*argv)
    assert res.rc == 2, res
    first = res.err.splitlines()[0]
    assert first.startswith("nslab: ") and first.count("nslab") == 1, res.err
    assert "Traceback" not in res.err


def test_hint_keeps_netns(cli: Cli) -> None:
    res = cli("-n", "some-ns", "addr", "add", "10.0.0.1/24")
    assert res.rc == 2 and "hint: write 'nslab -n some-ns addr add 10.0.0.1/24 dev DEV'" in res.err, res.err
    res = cli("--netns", "other", "addr", "add", "10.0.0.1/24")
    assert "'nslab -n other addr add" in res.err, res.err
    res = cli("addr", "add", "10.0.0.1/24")  # no -n: none added
    assert "'nslab addr add 10.0.0.1/24 dev DEV'" in res.err, res.err
    res = cli("-n", "some-ns", "link", "frob")  # --help needs no namespace
    assert "see 'nslab link --help'" in res.err, res.err


