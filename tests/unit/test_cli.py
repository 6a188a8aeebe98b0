"""Bad input at the CLI that is refused before any namespace is opened: exit 2 with a message naming the thing
and a hint. The refusals that need a namespace are in tests/kernel/test_cli.py."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from conftest import CliResult

Cli = Callable[..., CliResult]


def _usage(res: CliResult, *words: str) -> None:
    assert res.rc == 2, res
    assert res.err.startswith("nslab: ") and "hint:" in res.err, res.err
    assert "Traceback" not in res.err
    for w in words:
        assert w in res.err, (w, res.err)


# ---- names (no root needed: refused before the kernel is asked) ---------------------------------
@pytest.mark.parametrize(("bad", "why"), [
    ("", "empty"), ("a/b", "'/'"), ("..", "reserved"), (".", "reserved"), ("a b", "whitespace"),
    ("tab\there", "whitespace"), ("x" * 256, "bytes"),
])
def test_ns_add_invalid_name(cli: Cli, bad: str, why: str) -> None:
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    res = cli("ns", "add", bad)
    _usage(res, "namespace name", why)
    after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert not (after - before) & {bad, bad.split("/")[0]}  # others' tests may add names meanwhile


@pytest.mark.parametrize("verb", [["del"], ["pids"], ["exec"]])
def test_ns_verbs_invalid_name(cli: Cli, verb: list[str]) -> None:
    extra = ["--", "true"] if verb == ["exec"] else []
    _usage(cli("ns", *verb, "a/b", *extra), "namespace name", "'/'")


def test_unknown_namespace_is_exit_2(cli: Cli) -> None:
    _usage(cli("-n", "nslabt-surely-not-there", "link", "show"), "nslabt-surely-not-there", "does not exist")


def test_unknown_object_and_verb(cli: Cli) -> None:
    _usage(cli("lnk", "show"), "lnk")
    _usage(cli("link", "shwo"), "shwo")
    _usage(cli("lab"), "VERB")  # an object without a default verb (a bare ip object shows: tests/kernel/test_cli_ip.py)


@pytest.mark.parametrize("argv", [
    ["lab", "up", "--topo", "single,2", "--name", "nslabtnever", "-n", "nslabt-x"],
    ["-n", "nslabt-x", "lab", "list"], ["-n", "nslabt-x", "ns", "list"], ["-n", "nslabt-x", "ns", "add", "nslabt-y"],
    ["demo", "-n", "nslabt-x"],
])
def test_n_where_it_means_nothing_is_refused_not_ignored(cli: Cli, argv: list[str]) -> None:
    """-n is accepted before or after any object; on lab, ns and demo it once was silently ignored (lab up
    with -n of a namespace that does not exist brought the lab up, exit 0)."""
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    _usage(cli(*argv), "-n nslabt-x", "drop -n")
    after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert not {n for n in after - before if n.startswith(("nslabtnever", "nslabt-y"))}


def test_malformed_values_before_any_kernel_call(cli: Cli) -> None:
    # The namespace does not exist: if validation came after the lookup we would see "does not exist".
    n = "nslabt-surely-not-there"
    _usage(cli("-n", n, "addr", "add", "10.0.0.300/24", "dev", "lo"), "10.0.0.300/24")
    _usage(cli("-n", n, "addr", "add", "10.0.0.1/33", "dev", "lo"), "10.0.0.1/33")
    _usage(cli("-n", n, "addr", "add", "fd00::g/64", "dev", "lo"), "fd00::g/64")
    _usage(cli("-n", n, "addr", "add", "10.0.0.1/24"), "no device")
    _usage(cli("-n", n, "addr", "add", "10.0.0.1/24", "dve", "lo"), "dve", "did you mean 'dev'")


