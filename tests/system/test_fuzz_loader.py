"""Property-based fuzzing of the topology file loader (hypothesis).

Documents are generated structurally valid-ish (a lab name, nodes, links, pools, checks, impairments) and
then mutated: wrong types, YAML 1.1 number forms, huge and odd numbers, unicode and escaped surrogates, deep
nesting, unknown and duplicate keys, anchors and aliases; and raw text is mutated on top (bytes inserted,
deleted, control characters, truncation). Whatever comes in:

- loading returns a Topology (which then plans), or raises UsageError; never any other exception;
- within PER_EXAMPLE_S seconds (no hang);
- the message is one line, bounded, starts with `FILE:LINE: ` (a line of the document) and has a hint;
- nothing touches the kernel or the file system (kernel_guard).

See fuzz_settings for the normal and the long run.
"""

from __future__ import annotations

import re
from typing import Any

import hypothesis.strategies as st
from hypothesis import event, given
from kernel_guard import no_kernel

from nslab.errors import MESSAGE_MAX, UsageError
from nslab.lab.plan import make_plan
from nslab.lab.topology import load_text

from .fuzz_settings import bounded, fuzz_settings

SOURCE = "fuzz.yaml"


class Raw(str):
    """A scalar emitted as is (plain YAML: a number form, a tag, a flow fragment)."""


class Dup(list[tuple[Any, Any]]):
    """A mapping given as (key, value) pairs, so that keys can repeat."""


class Anchored:
    def __init__(self, name: str, value: Any) -> None:
        self.name, self.value = name, value


class Alias(str):
    pass


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")


def quote(text: str) -> str:
    """Double-quoted YAML; anything unusual (surrogates included) as \\uXXXX / \\xXX escapes."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c.isprintable() and not (0xD800 <= ord(c) <= 0xDFFF) and c != "\x85":
            out.append(c)
        elif ord(c) < 0x100:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return '"' + "".join(out) + '"'


def emit(value: Any) -> str:
    """Flow-style YAML of the generated structure."""
    if isinstance(value, Anchored):
        return f"&{value.name} {emit(value.value)}"
    if isinstance(value, Alias):
        return f"*{value}"
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "~"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value if _PLAIN.fullmatch(value) and value.lower() not in ("y", "n", "yes", "no", "on", "off",
                                                                             "true", "false", "null") else quote(value)
    if isinstance(value, Dup):
        return "{" + ", ".join(f"{emit(k)}: {emit(v)}" for k, v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{emit(k)}: {emit(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(emit(v) for v in value) + "]"
    raise TypeError(type(value))


def block(doc: dict[str, Any]) -> str:
    """Top level in block style (one key a line), values in flow style: line numbers mean something."""
    lines = []
    for key, value in doc.items():
        if key == "links" and isinstance(value, list):
            lines.append("links:")
            lines.extend(f"  - {emit(v)}" for v in value)
        else:
            lines.append(f"{emit(key)}: {emit(value)}")
    return "\n".join(lines) + "\n"


# ---- strategies -------------------------------------------------------------------------------------------
node_names = st.sampled_from(["h1", "h2", "h3", "r1", "r2", "s1", "s2", "web", "db", "h4", "r3", "h5"])
odd_node_names = st.sampled_from(["lan1", "H1", "1h", "a" * 11, "é", "h\udcff", "", "x y"])
ODD_NUMBERS = ["0x_", "01500", "22:22", "!!int 0x5dc", "!!int '9000'", "0b101", "1_500", "+1500", "-1", "0",
               "1e400", ".inf", "-.inf", ".nan", "9" * 400, "9" * 5000, "1500.0", "0o17", "!!float 9000", "٩٠٠٠"]
odd_scalars = st.one_of(
    st.sampled_from(ODD_NUMBERS).map(Raw),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(),
    st.text(max_size=40),  # any unicode, surrogates included (emitted as escapes)
    st.text(alphabet=st.characters(codec="ascii"), max_size=20),
    st.sampled_from(["lo", "all", "default", "br0", "eth0", "", " ", "a/b", "a:b", "x" * 100, "é" * 20, "Lab",
                     "a" * 13, "1lab", "l\udcffb", "lan1"]),
    st.sampled_from(["::/64", "fe80::/64", "ff02::/64", "::1/64", "fd00::1%eth0/64", "127.0.0.0/24",
                     "224.0.0.0/24", "0.0.0.0/0", "10.0.0.1/24", "10.9.0.0/24", "fd00:1::/64", "10.0.0.300/24"]),
)


def wrong(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the value; now and then a mutation of its type or size (so that some documents stay valid)."""
    mutation = st.one_of(
        odd_scalars,
        st.lists(odd_scalars, max_size=3),
        st.dictionaries(st.text(max_size=8), odd_scalars, max_size=3),
        st.integers(min_value=1, max_value=60).map(lambda n: Raw("[" * n + "x" + "]" * n)),
    )
    return st.integers(min_value=0, max_value=15).flatmap(lambda k: mutation if k == 15 else value)


rates = st.sampled_from(["10mbit", "1gbit", "0", "9" * 400 + "mbit", "1e400kbit", "inf", "nan", "fast", "8kbit"])
percents = st.sampled_from(["5%", "0.5%", "100%", "150%", "-1", "nan", "inf", "1e400", "0.001%", "5"])
times = st.sampled_from(["10ms", "1.5s", "250us", "inf", "nan", "1e400s", "9" * 400, "-1ms", "100"])
impairs = st.fixed_dictionaries({}, optional={"loss": wrong(percents), "rate": wrong(rates),
                                              "delay": wrong(times), "duplicate": wrong(percents)})



def endpoint(names: list[str]) -> st.SearchStrategy[Any]:
    node = st.sampled_from(names)
    return st.one_of(
        node, node, node,
        st.tuples(node, st.sampled_from(["eth1", "eth7", "up0", "lo", "br0", "all", "e\udcff", "x" * 16])).map(
            lambda t: f"{t[0]}:{t[1]}"),
        st.fixed_dictionaries({"node": wrong(node)}, optional={
            "ifname": wrong(st.sampled_from(["eth5", "eth6", "lo", "br0", "default", "x\udcffy"])),
            "ipv4": wrong(st.sampled_from(["10.1.2.3/24", "10.1.2.4/24", "224.0.0.1/24", "127.0.0.2/8", "10.1.2.3"])),
            "ipv6": wrong(st.sampled_from(["fd00::5/64", "fd00::6/64", "fe80::5/64", "::1/64", "fd00::5%eth0/64"])),
        }),
    )


def links(names: list[str]) -> st.SearchStrategy[Any]:
    eps = st.lists(endpoint(names), min_size=2, max_size=4)
    return st.one_of(
        eps, eps,
        st.fixed_dictionaries({"endpoints": wrong(eps)}, optional={
            "mtu": wrong(st.one_of(st.integers(min_value=1280, max_value=9000), st.integers(0, 70000),
                                   st.sampled_from(ODD_NUMBERS).map(Raw))),
            "prefix": wrong(st.sampled_from(["10.9.0.0/24", "127.0.0.0/24", "10.9.0.1/24", "10.9.0.0%x/24"])),
            "prefix6": wrong(st.sampled_from(["fd00:9::/64", "fe80::/64", "ff00::/64", "::/64", "fd00::%1/64"])),
            "impair": wrong(st.one_of(impairs, st.dictionaries(st.sampled_from(["h1->h2", "h2->h1", "both", "x"]),
                                                               impairs, max_size=2))),
        }),
    )


def checks(names: list[str]) -> st.SearchStrategy[Any]:
    node = st.sampled_from(names)
    return st.one_of(
        st.fixed_dictionaries({"reach": wrong(st.lists(node, min_size=2, max_size=2))},
                              optional={"retries": wrong(st.integers(min_value=-5, max_value=700))}),
        st.fixed_dictionaries({"no_reach": wrong(st.lists(node, min_size=2, max_size=2))}),
        st.fixed_dictionaries({"port_open": wrong(st.fixed_dictionaries(
            {"to": node, "port": wrong(st.one_of(st.integers(min_value=-1, max_value=70000),
                                                 st.sampled_from(ODD_NUMBERS).map(Raw)))},
            optional={"from": node}))}),
    )


kinds = st.sampled_from(["host", "host", "router", "router", "switch", "Router", "hub", ""])


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    key = st.integers(min_value=0, max_value=15).flatmap(lambda k: odd_node_names if k == 15 else node_names)
    nodes = draw(wrong(st.dictionaries(key, st.one_of(
        st.none(), st.fixed_dictionaries({}, optional={"kind": wrong(kinds)})), min_size=2, max_size=6)))
    names = sorted(nodes) if isinstance(nodes, dict) and nodes and all(isinstance(k, str) for k in nodes) \
        else ["h1", "h2"]
    doc: dict[str, Any] = {
        "name": draw(wrong(st.sampled_from(["lab", "campus", "x", "my-lab"]))),
        "nodes": nodes,
    }
    optional = {
        "links": wrong(st.lists(links(names), max_size=6)),
        "routing": wrong(st.sampled_from(["auto", "none", "static"])),
        "pools": wrong(st.fixed_dictionaries({}, optional={
            "ipv4_lan": wrong(st.sampled_from(["10.0.0.0/16", "0.0.0.0/16", "10.0.0.0/30", "224.0.0.0/8"])),
            "ipv4_p2p": wrong(st.sampled_from(["10.255.0.0/16", "10.0.0.0/8"])),
            "ipv6": wrong(st.sampled_from(["fd00:6e73::/48", "fe80::/48", "::/48", "ff00::/16", "fd00::/72"])),
        })),
        "checks": wrong(st.lists(checks(names), max_size=3)),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            doc[key] = draw(strategy)
    if draw(st.integers(min_value=0, max_value=9)) == 9:
        doc["extra"] = draw(odd_scalars)  # an unknown top-level key
    return doc


@st.composite
def mutated(draw: st.DrawFn) -> str:
    doc: dict[str, Any] = draw(documents())
    kind = draw(st.integers(min_value=0, max_value=9))
    if kind == 1 and doc:  # a duplicate key
        key = draw(st.sampled_from(sorted(doc)))
        text = block(doc) + f"{emit(key)}: {emit(doc[key])}\n"
    elif kind == 2:  # anchors and aliases, possibly expanding a lot
        fan = draw(st.integers(min_value=1, max_value=12))
        depth = draw(st.integers(min_value=1, max_value=8))
        anchors = ["a0: &a0 [h1, h2]"] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]"
                                           for i in range(1, depth)]
        doc.pop("links", None)
        text = block(doc) + "links:\n" + "".join(f"  - {a.split(': ', 1)[1]}\n" for a in anchors) \
            + f"  - endpoints: *a{depth - 1}\n"
    elif kind == 3:  # deep nesting at some field
        n = draw(st.integers(min_value=10, max_value=5000))
        doc.pop("routing", None)
        text = block(doc) + "routing: " + "[" * n + "]" * n + "\n"
    else:
        text = block(doc)
    if draw(st.integers(min_value=0, max_value=5)) == 5:  # text-level mutations
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            pos = draw(st.integers(min_value=0, max_value=len(text)))
            op = draw(st.integers(min_value=0, max_value=3))
            if op == 0:
                text = text[:pos] + draw(st.text(max_size=5)) + text[pos:]
            elif op == 1:
                text = text[:pos] + text[pos + draw(st.integers(min_value=1, max_value=20)):]
            elif op == 2:
                text = text[:pos] + chr(draw(st.integers(min_value=0, max_value=31))) + text[pos:]
            else:
                text = text[:pos]
    return text


def check(text: str) -> None:
    with no_kernel() as events, bounded():
        try:
            topo = load_text(text, SOURCE)
            make_plan(topo)
            event("loaded and planned")
        except UsageError as exc:
            event("refused")
            err = exc
        else:
            err = None
    assert events == [], events
    if err is None:
        return
    m = re.match(rf"{re.escape(SOURCE)}:(\d+): ", err.message)
    assert m, f"no FILE:LINE: in {err.message!r}"
    assert 1 <= int(m.group(1)) <= text.count("\n") + 2, (m.group(1), err.message)
    assert err.message[m.end():].strip(), err.message  # what is wrong (the field, or what in the YAML)
    assert "\n" not in err.message and len(err.message) <= MESSAGE_MAX, err.message
    assert err.hint and "\n" not in err.hint and len(err.hint) <= MESSAGE_MAX, err.hint
    assert err.exit_code == 2


@fuzz_settings(normal=200)
@given(mutated())
def test_loader_never_crashes_or_hangs(text: str) -> None:
    check(text)


@fuzz_settings(normal=100)
@given(st.text(max_size=400))
def test_loader_on_arbitrary_text(text: str) -> None:
    check(text)


def test_a_generated_document_loads() -> None:
    """The generator's unmutated form is a real topology: the fuzz explores around valid input."""
    text = block({"name": "lab", "nodes": {"h1": None, "r1": {"kind": "router"}},
                  "links": [["h1", "r1"], {"endpoints": ["h1:eth1", {"node": "r1", "ifname": "up0"}], "mtu": 9000,
                                           "impair": {"loss": "5%"}}],
                  "checks": [{"reach": ["h1", "r1"], "retries": 2}]})
    topo = load_text(text, SOURCE)
    assert len(topo.links) == 2 and topo.links[1].mtu == 9000 and topo.checks[0].retries == 2
