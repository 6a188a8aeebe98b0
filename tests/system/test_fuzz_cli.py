"""Property-based fuzzing of the command line (hypothesis), without root and without creating anything.

Every example runs nslab's real entry point, `main(argv)`, in-process under kernel_guard.no_kernel(): a socket,
a foreign call, a process or a write is refused there (and recorded), so the fuzz cannot act on this machine,
whatever it generates. Two generators:

- the grammar: the real objects and verbs, each argument drawn from values of its kind (namespace, device,
  lab, node, port, seconds, count, URL, address, ...) that an independent oracle below classifies as valid
  or bad from the documented rules. Property: exit status in {0, 1, 2} (or the guard stopped a valid
  command at its first kernel call); a bad argument is exit 2 with NO kernel call, and a message of at
  most two bounded lines, `nslab: ...` then `  hint: ...`, that names the argument (its flag, its kind or its
  value);
- random argv: words from the real vocabulary mixed with arbitrary text and undecodable bytes (as Python
  gives them, surrogate-escaped). Property: no exception, no hang, exit in {0, 1, 2}, the message shape.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import hypothesis.strategies as st
from conftest import TESTS
from hypothesis import event, given, note
from kernel_guard import run_cli

from nslab.errors import MESSAGE_MAX

from .fuzz_settings import bounded, fuzz_settings

HERE = TESTS
GOOD_FILES = sorted(os.path.join(HERE, "lab", "good", f) for f in os.listdir(os.path.join(HERE, "lab", "good")))
BAD_FILES = sorted(os.path.join(HERE, "lab", "bad", f) for f in os.listdir(os.path.join(HERE, "lab", "bad")))[:40]


# ---- the oracle: validity by the documented rules, written here independently of nslab/names.py ----------------
def _utf8(v: str) -> bool:
    try:
        v.encode()
    except UnicodeEncodeError:
        return False
    return True


def netns_ok(v: str) -> bool:  # iproute2's invalid_name + nslab's no-whitespace rule
    return (v not in ("", ".", "..") and "/" not in v and "\0" not in v and _utf8(v)
            and not any(c.isspace() for c in v) and len(v.encode()) <= 255)


def ifname_ok(v: str) -> bool:  # the kernel's dev_valid_name, and not all/default
    return netns_ok(v) and ":" not in v and len(v.encode()) <= 15 and v not in ("all", "default")


def lab_ok(v: str) -> bool:
    return re.fullmatch(r"[a-z][a-z0-9-]{0,11}", v) is not None


def node_ok(v: str) -> bool:
    return re.fullmatch(r"[a-z][a-z0-9-]{0,9}", v) is not None


def nodes_ok(v: str) -> bool:
    return bool(v.strip()) and all(node_ok(p.strip()) for p in v.split(","))


def int_ok(v: str, lo: int, hi: int) -> bool:
    return re.fullmatch(r"0|[1-9][0-9]{0,11}", v) is not None and lo <= int(v) <= hi


def secs_ok(v: str, lo: float, hi: float) -> bool:
    if re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", v) is None:
        return False
    f = float(v)
    return math.isfinite(f) and lo <= f <= hi


ORACLE = {
    "netns": netns_ok, "dev": ifname_ok, "lab": lab_ok, "node": node_ok, "nodes": nodes_ok,
    "port": lambda v: int_ok(v, 1, 65535), "port0": lambda v: int_ok(v, 0, 65535),
    "mtu": lambda v: int_ok(v, 68, 65535), "count": lambda v: int_ok(v, 1, 100_000),
    # seconds, each option with the range its help and hint give
    "timeout": lambda v: secs_ok(v, 0.001, 86400), "reach_timeout": lambda v: secs_ok(v, 0.01, 3600),
    "period": lambda v: secs_ok(v, 0.02, 3600), "interval": lambda v: secs_ok(v, 0.05, 3600),
}
# Free-form kinds have no oracle: their values come from lists known valid or known bad.
KNOWN = {
    "url": (["http://127.0.0.1:9/", "localhost:9", "http://[::1]:9/x?y"],
            ["http://[::1", "http://h:99999/", "http://h:٨٠/", "http://a b/", "http://h/\r\n", "http://u@h/",
             "ftp://h/", "", "http://" + "a" * 3000, "http://bücher/", "http://[fe80::1%25e]/", "http://h\udcff/"]),
    "host": (["127.0.0.1", "localhost", "::1"], ["", " ", "a b", "h\udcff", "x" * 300, "a\nb"]),
    "cidr": (["10.9.8.7/24", "fd00:9::7/64"], ["10.0.0.300/24", "fd00::1%eth0/64", "x", "", "10.0.0.1/33"]),
    "dst": (["10.9.0.0/24", "default", "fd00:9::/64"], ["10.9.0.1/24", "nonsense", "", "10.0.0.0/33"]),
    "gw": (["10.9.0.1", "fd00:9::1"], ["10.0.0.999", "fe80::1%eth0", "", "x"]),
    "file": (GOOD_FILES, [*BAD_FILES, "", "/nonexistent/t.yaml", "/dev/zero", "/dev/null", HERE]),
    "topo": (["single,2", "linear,2", "ring,3", "tree,1,2", "leafspine,1,1,1"],
             ["single,3,4", "single,2,x", "single,٣", "tree,0,2", "", "star,3", "single,+2", "tree,30,30"]),
    "rate": (["10mbit", "1gbit"], ["9" * 400 + "mbit", "fast", "inf", "", "١٠mbit"]),
    "percent": (["5%", "0.5"], ["150%", "nan", "inf", "", "-1", "٥%"]),
}
KIND_WORDS = {  # what a message about an argument of this kind may say
    "netns": ["namespace", "-n"], "dev": ["device", "interface", "dev", "name"], "lab": ["lab", "LAB"],
    "node": ["node", "NODE"], "nodes": ["node", "--from", "--to", "GROUP"], "port": ["port", "PORT"],
    "port0": ["port", "PORT"], "mtu": ["mtu"], "count": ["count"], "timeout": ["timeout"],
    "reach_timeout": ["timeout"], "period": ["period"], "interval": ["interval"],
    "url": ["URL"], "host": ["host", "HOST"], "cidr": ["address"], "dst": ["destination"], "gw": ["gateway"],
    "file": ["file", "FILE", "topology"], "topo": ["--topo"], "rate": ["rate"], "percent": ["percent", "loss"],
}


def _odd_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=24),  # any unicode, lone surrogates included: what undecodable argv bytes become
        st.sampled_from(["", " ", "a b", "x\udcff", "\udcc3\udca9", "a/b", ".", "..", "...", "all", "default",
                         "lo", "a:b", "x" * 16, "x" * 300, "é" * 8, "٣", "+5", "1_0", "0x10", "010", "-1", "inf",
                         "nan", "1e400", "9" * 5000, "lan1", "H1", "1h", "a\tb", "\x1b[31m", "-", "--"]),
        st.integers(min_value=0, max_value=70000).map(str),
        st.from_regex(r"[a-z][a-z0-9-]{0,13}", fullmatch=True),
    )


@dataclass
class Argv:
    words: list[str] = field(default_factory=list)
    slots: list[tuple[str, str, str, bool | None]] = field(default_factory=list)  # (kind, flag, value, valid)

    def add(self, kind: str, flag: str, value: str, option: str | None = None) -> None:
        if kind in ORACLE:
            valid: bool | None = ORACLE[kind](value)
        else:
            good, bad = KNOWN[kind]
            valid = True if value in good else False if value in bad else None
        self.words += [option, value] if option else [value]
        self.slots.append((kind, option or flag, value, valid))


@st.composite
def value(draw: st.DrawFn, kind: str) -> str:
    if kind in KNOWN:
        good, bad = KNOWN[kind]
        return draw(st.sampled_from(good + bad))
    if draw(st.booleans()):
        return draw(_odd_text())
    return draw({
        "netns": st.from_regex(r"fz[a-z0-9-]{0,10}", fullmatch=True),
        "dev": st.from_regex(r"fz[a-z0-9]{0,8}", fullmatch=True),
        "lab": st.from_regex(r"fz[a-z0-9]{0,8}", fullmatch=True),
        "node": st.from_regex(r"[hrs][0-9]{1,2}", fullmatch=True),
        "nodes": st.lists(st.from_regex(r"[hr][0-9]", fullmatch=True), min_size=1, max_size=3).map(",".join),
        "port": st.integers(1, 65535).map(str), "port0": st.integers(0, 65535).map(str),
        "mtu": st.integers(68, 9000).map(str), "count": st.integers(1, 50).map(str),
    }.get(kind, st.sampled_from(["0.5", "1", "2.5", "10"])))  # the kinds of seconds


# (object verb..., [(kind, flag, option-or-None), ...]): the real verbs, with their arguments in order
VERBS: list[tuple[list[str], list[tuple[str, str, str | None]]]] = [
    (["ns", "add"], [("netns", "NAME", None)]), (["ns", "del"], [("netns", "NAME", None)]),
    (["ns", "pids"], [("netns", "NAME", None)]), (["ns", "list"], []),
    (["link", "show"], [("dev", "DEV", None)]), (["link", "del"], [("dev", "DEV", None)]),
    (["link", "set"], [("dev", "DEV", None), ("mtu", "mtu", "mtu")]),
    (["link", "set"], [("dev", "DEV", None), ("netns", "netns", "netns")]),
    (["link", "set"], [("dev", "DEV", None), ("dev", "master", "master")]),
    (["link", "add"], [("dev", "NAME", None), ("dev", "peer", "type veth peer")]),
    (["link", "add"], [("dev", "NAME", None), ("netns", "peer-netns", "type veth peer fzp0 peer-netns")]),
    (["addr", "add"], [("cidr", "CIDR", None), ("dev", "dev", "dev")]),
    (["addr", "show"], [("dev", "DEV", None)]),
    (["route", "add"], [("dst", "DST", None), ("gw", "via", "via")]),
    (["route", "del"], [("dst", "DST", None), ("dev", "dev", "dev")]),
    (["ifconfig"], [("dev", "DEV", None)]),
    (["probe", "connect"], [("host", "HOST", None), ("port", "PORT", None), ("timeout", "--timeout", "--timeout")]),
    (["probe", "listen"], [("port0", "PORT", None)]),
    (["probe", "http"], [("url", "URL", None), ("timeout", "--timeout", "--timeout")]),
    (["lab", "up"], [("file", "FILE", None), ("lab", "--name", "--name")]),
    (["lab", "up"], [("topo", "--topo", "--topo"), ("lab", "--name", "--name")]),
    (["lab", "down"], [("lab", "LAB", None)]), (["lab", "status"], [("lab", "LAB", None)]),
    (["lab", "check"], [("lab", "LAB", None)]), (["lab", "heal"], [("lab", "LAB", None)]),
    (["lab", "exec"], [("lab", "LAB", None), ("node", "NODE", None)]),
    (["lab", "node"], [("lab", "LAB", None), ("node", "NODE", None)]),
    (["lab", "link"], [("lab", "LAB", None), ("node", "A", None), ("node", "B", None)]),
    (["lab", "link"], [("lab", "LAB", None), ("period", "--period", "h1 h2 flap --period"),
                       ("count", "--count", "--count")]),
    (["lab", "reach"], [("lab", "LAB", None), ("nodes", "--from", "--from"), ("port", "--tcp", "--tcp"),
                        ("reach_timeout", "--timeout", "--timeout")]),
    (["lab", "partition"], [("lab", "LAB", None), ("nodes", "GROUP", None), ("nodes", "GROUP", None)]),
    (["lab", "impair"], [("lab", "LAB", None), ("node", "A", None), ("node", "B", None),
                         ("percent", "--loss", "--loss"), ("rate", "--rate", "--rate")]),
    (["lab", "perf"], [("lab", "LAB", None), ("node", "A", None), ("node", "B", None)]),
    (["lab", "capture"], [("lab", "LAB", None), ("node", "NODE", None), ("count", "--count", "--count")]),
    (["lab", "top"], [("lab", "LAB", None), ("interval", "--interval", "--interval")]),
    (["lab", "graph"], [("lab", "LAB", None)]),
]
TAILS = {("lab", "exec"): ["--", "true"], ("lab", "node"): ["stop"], ("lab", "link"): ["down"],
         ("ns", "list"): []}


@st.composite
def grammar_argv(draw: st.DrawFn) -> Argv:
    words, specs = draw(st.sampled_from(VERBS))
    a = Argv()
    if draw(st.integers(min_value=0, max_value=4)) == 4:
        a.add("netns", "-n", draw(value("netns")), "-n")
    a.words += words
    for kind, flag, option in specs:
        if option is not None and draw(st.booleans()) and kind not in ("dev", "netns", "gw"):
            continue  # options are optional; the words after a verb are not
        v = draw(value(kind))
        if option is None:
            a.add(kind, flag, v)
        else:
            *lead, opt = option.split(" ")
            a.words += lead
            a.add(kind, flag, v, opt)
    tail = TAILS.get((words[0], words[1]) if len(words) > 1 else (words[0], ""), [])
    if words[:2] == ["lab", "link"] and "flap" in " ".join(a.words):
        tail = []
    a.words += tail
    return a


def check_message(err: str, argv: list[str]) -> None:
    lines = err.splitlines()
    assert lines and lines[0].startswith("nslab: "), (argv, err)
    assert len(lines) <= 2 and all(len(line) <= MESSAGE_MAX + 20 for line in lines), (argv, err[:500])
    assert len(lines) == 1 or lines[1].startswith("  hint: "), (argv, err)
    assert "Traceback" not in err


def names_argument(err: str, bad: list[tuple[str, str, str, bool | None]]) -> bool:
    low = err.lower()
    for kind, flag, v, _ in bad:
        shown = repr(v)[1:-1][:20].lower()
        if flag.lower() in low or (shown and shown in low) or any(w.lower() in low for w in KIND_WORDS[kind]):
            return True
    return "argument" in low  # argparse's own words for a misplaced option


@fuzz_settings(normal=250)
@given(grammar_argv())
def test_cli_grammar(a: Argv) -> None:
    note(repr(a.words))
    with bounded():
        rc, err, events = run_cli(a.words, reuse_parser=True)
    bad = [s for s in a.slots if s[3] is False]
    if bad:
        event("bad input")
        assert events == [], f"bad input {bad} reached the kernel: {events}"
        assert rc == 2, (a.words, rc, err)
        check_message(err, a.words)
        assert names_argument(err, bad), (bad, err)
    else:
        event("reached the kernel (stopped)" if rc is None else f"exit {rc}")
        assert rc in (None, 0, 1, 2), (a.words, rc, err)
        if rc:
            check_message(err, a.words)


VOCAB = sorted({w for words, specs in VERBS for w in words} | {"-n", "--json", "-j", "--", "--help", "type", "veth",
                                                                  "bridge", "peer", "dev", "via", "mtu", "up",
                                                                  "--timeout", "--topo", "--name", "--from"})


@st.composite
def random_argv(draw: st.DrawFn) -> list[str]:
    def word() -> st.SearchStrategy[str]:
        return st.one_of(st.sampled_from(VOCAB), _odd_text(),
                         st.binary(max_size=12).map(lambda b: os.fsdecode(b.replace(b"\0", b""))))
    return draw(st.lists(word(), max_size=8))


@fuzz_settings(normal=150)
@given(random_argv())
def test_cli_random_argv(argv: list[str]) -> None:
    note(repr(argv))
    with bounded():
        rc, err, _events = run_cli(argv, reuse_parser=True)
    assert rc in (None, 0, 1, 2), (argv, rc, err)
    if rc:
        check_message(err, argv)
