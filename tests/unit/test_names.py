"""nslab.names, exhaustively and without the kernel: the rules of iproute2's invalid_name (namespaces) and the
kernel's dev_valid_name (interfaces), plus nslab's refusal of whitespace in both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nslab.errors import UsageError
from nslab.lab import state
from nslab.names import (
    IFNAMSIZ,
    LAB_NAME_MAX,
    NAME_MAX,
    NODE_NAME_MAX,
    check_ifname,
    check_lab_name,
    check_netns_name,
    check_node_name,
    is_lab_name,
    is_node_name,
    natural_key,
)

Check = Callable[..., str]
BOTH = [pytest.param(check_netns_name, id="netns"), pytest.param(check_ifname, id="ifname")]
KERNEL_SPACE = " \t\n\v\f\r"  # the kernel's isspace()


def refused(check: Check, name: object, *words: str) -> UsageError:
    with pytest.raises(UsageError) as info:
        check(name)
    err = info.value
    assert err.exit_code == 2
    assert err.hint, "every refusal says how to fix it"
    for w in words:
        assert w in str(err), (w, str(err))
    return err


def test_constants() -> None:
    assert IFNAMSIZ == 16 and NAME_MAX == 255


@pytest.mark.parametrize("check", BOTH)
@pytest.mark.parametrize("name", ["a", "ns1", "eth0", "x-y_z.1", "...", ".a", "a.", "-", "A" * 15, "é" * 7,
                                  "€" * 5, "日本"])
def test_valid_names_are_returned_unchanged(check: Check, name: str) -> None:
    assert check(name) == name


@pytest.mark.parametrize("check", BOTH)
def test_empty(check: Check) -> None:
    refused(check, "", "empty")


@pytest.mark.parametrize("check", BOTH)
@pytest.mark.parametrize("name", [".", ".."])
def test_dot_and_dotdot(check: Check, name: str) -> None:
    refused(check, name, repr(name), "reserved")


@pytest.mark.parametrize("check", BOTH)
@pytest.mark.parametrize("name", ["/", "a/b", "/a", "a/", "../x"])
def test_slash(check: Check, name: str) -> None:
    err = refused(check, name, "'/'")
    if name.count("/") == 1 and name not in ("/",) and not name.startswith("."):
        suggestion = name.replace("/", "-")
        assert repr(suggestion) in str(err.hint)
        assert check(suggestion) == suggestion  # the hint's example is itself valid


@pytest.mark.parametrize("check", BOTH)
def test_nul(check: Check) -> None:
    refused(check, "a\0b", "NUL")


@pytest.mark.parametrize("check", BOTH)
@pytest.mark.parametrize("ws", [*KERNEL_SPACE, "\u00a0", "\u2003", "\u3000", "\x1c"])
@pytest.mark.parametrize("where", ["lead", "mid", "trail", "only"])
def test_whitespace(check: Check, ws: str, where: str) -> None:
    name = {"lead": ws + "ab", "mid": "a" + ws + "b", "trail": "ab" + ws, "only": ws}[where]
    err = refused(check, name, "whitespace")
    if where != "only":
        suggestion = "-".join(name.split())
        assert repr(suggestion) in str(err.hint) and check(suggestion) == suggestion


def test_colon_only_for_interfaces() -> None:
    assert check_netns_name("a:b") == "a:b"
    err = refused(check_ifname, "eth0:1", "':'")
    assert repr("eth0-1") in str(err.hint)


@pytest.mark.parametrize("code", range(128))
def test_every_ascii_char_in_an_interface_name(code: int) -> None:
    """Accept exactly what dev_valid_name accepts, except that nslab also refuses control separators that
    Python counts as whitespace (0x1c-0x1f)."""
    c = chr(code)
    name = f"a{c}b"
    kernel_refuses = c in "/:\0" or c in KERNEL_SPACE
    nslab_extra = c in "\x1c\x1d\x1e\x1f"
    if kernel_refuses or nslab_extra:
        refused(check_ifname, name)
    else:
        assert check_ifname(name) == name


@pytest.mark.parametrize("code", range(128))
def test_every_ascii_char_in_a_namespace_name(code: int) -> None:
    """iproute2 refuses '/' only (and the NUL it cannot see); nslab also whitespace."""
    c = chr(code)
    name = f"a{c}b"
    if c in "/\0" or c.isspace():
        refused(check_netns_name, name)
    else:
        assert check_netns_name(name) == name


@pytest.mark.parametrize(("check", "limit"), [(check_ifname, 15), (check_netns_name, 255)])
@pytest.mark.parametrize("unit", ["a", "é", "€", "😀"])
def test_length_limit_counts_bytes(check: Check, limit: int, unit: str) -> None:
    size = len(unit.encode())
    fits = unit * (limit // size)
    assert check(fits) == fits
    too_long = fits + unit
    assert len(too_long.encode()) > limit
    err = refused(check, too_long, f"{len(too_long.encode())} bytes", f"at most {limit}")
    # the suggested shorter name is valid and not cut inside a character
    hint = str(err.hint)
    suggestion = hint[hint.index("'") + 1:hint.rindex("'")]
    assert check(suggestion) == suggestion and suggestion == fits


@pytest.mark.parametrize("n", [1, 14, 15, 16, 17, 64])
def test_ifname_length_boundary(n: int) -> None:
    name = "x" * n
    if n <= 15:
        assert check_ifname(name) == name
    else:
        refused(check_ifname, name, f"{n} bytes")


@pytest.mark.parametrize("n", [254, 255, 256, 1000])
def test_netns_length_boundary(n: int) -> None:
    name = "x" * n
    if n <= NAME_MAX:
        assert check_netns_name(name) == name
    else:
        refused(check_netns_name, name, f"{n} bytes")


def test_what_names_the_thing() -> None:
    refused(lambda n: check_ifname(n, "peer name"), "a/b", "invalid peer name")
    refused(lambda n: check_netns_name(n, "lab name"), "", "invalid lab name")
    refused(check_ifname, "a/b", "invalid interface name")
    refused(check_netns_name, "a/b", "invalid namespace name")


@pytest.mark.parametrize("check", BOTH)
@pytest.mark.parametrize("value", [None, 5, b"abc"])
def test_non_strings_are_refused(check: Check, value: object) -> None:
    refused(check, value)


@pytest.mark.parametrize("check", BOTH)
def test_first_fault_reported_is_deterministic(check: Check) -> None:
    # a name with several faults: one clear message, never a crash
    err = refused(check, "a b/" + "x" * 300)
    assert str(err).startswith("invalid ")


# ---- lab and node names: one rule for the command line, the records, the markers and the files ---------------
@pytest.mark.parametrize("name", ["a", "lab1", "a-b", "x" * 12, "campus", "t1a2b3c"])
def test_lab_names_accepted(name: str) -> None:
    assert check_lab_name(name) == name and is_lab_name(name)


@pytest.mark.parametrize("name", ["", "1lab", "Lab", "a_b", "x" * 13, "a b", "é", "-a", "a/b", "a.json", None, 5])
def test_lab_names_refused_everywhere(name: object) -> None:
    """The CLI's check, the record's path check and the recognisers of records and markers agree."""
    assert not is_lab_name(name)
    refused(check_lab_name, name, "invalid lab name")
    with pytest.raises(UsageError, match="invalid lab name"):
        state.check_name(name)  # type: ignore[arg-type]


def test_state_and_cleanup_use_the_one_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in ("ok", "x" * 13, "Bad", "a-1"):
        (tmp_path / f"{n}.json").write_text("{}")
    monkeypatch.setattr(state, "STATE_DIR", str(tmp_path))
    assert state.names() == ["a-1", "ok"]


@pytest.mark.parametrize("name", ["h1", "lan1", "x" * 10, "web-1"])
def test_node_names_accepted(name: str) -> None:
    assert check_node_name(name) == name and is_node_name(name)


@pytest.mark.parametrize("name", ["", "H1", "1h", "x" * 11, "h_1", None])
def test_node_names_refused(name: object) -> None:
    assert not is_node_name(name)
    refused(check_node_name, name, "invalid node name")


def test_limits_and_old_paths() -> None:
    from nslab.lab import topology

    assert (LAB_NAME_MAX, NODE_NAME_MAX) == (12, 10)
    assert topology.check_lab_name is check_lab_name and topology.check_node_name is check_node_name
    assert sorted(["h10", "h2", "h1", "r1", "h1a"], key=natural_key) == ["h1", "h1a", "h2", "h10", "r1"]
