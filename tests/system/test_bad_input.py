"""Classes of bad input (issue 9, section 4 and the empty names of section 3): each is exit 2 with one line that
names the file, line and field (or the argument) and a hint, and never reaches the kernel. Pure: no root
needed, and the kernel guard (kernel_guard.no_kernel) fails a test on any socket, foreign call, process or
file-system change. The topology file classes that fit a corpus file are in tests/lab/bad/."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import LAB_DATA, REPO
from kernel_guard import no_kernel, run_cli

from nslab.errors import MESSAGE_MAX, UsageError, clip
from nslab.lab.addressing import unique_names
from nslab.lab.builtin import parse_topo_arg
from nslab.lab.plan import make_plan
from nslab.lab.topology import BRIDGE, MAX_DEPTH, MAX_FILE_BYTES, Topology, load_file, load_text
from nslab.names import check_ifname, check_netns_name
from nslab.probe import check_port, check_timeout, parse_url

GOOD = Path(LAB_DATA) / "good" / "triangle.yaml"


def refused(argv: list[str], *words: str) -> str:
    """argv is exit 2 with `nslab: MESSAGE` and a hint, bounded, naming `words`, and no kernel call."""
    rc, err, events = run_cli(argv)
    assert events == [], f"{argv!r} reached the kernel: {events}"
    assert rc == 2, (argv, rc, err)
    lines = err.splitlines()
    assert lines[0].startswith("nslab: ") and len(lines) == 2 and lines[1].startswith("  hint: "), err
    assert "Traceback" not in err and len(err) < 2 * MESSAGE_MAX + 40, err
    for w in words:
        assert w in err, (w, err)
    return err


def load_refused(text: str, *words: str, source: str = "t.yaml") -> UsageError:
    with no_kernel() as events, pytest.raises(UsageError) as info:
        load_text(text, source)
    assert events == []
    err = info.value
    assert err.message.startswith(f"{source}:") and err.hint and "\n" not in err.message, str(err)
    for w in words:
        assert w in str(err), (w, str(err))
    return err


P2P = "name: x\nnodes: {h1: {}, h2: {}}\nlinks:\n  - endpoints: [h1, h2]\n"


# ---- YAML 1.1 number forms, thousands of digits ----------------------------------------------------------
@pytest.mark.parametrize(("text", "why"), [
    ("01500", "octal: 832"), ("0x_", "hexadecimal"), ("22:22", "base 60: 1342"), ("!!int 0x5dc", "hexadecimal"),
    ("0b10111011100", "binary"), ("1_500", "'_'"), ("+1500", "signed"), ("!!str 1500", "tagged !!str"),
    ("'1500'", "quoted"), ("1500.0", "got '1500.0'"), (".inf", "got '.inf'"), ("١٥٠٠", "got"),
    ("9" * 5000, "5000 digits"),
])
@pytest.mark.parametrize("field", ["mtu", "port", "retries"])
def test_only_plain_decimal_integers(field: str, text: str, why: str) -> None:
    if field == "mtu":
        doc, path = P2P + f"    mtu: {text}\n", "links[0].mtu"
    elif field == "port":
        doc, path = P2P + f"checks:\n  - port_open: {{from: h1, to: h2, port: {text}}}\n", "checks[0].port_open.port"
    else:
        doc, path = P2P + f"checks:\n  - reach: [h1, h2]\n    retries: {text}\n", "checks[0].retries"
    load_refused(doc, f"t.yaml:{doc.count(chr(10))}: {path}: ", why)


def test_plain_decimal_still_reads() -> None:
    topo = load_text(P2P + "    mtu: 9000\nchecks:\n  - port_open: {from: h1, to: h2, port: 80}\n    retries: 5\n")
    assert topo.links[0].mtu == 9000 and topo.checks[0].port == 80 and topo.checks[0].retries == 5


# ---- numbers that overflow a float or a C type; inf and nan --------------------------------------------
@pytest.mark.parametrize("value", ["9" * 400 + "mbit", "1" + "0" * 320 + "kbit"])
def test_rate_overflowing_a_float(value: str) -> None:
    load_refused(P2P + f"    impair: {{rate: {value}}}\n", "t.yaml:5: links[0].impair.rate: invalid rate")


@pytest.mark.parametrize("argv", [
    ["probe", "connect", "127.0.0.1", "80", "--timeout", "inf"],
    ["probe", "connect", "127.0.0.1", "80", "--timeout", "nan"],
    ["probe", "connect", "127.0.0.1", "80", "--timeout", "1e400"],
    ["probe", "http", "http://127.0.0.1:9/", "--timeout", "inf"],
    ["lab", "reach", "fzlab", "--timeout", "nan"],
    ["lab", "link", "fzlab", "h1", "r1", "flap", "--period", "inf"],
    ["lab", "top", "fzlab", "--interval", "nan"],
    ["lab", "perf", "fzlab", "h1", "h2", "-t", "inf"],
    ["lab", "impair", "fzlab", "h1", "h2", "--rate", "9" * 400 + "mbit"],
    ["lab", "impair", "fzlab", "h1", "h2", "--loss", "nan"],
])
def test_cli_times_and_rates_are_finite(argv: list[str]) -> None:
    refused(argv, "invalid")


def test_timeout_api_is_finite() -> None:
    for bad in (float("inf"), float("nan"), -1.0, 0, True):
        with pytest.raises(UsageError):
            check_timeout(bad)
    assert check_timeout(3) == 3.0


@pytest.mark.parametrize(("argv", "word"), [
    (["link", "set", "lo", "mtu", "0x5dc"], "mtu"), (["link", "set", "lo", "mtu", "01500"], "mtu"),
    (["link", "set", "lo", "mtu", "١٥٠٠"], "mtu"), (["link", "set", "lo", "mtu", "9" * 5000], "mtu"),
    (["route", "add", "10.1.0.0/24", "dev", "lo", "metric", "٣"], "metric"),
    (["lab", "reach", "fzlab", "--tcp", "٨٠"], "--tcp"), (["lab", "reach", "fzlab", "--udp", "+53"], "--udp"),
    (["lab", "link", "fzlab", "h1", "r1", "flap", "--count", "٣"], "--count"),
    (["lab", "capture", "fzlab", "h1", "--count", "1_0"], "--count"),
    (["probe", "listen", "٨٠"], "port"), (["probe", "connect", "127.0.0.1", "8_0"], "port"),
])
def test_cli_whole_numbers_are_ascii_decimal(argv: list[str], word: str) -> None:
    refused(argv, word)


def test_port_api_is_ascii_decimal() -> None:
    for bad in ("٨٠", "+80", "8_0", " 80", "0x50", True, 70000):
        with pytest.raises(UsageError):
            check_port(bad)
    assert check_port("80") == 80 and check_port(80) == 80


# ---- nesting, huge files, files that are not files ------------------------------------------------------
def test_deep_nesting_is_one_line() -> None:
    err = load_refused("name: x\nnodes: {h1: {}}\nlinks: " + "[" * 100_000 + "]" * 100_000 + "\n",
                       f"t.yaml:3: nested more than {MAX_DEPTH} levels deep")
    assert len(str(err)) < 300


def test_deep_block_nesting() -> None:
    doc = "name: x\nnodes:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(2000))
    load_refused(doc, "nested more than")


def test_alias_bomb_is_refused_fast() -> None:
    lines = ["a0: &a0 [h1, h2]"] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    doc = "\n".join(["name: x", "nodes: {h1: {}, h2: {}}", "pools:", *("  " + x for x in lines),
                     "links:", "  - *a0", "  - endpoints: *a9"])
    load_refused(doc, "t.yaml:1: its aliases (*name) expand to more than")  # 9**9 endpoints otherwise


def test_small_aliases_still_work() -> None:
    topo = load_text("name: x\nnodes: {h1: {}, h2: {}, h3: {}}\nlinks:\n  - &l {endpoints: [h1, h2], mtu: 9000}\n"
                     "  - {endpoints: [h2, h3], mtu: 9000}\n")
    assert [lk.mtu for lk in topo.links] == [9000, 9000]


def _load_in_child(path: str) -> subprocess.CompletedProcess[str]:
    """load_file(path) in a child with a time and memory bound: a FIFO or /dev/zero must not hang or eat
    memory, and if it did (a regression), this test fails instead of the suite hanging."""
    code = textwrap.dedent("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from nslab.errors import UsageError
        from nslab.lab.topology import load_file
        try:
            load_file(sys.argv[1])
        except UsageError as exc:
            print(exc, file=sys.stderr)
            sys.exit(exc.exit_code)
    """)
    try:
        return subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=30,
                              cwd=REPO, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading {path} did not finish in 30 s")


def test_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "topo.yaml"
    os.mkfifo(fifo)
    res = _load_in_child(str(fifo))
    assert res.returncode == 2 and "is a pipe (FIFO), not a topology file" in res.stderr, res.stderr


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "a character device"), ("/dev/null", "a character device")])
def test_devices_are_refused(path: str, kind: str) -> None:
    res = _load_in_child(path)
    assert res.returncode == 2 and f"{path}: is {kind}, not a topology file" in res.stderr, res.stderr


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory, not a topology file"):
        load_file(tmp_path)


def test_huge_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(P2P + ("# padding\n" * (MAX_FILE_BYTES // 10 + 1)))
    with pytest.raises(UsageError, match=rf"big\.yaml: too large for a topology file .*limit is {MAX_FILE_BYTES}"):
        load_file(big)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"name: x\nnodes:\n  h\xe91: {}\n")
    with pytest.raises(UsageError, match=r"latin1\.yaml:3: not UTF-8 text"):
        load_file(f)


def test_control_character_is_one_line() -> None:
    err = load_refused("name: x\nnodes: {h1: {}}\n\x07\n", "t.yaml:3: character U+0007 is not allowed")
    assert "\n" not in err.message


# ---- names that are not valid UTF-8 (argv arrives surrogate-escaped) ---------------------------------------
@pytest.mark.parametrize("argv", [
    ["ns", "add", "x\udcff"], ["ns", "del", "x\udcff"], ["ns", "pids", "\udcc3"],
    ["-n", "x\udcff", "link", "show"], ["link", "show", "e\udcff"], ["link", "add", "e\udcff", "type", "bridge"],
    ["link", "set", "lo", "alias", "a\udcff"], ["addr", "add", "10.9.0.1/24", "dev", "e\udcff"],
    ["lab", "status", "x\udcff"], ["lab", "up", str(GOOD), "--name", "x\udcff"], ["probe", "connect", "h\udcff", "80"],
    ["probe", "http", "http://h\udcff/"],
])
def test_undecodable_names_on_the_command_line(argv: list[str]) -> None:
    refused(argv)


def test_lone_surrogates_refused_by_the_name_checks() -> None:
    for check in (check_ifname, check_netns_name):
        for bad in ("x\udcff", "\ud83d", "a\udfffb"):
            with pytest.raises(UsageError, match="not valid UTF-8"):
                check(bad)


# ---- what only the kernel refused, now refused at plan time (more in tests/lab/bad/) ----------------------
def test_python_api_has_the_same_rules() -> None:
    t = Topology.new("x")
    t.add_node("h1")
    t.add_node("s1", "switch")
    t.add_link("h1", f"s1:{BRIDGE}")
    with pytest.raises(UsageError, match="is the bridge of switch 's1'"):
        make_plan(t)
    t = Topology.new("x")
    t.add_node("h1")
    t.add_node("h2")
    t.add_link("h1", "h2", mtu=1279)
    with pytest.raises(UsageError, match=r"1280\.\.65535"):
        make_plan(t)


def test_bridge_name_is_the_plans() -> None:
    from nslab.lab.plan import BRIDGE as PLAN_BRIDGE

    assert PLAN_BRIDGE == BRIDGE


@pytest.mark.parametrize("cidr", ["fd00::1%eth0/64", "fe80::1/64", "ff02::1/128", "::/128"])
def test_cli_addresses_refused_before_the_kernel(cidr: str) -> None:
    argv = ["addr", "add", cidr, "dev", "lo"]
    if "%" in cidr:
        refused(argv, "zone id")
    else:  # a plain device may hold what a lab cannot: the kernel answers for those
        rc, _, events = run_cli(argv)
        assert rc is None and events


# ---- --topo arguments ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("arg", "words"), [
    ("single,3,4", "takes 1 argument(s) (N), got 2"), ("single,2,x", "got 2"), ("single,٣", "'٣'"),
    ("tree,٢,2", "DEPTH must be a whole number"), ("single,+3", "'+3'"), ("single,3_0", "'3_0'"),
    ("single,", "''"), ("single", "got 0"), ("ring,0x3", "'0x3'"), ("single," + "9" * 5000, "is too large"),
])
def test_topo_arguments(arg: str, words: str) -> None:
    with pytest.raises(UsageError, match="--topo ") as info:
        parse_topo_arg(arg)
    assert words in str(info.value)
    refused(["lab", "up", "--topo", arg], "--topo")


def test_topo_arguments_still_read() -> None:
    assert len(parse_topo_arg("single,3").nodes) == 4
    assert len(parse_topo_arg("tree, 2, 2").nodes) == 7


# ---- URLs ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "words"), [
    ("http://[::1", "malformed"), ("http://[zz]/", "malformed"), ("http://[1.2.3.4]/", "1.2.3.4"),
    ("http://h:99999/", "bad port"),
    ("http://h:٨٠/", "'٨'"), ("http://h:+80/", "bad port"), ("http://a b/", "' '"),
    ("http://h/a\r\nHost: evil", "'\\r'"), ("http://h/\r\n", "'\\r'"), (" http://h/", "' '"),
    ("http://bücher/", "punycode"), ("http://u:p@h/", "user name"),
    ("http://[fe80::1%25eth0]/", "zone id"), ("http://h:80:90/", "brackets"), ("http://-h/", "not a host name"),
    ("http:///x", "no host"), ("ftp://h/", "scheme"), ("", "empty"), ("http://" + "a" * 100_000, "characters long"),
])
def test_malformed_urls(url: str, words: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_url(url)
    assert words in str(info.value)
    assert len(str(info.value)) < 2 * MESSAGE_MAX
    refused(["probe", "http", url], words)


@pytest.mark.parametrize("host", ["a" * 64, "é.example", "a..b", "h-", "x" * 254, "h\udcff", "a b"])
def test_hosts_refused_before_name_resolution(host: str) -> None:
    """getaddrinfo's IDNA codec raised UnicodeError (a traceback) on a 64-character label; the guard also
    refuses name resolution, so none of these reached DNS."""
    refused(["probe", "connect", host, "80"], "host")


def test_urls_that_are_fine() -> None:
    assert parse_url("localhost:8900") == ("localhost", 8900, "/", "http://localhost:8900/")
    assert parse_url("http://[::1]:80/x?y=1#frag")[:3] == ("::1", 80, "/x?y=1")
    assert parse_url("http://h:/")[1] == 80


# ---- planning time in parallel links: linear, counted, not timed -----------------------------------------------
class _CountingSet(set[str]):
    probes = 0

    def __contains__(self, item: object) -> bool:
        _CountingSet.probes += 1
        return super().__contains__(item)


def test_unique_names_probes_linearly() -> None:
    for n in (500, 2000):
        _CountingSet.probes = 0
        names = unique_names(["a-b"] * n, _CountingSet())
        assert names == ["a-b", *(f"a-b-{k}" for k in range(2, n + 1))]
        assert _CountingSet.probes <= 3 * n, (n, _CountingSet.probes)  # the old loop: n * (n + 1) / 2


def test_unique_names_keeps_the_old_choices() -> None:
    assert unique_names(["a-b", "a-b", "a-b-2", "a-b", "x", "a-b-3"]) == \
        ["a-b", "a-b-2", "a-b-2-2", "a-b-3", "x", "a-b-3-2"]


@pytest.mark.parametrize("kind", ["router", "host"])
def test_two_thousand_parallel_links_plan(kind: str) -> None:
    t = Topology.new("par")
    t.add_node("a", kind)
    t.add_node("b", kind)
    for _ in range(2000):
        t.add_link("a", "b")
    plan = make_plan(t)
    assert len(plan.links) == 2000
    names = [s.name for s in plan.segments]
    assert len(set(names)) == 2000 and names[:3] == ["a-b", "a-b-2", "a-b-3"]


# ---- a 100 KB name is not echoed back in full --------------------------------------------------------------------
def test_clip_is_the_one_place() -> None:
    assert len(str(UsageError("bad " + repr("x" * 100_000), "h " + "y" * 100_000))) < 2 * MESSAGE_MAX + 20
    short = "invalid lab name 'campus'"
    assert clip(short) == short
    assert clip("a\nb\x1b[31m\udcff") == "a\\nb\\x1b[31m\\udcff"


@pytest.mark.parametrize("argv", [
    ["ns", "add", "x" * 100_000], ["lab", "status", "x" * 100_000], ["link", "show", "é" * 50_000],
    ["lab", "up", "--topo", "x" * 100_000], ["probe", "http", "http://" + "a" * 100_000], ["x" * 100_000],
    ["lab", "up", "/nonexistent/" + "d" * 100_000 + ".yaml"],
])
def test_huge_arguments_are_not_echoed_in_full(argv: list[str]) -> None:
    rc, err, events = run_cli(argv)
    assert rc == 2 and not events and len(err) < 2 * MESSAGE_MAX + 40, (rc, len(err), events)


def test_huge_name_in_a_file_is_not_echoed_in_full() -> None:
    err = load_refused("name: x\nnodes:\n  h1: {kind: " + "n" * 100_000 + "}\n", "t.yaml:3: nodes.h1.kind: ")
    assert len(str(err)) < 2 * MESSAGE_MAX


# ---- empty names (an unset shell variable) are never the root namespace, nor ignored ----------------------------
@pytest.mark.parametrize("argv", [
    ["-n", "", "link", "show"], ["link", "-n", "", "show"], ["-n", "", "addr", "show"], ["-n", "", "route", "show"],
    ["-n", "", "ifconfig"], ["-n", "", "probe", "connect", "127.0.0.1", "9"], ["-n", "", "probe", "listen", "0"],
    ["-n", "", "link", "add", "fz0", "type", "bridge"],
    ["link", "show", ""], ["addr", "show", ""], ["ifconfig", ""], ["link", "set", "", "up"], ["link", "del", ""],
    ["link", "add", "fz0", "type", "veth", "peer", "fz1", "peer-netns", ""],
    ["link", "set", "lo", "netns", ""], ["link", "set", "lo", "master", ""],
    ["addr", "add", "10.9.0.1/24", "dev", ""], ["route", "add", "10.9.0.0/24", "dev", ""],
    ["route", "add", "10.9.0.0/24", "via", ""],  # found by the long fuzz: '' was "no gateway", then the kernel
    ["lab", "up", str(GOOD), "--name", ""], ["lab", "up", "", "--topo", "single,2"],
    ["lab", "down", ""], ["lab", "status", ""], ["lab", "exec", "", "h1", "--", "true"],
    ["lab", "exec", "fzlab", "", "--", "true"], ["lab", "node", "fzlab", "", "stop"],
    ["lab", "link", "fzlab", "", "h2", "down"], ["lab", "link", "fzlab", "h1", "h2", "down", "--iface", ""],
    ["lab", "reach", "fzlab", "--from", ""], ["lab", "partition", "fzlab", "h1", ""],
    ["lab", "capture", "fzlab", ""], ["lab", "capture", "fzlab", "h1", "-w", ""], ["lab", "graph", "fzlab", "-o", ""],
    ["lab", "perf", "fzlab", "h1", ""], ["lab", "impair", "fzlab", "h1", "h2", "--loss", ""],
])
def test_empty_names_are_exit_2(argv: list[str]) -> None:
    refused(argv)


@pytest.mark.parametrize("flag", ["--loss", "--duplicate", "--rate", "--delay"])
def test_impairment_values_name_their_option(flag: str) -> None:
    refused(["lab", "impair", "fzlab", "h1", "h2", flag, ""], flag)  # the long fuzz found '--loss' unnamed


@pytest.mark.parametrize("argv", [
    ["probe", "connect", "127.0.0.1", "--", "--"], ["lab", "exec", "fzlab", "--", "--", "true"],
    ["lab", "capture", "fzlab", "--", "--"], ["lab", "link", "fzlab", "--", "--", "h2", "down"],
])
def test_a_double_dash_is_not_a_value(argv: list[str]) -> None:
    """Python 3.11's argparse turned the second '--' into [] for the positional (found by the long fuzz: a
    list reached capture's parser and crashed; `link set -- -- up` reached the kernel with it)."""
    refused(argv, "missing ('--' ends the options")


def test_a_double_dash_value_is_a_string() -> None:
    rc, _, events = run_cli(["link", "set", "--", "--", "up"])
    assert rc is None and events  # '--' is a valid device name: looked up, not a list
