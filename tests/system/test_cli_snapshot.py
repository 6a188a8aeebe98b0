"""The CLI contract, byte for byte: `--help` of every object and verb, and what a few representative commands
print, compared with snapshots in tests/fixtures/cli/.

The snapshots were written by this file on the code before the CLI was reshaped (issue 10), so a refactor that
changes anything a user sees fails here. A change meant to be seen is re-recorded, and the diff reviewed:

    NSLAB_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/system/test_cli_snapshot.py \
        tests/kernel/test_cli_snapshot.py

argparse wraps help to the terminal width: COLUMNS is fixed at 100 for every snapshot.
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Callable, Iterator

import pytest
from conftest import REPO, CliResult

Cli = Callable[..., CliResult]
SNAPSHOTS = os.path.join(REPO, "tests", "fixtures", "cli")
UPDATE = os.environ.get("NSLAB_UPDATE_SNAPSHOTS") == "1"


@pytest.fixture(autouse=True)
def _columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")


def _compare(name: str, text: str) -> None:
    path = os.path.join(SNAPSHOTS, name)
    if UPDATE:
        os.makedirs(SNAPSHOTS, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        pytest.skip(f"snapshot {name} written; review its diff")
    with open(path, encoding="utf-8") as f:
        want = f.read()
    if text != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True), f"{name} (snapshot)",
                                            f"{name} (now)"))
        pytest.fail(f"the CLI output differs from tests/fixtures/cli/{name}:\n{diff}")


def _paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the parser tree (aliases included), depth first, in registration order."""
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _paths(sub, (*prefix, name))


def _block(cli: Cli, capsys: pytest.CaptureFixture[str], argv: list[str], ns: str | None = None) -> str:
    try:
        res = cli(*argv)
        rc, out, err = res.rc, res.out, res.err
    except SystemExit as exc:  # --help prints, then exits inside argparse
        cap = capsys.readouterr()
        rc, out, err = int(exc.code or 0), cap.out, cap.err
    shown = " ".join(repr(a) if (not a or " " in a) else a for a in argv)
    if ns is not None:
        shown, out, err = (s.replace(ns, "NS") for s in (shown, out, err))
    return f"=== nslab {shown}\n--- exit {rc}\n--- stdout\n{out}--- stderr\n{err}"


def test_help_of_every_object_and_verb(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    from nslab.cli.main import build_parser

    paths = list(_paths(build_parser()))
    assert ("link", "add") in paths and ("lab", "impair") in paths  # the walk reaches the verbs
    text = "".join(_block(cli, capsys, [*p, "--help"]) for p in paths)
    _compare("help.txt", text)


# Refused before any kernel call (no root needed): the messages and hints users see for bad input.
USAGE_CASES: list[list[str]] = [
    [], ["frob"], ["lab"], ["link", "frob"],  # a bare `link` is `link show` (issue 13): in the state reads
    ["link", "add", "x0"], ["link", "add", "x0", "type"], ["link", "add", "x0", "type", "bridgee"],
    ["link", "add", "x0", "typ", "bridge"], ["link", "add", "x0", "type", "bridge", "zzz"],
    ["link", "add", "x0", "type", "bridge", "peer", "y0"], ["link", "add", "x0", "type", "veth"],
    ["link", "add", "x0", "type", "veth", "peer"], ["link", "add", "x0", "type", "veth", "peer", "a/b"],
    ["link", "add", "x0", "type", "veth", "peer", "y0", "peer-netns", ""],
    ["link", "add", "x0", "type", "veth", "peer", "y0", "mtu", "67"],
    ["link", "add", "x0", "type", "tap", "mtu", "01500"], ["link", "add", "", "type", "bridge"],
    ["link", "add", "x0", "type", "vxlan"], ["link", "add", "x0", "type", "vxlan", "id", "16777216"],
    ["link", "add", "x0", "type", "vxlan", "id", "5", "remote", "1.2.3"],
    ["link", "add", "x0", "type", "vxlan", "id", "5", "remote", "fe80::1%eth0"],
    ["link", "add", "x0", "type", "vxlan", "id", "5", "dstport", "0", "remote", "1.2.3"],
    ["link", "add", "x0", "type", "vxlan", "id", "x", "dstport", "0"],
    ["link", "add", "x0", "type", "vxlan", "id", "5", "dev", ""],
    ["link", "add", "x0", "type", "vxlan", "id", "5", "mode", "bridge"],
    ["link", "add", "x0", "type", "macvlan"], ["link", "add", "x0", "type", "macvlan", "mode", "vepa"],
    ["link", "add", "x0", "type", "macvlan", "link", "v0", "mode", "bridged"],
    ["link", "add", "x0", "type", "macvlan", "link", "a b"],
    ["link", "set", "lo"], ["link", "set", "lo", "mtu", "5"], ["link", "set", "lo", "address", "zz"],
    ["link", "set", "lo", "frob"], ["link", "set", "lo", "adress", "02:00:00:00:00:01"],
    ["addr", "add", "10.0.0.1/33", "dev", "lo"], ["addr", "add", "10.0.0.1/24"],
    ["route", "add", "10.0.0.0/33", "dev", "lo"], ["route", "add", "10.0.0.1/24", "dev", "lo"],
    ["ns", "add", "a/b"], ["-n", "", "link", "show"], ["ns", "exec", "x"],
]


def test_usage_errors(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    text = "".join(_block(cli, capsys, argv) for argv in USAGE_CASES)
    _compare("usage.txt", text)


