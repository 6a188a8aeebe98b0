"""Property-based fuzzing of the node settings of a topology file (issue 12): env, sysctls, routes, loopback,
exec, defaults, groups (nesting, cycles), count (replicas, links to them) and ${...} substitution.

Documents are generated around valid input and mutated (wrong types, odd numbers and text, unknown names,
cycles, huge counts, broken `${`). Whatever comes in, loading and planning give a Plan or a UsageError (exit 2)
whose message is one bounded line `FILE:LINE: ...` with a hint: never another exception, never a hang, never
the kernel (kernel_guard). See fuzz_settings for the normal and the long run.
"""

from __future__ import annotations

import json
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
    """Emitted as is (a YAML number form, a tag, a null)."""


def emit(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "~"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a YAML double-quoted scalar (surrogates as \u escapes)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{emit(k)}: {emit(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(emit(v) for v in value) + "]"
    raise TypeError(type(value))


def block(doc: dict[str, Any]) -> str:
    """One top-level key a line, nodes and groups one entry a line: line numbers mean something."""
    lines = []
    for key, value in doc.items():
        if key in ("nodes", "groups") and isinstance(value, dict) and value:
            lines.append(f"{key}:")
            lines.extend(f"  {emit(k)}: {emit(v)}" for k, v in value.items())
        elif key == "links" and isinstance(value, list) and value:
            lines.append("links:")
            lines.extend(f"  - {emit(v)}" for v in value)
        else:
            lines.append(f"{emit(key)}: {emit(value)}")
    return "\n".join(lines) + "\n"


NAMES = ["h1", "h2", "r1", "r2", "s1", "db", "web"]
odd = st.one_of(
    st.sampled_from(["0x1f", "01", "1_0", "!!int '3'", "22:22", "9" * 40, ".inf", "~", "[]", "{}", "[[x]]"]).map(Raw),
    st.integers(min_value=-(10**12), max_value=10**12), st.booleans(), st.none(),
    st.text(max_size=20), st.sampled_from(["", " ", "a\x00b", "é", "x" * 300, "\udcff"]),
)


def wrong(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly VALUE, now and then something else entirely."""
    return st.integers(min_value=0, max_value=11).flatmap(lambda k: odd if k == 11 else value)


subst_text = st.one_of(
    st.sampled_from(["echo ${node}", "${lab}-${node}", "${addr:h1}", "${addr6:r1}:2379", "${group:g1}",
                     "${addrs:g2:,}", "${addrs6:db}", "$HOME $1 $$", "$${x}", "${nope}", "${addr:zz}", "${",
                     "${group:h1}", "${addr:g1}", "${addr:s1}", "${node:x}", "${ node }", "a${b{c}d"]),
    st.text(alphabet="${}:ab,h1 ", max_size=12),
)
sysctl_keys = st.sampled_from(["net.ipv4.conf.all.rp_filter", "net.ipv4.conf.eth0.rp_filter", "net.ipv4.ip_forward",
                               "net.ipv6.conf.default.accept_dad", "net.ipv4.conf.eth9.arp_ignore", "kernel.pid_max",
                               "vm.swappiness", "net..x", "net", "net.core.somaxconn", "NET.ipv4.x", "net.a b",
                               "net.ipv4.conf.all.forwarding", "net.ipv6.conf.eth0.forwarding",
                               "net.ipv6.conf.all.disable_ipv6", "net.core.rmem_max"])
cidrs = st.sampled_from(["10.9.9.1/32", "fd00:99::1/128", "10.0.0.1/32", "10.0.0.0/16", "127.0.0.2/32", "10.9.9.1",
                         "fe80::1/128", "10.9.9.1/33", "::/0", "10.9.9.1%x/32", "0.0.0.0/0", "10.1.2.0/24"])
routes = st.lists(st.fixed_dictionaries(
    {"to": wrong(st.sampled_from(["default", "10.9.0.0/16", "fd00:9::/48", "10.9.0.1/16", "0.0.0.0/0", "x", "::/0"])),
     "via": wrong(st.sampled_from([*NAMES, "10.0.0.1", "10.0.0.2", "10.0.0.254", "10.9.9.9", "fd00:6e73::1",
                                   "fe80::1", "127.0.0.1", "nope", "fd00:6e73::ff"]))},
    optional={"dev": st.just("eth0")}), max_size=3)
commands = st.lists(st.one_of(subst_text, st.lists(subst_text, max_size=3)), max_size=3)


def settings(names: list[str], groups: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={
        "kind": wrong(st.sampled_from(["host", "router", "switch"])),
        "env": wrong(st.dictionaries(st.sampled_from(["A", "PEERS", "ME", "1X", "a-b", "_"]), wrong(subst_text),
                                     max_size=3)),
        "sysctls": wrong(st.dictionaries(sysctl_keys, wrong(st.sampled_from(["0", "1", "0 2147483647", "x\ny"])),
                                         max_size=3)),
        "routes": wrong(routes),
        "loopback": wrong(st.one_of(cidrs, st.lists(cidrs, max_size=3))),
        "exec": wrong(commands),
    })


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=6, unique=True))
    gnames = draw(st.lists(st.sampled_from(["g1", "g2", "g3", "h1", "G"]), max_size=3, unique=True))
    nodes: dict[str, Any] = {}
    for n in names:
        node = draw(settings(names, gnames))
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            node["count"] = draw(wrong(st.sampled_from([1, 2, 3, 0, 1001, 50])))
        if gnames and draw(st.booleans()):
            node["group"] = draw(wrong(st.one_of(st.sampled_from([*gnames, "zz"]),
                                                 st.lists(st.sampled_from([*gnames, "zz"]), max_size=2))))
        nodes[n] = node if node or draw(st.booleans()) else None
    doc: dict[str, Any] = {"name": "lab"}
    if draw(st.booleans()):
        doc["routing"] = draw(st.sampled_from(["auto", "none"]))
    if draw(st.booleans()):
        doc["defaults"] = draw(wrong(settings(names, gnames)))
    if gnames:
        doc["groups"] = {g: draw(wrong(st.fixed_dictionaries({}, optional={
            "members": wrong(st.lists(st.sampled_from([*names, *gnames, "zz"]), max_size=3)),
            "env": wrong(st.dictionaries(st.sampled_from(["A", "B"]), subst_text, max_size=2)),
            "kind": st.sampled_from(["host", "router"]),
            "exec": wrong(commands),
        }))) for g in gnames}
    doc["nodes"] = draw(wrong(st.just(nodes)))
    ends = st.sampled_from(names)
    doc["links"] = draw(st.lists(st.one_of(
        st.lists(ends, min_size=2, max_size=4),
        st.fixed_dictionaries({"endpoints": st.lists(ends, min_size=2, max_size=2)},
                              optional={"prefix": st.just("10.9.9.0/24"),
                                        "impair": st.just({"loss": "1%"})})), max_size=5))
    if draw(st.booleans()):
        doc["checks"] = [{"reach": draw(st.lists(ends, min_size=2, max_size=2))}]
    return doc


def check(text: str) -> None:
    with no_kernel() as events, bounded():
        try:
            make_plan(load_text(text, SOURCE))
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
    assert err.message[m.end():].strip(), err.message
    assert "\n" not in err.message and len(err.message) <= MESSAGE_MAX, err.message
    assert err.hint and "\n" not in err.hint and len(err.hint) <= MESSAGE_MAX, err.hint
    assert err.exit_code == 2


@fuzz_settings(normal=300)
@given(documents())
def test_node_keys_never_crash_the_loader(doc: dict[str, Any]) -> None:
    check(block(doc))


def test_a_generated_document_plans() -> None:
    """The generator's unmutated form is a real topology: the fuzz explores around valid input."""
    doc = {"name": "lab", "defaults": {"env": {"A": "${node}"}},
           "groups": {"g1": {"members": ["db"], "exec": ["echo ${group:g1}"]}},
           "nodes": {"h1": {"routes": [{"to": "default", "via": "r1"}], "loopback": "10.9.9.1/32",
                            "sysctls": {"net.ipv4.conf.eth0.rp_filter": "0"}},
                     "r1": {"kind": "router"}, "db": {"count": 2, "group": "g1"}},
           "links": [["h1", "r1"], ["r1", "db"]]}
    plan = make_plan(load_text(block(doc), SOURCE))
    assert plan.node("db2").exec == (("sh", "-c", "echo db1 db2"),) and plan.node("h1").env == {"A": "h1"}
