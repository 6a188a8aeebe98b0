"""Probes' argument checks, refused before any socket: ports, hosts, timeouts, URLs, the CLI's exit 2."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import pytest

from nslab import probe
from nslab.errors import NslabError, UsageError

LO = "127.0.0.1"
def cli(argv: Sequence[str]) -> int:
    """nslab.cli.main.main, or (while other CLI modules are still missing) the same mapping over a parser
    holding only the probe object."""
    from nslab.cli import main as climain

    try:
        return climain.main(list(argv))
    except ImportError:
        pass
    from nslab.cli import probe as cliprobe

    parser = climain._Parser(prog="nslab")
    climain.add_globals(parser, top=True)
    objects = parser.add_subparsers(dest="object", parser_class=climain._Parser)
    objects.required = True
    cliprobe.register(objects)
    try:
        args = parser.parse_args(list(argv))
        status: int = args.handler(args)
        return status
    except NslabError as exc:
        print(f"nslab: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nslab: interrupted", file=sys.stderr)
        return 130


# -------------------------------------------------------------------------------------------- TCP listen


@pytest.mark.parametrize("port", [0, -1, 65536, "x", "", True])
def test_connect_rejects_bad_port(port: object) -> None:
    with pytest.raises(UsageError, match="port") as info:
        probe.connect(LO, port)  # type: ignore[arg-type]
    assert info.value.exit_code == 2 and info.value.hint and "65535" in info.value.hint


def test_connect_rejects_empty_host_and_bad_timeout() -> None:
    with pytest.raises(UsageError, match="host is empty"):
        probe.connect("  ", 80)
    with pytest.raises(UsageError, match="timeout"):
        probe.connect(LO, 80, timeout=0)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("https://localhost/", "scheme 'https'"),
        ("ftp://localhost/", "scheme 'ftp'"),
        ("http://:80/", "no host"),
        ("http://localhost:99999/", "bad port"),
        ("", "URL is empty"),
    ],
)
def test_http_rejects_bad_url(url: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        probe.http(url)


def test_parse_url_defaults() -> None:
    assert probe.parse_url("localhost:8900") == ("localhost", 8900, "/", "http://localhost:8900/")
    assert probe.parse_url("http://h/p?q=1") == ("h", 80, "/p?q=1", "http://h/p?q=1")


@pytest.mark.parametrize(
    "argv",
    [
        ["probe", "connect", LO, "0"],
        ["probe", "connect", LO, "70000"],
        ["probe", "connect", "", "80"],
        ["probe", "connect", LO],
        ["probe", "connect", LO, "80", "--timeout", "-1"],
        ["probe", "http", "https://localhost/"],
        ["probe", "listen", "65536"],
        ["probe", "listen", "1", "--http", "--echo"],
        ["probe", "frobnicate"],
    ],
)
def test_cli_bad_input_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(argv) == 2
    assert capsys.readouterr().err.startswith("nslab: ")


# ------------------------------------------------------------------------------ inside a namespace (root)


