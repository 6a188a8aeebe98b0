"""Topology files and the Python builder: every error names file, line and field (pure, no root)."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import LAB_DATA, REPO

from nslab.errors import NotFoundError, UsageError
from nslab.lab.addressing import format_ip
from nslab.lab.plan import make_plan
from nslab.lab.topology import Endpoint, Topology, json_schema, load_file, load_text, natural_key

HERE = Path(LAB_DATA)
BAD = sorted((HERE / "bad").glob("*.yaml"))
GOOD = sorted((HERE / "good").glob("*.yaml"))


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0] if path.read_text() else ""
    m = re.fullmatch(r"# expect: (.+)", first)
    assert m, f"{path.name}: line 1 must be '# expect: <substring of the message>'"
    return m.group(1)


def test_corpus_is_big_enough() -> None:
    assert len(BAD) >= 25
    assert len(GOOD) >= 4


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_file(path: Path) -> None:
    with pytest.raises(UsageError) as info:
        make_plan(load_file(path))
    message = info.value.message
    assert re.match(rf"{re.escape(str(path))}:\d+: ", message), message  # file and line first
    assert expected(path) in str(info.value)  # the message, or for "did you mean" the hint
    assert info.value.hint, "every error says how to fix it"
    assert info.value.exit_code == 2


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_file_fails_at_load(path: Path) -> None:
    """load_file alone finds every error: nothing is planned, let alone created, from a bad file."""
    with pytest.raises(UsageError):
        load_file(path)


def test_line_numbers_point_at_the_field() -> None:
    text = "name: x\nnodes:\n  h1: {}\n  h2: {}\nlinks:\n  - [h1, h2]\n  - endpoints: [h1, hx]\n"
    with pytest.raises(UsageError, match=r"^f\.yaml:7: links\[1\]\.endpoints\[1\]: unknown node 'hx'"):
        load_text(text, "f.yaml")
    text = "name: x\nnodes:\n  h1: {}\n  h2: {}\nlinks:\n  - endpoints: [h1, h2]\n\n    mtu: 12\n"
    with pytest.raises(UsageError, match=r"^f\.yaml:8: links\[0\]\.mtu: "):
        load_text(text, "f.yaml")


def test_unknown_node_hint_lists_known_nodes() -> None:
    text = "name: x\nnodes: {h1: {}, h2: {}, r1: {kind: router}}\nlinks: [[h1, hx]]\n"
    with pytest.raises(UsageError) as info:
        load_text(text, "c.yaml")
    assert info.value.hint is not None
    assert "declare it under nodes:" in info.value.hint
    assert "h1, h2, r1" in info.value.hint


def test_missing_file() -> None:
    with pytest.raises(NotFoundError, match=r"nope\.yaml: no such topology file"):
        load_file(HERE / "nope.yaml")


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_file_loads(path: Path) -> None:
    topo = load_file(path)
    assert topo.source == str(path)
    assert topo.nodes


def test_yaml_words_are_taken_literally() -> None:
    topo = load_text("name: x\nnodes: {on: {}, h1: {}}\nlinks: [[on, h1]]\n")
    assert "on" in topo.nodes
    assert topo.links[0].endpoints[0].node == "on"


def test_null_node_means_host() -> None:
    topo = load_text("name: x\nnodes:\n  h1:\n  r1: {kind: router}\n")
    assert topo.nodes["h1"].kind == "host"


def test_endpoint_forms() -> None:
    topo = load_text(
        "name: x\nnodes: {db: {}, web: {}, h2: {}}\nlinks:\n"
        "  - endpoints: ['db:eth1', 'web:eth1']\n    mtu: 9000\n"
        "  - endpoints: [{node: h2, ifname: eth5, ipv4: 10.1.2.3/24, ipv6: 'fd00::5/64'}, db]\n"
    )
    assert topo.links[0].endpoints == [Endpoint("db", "eth1"), Endpoint("web", "eth1")]
    assert topo.links[0].mtu == 9000
    assert topo.links[1].endpoints[0] == Endpoint("h2", "eth5", "10.1.2.3/24", "fd00::5/64")


# --- JSON Schema -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_schema_accepts_good_files(path: Path) -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(path.read_text()), schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    "name",
    [
        "unknown_top_key",
        "missing_name",
        "bad_lab_name",
        "long_node_name",
        "unknown_kind",
        "one_endpoint",
        "mtu_range",
        "routing",
        "reserved_name",
        "endpoint_unknown_key",
        "no_nodes",
        "bad_ifname",
    ],
)
def test_schema_rejects_bad_files(name: str) -> None:
    data = yaml.safe_load((HERE / "bad" / f"{name}.yaml").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json_schema(), cls=jsonschema.Draft202012Validator)


def test_schema_is_shipped_as_package_data() -> None:
    path = Path(REPO) / "nslab" / "lab" / "schema.json"
    assert json.loads(path.read_text()) == json_schema()


def test_schema_is_the_one_source_of_the_loaders_keys_and_agrees_with_the_model() -> None:
    """The loader reads its accepted keys from schema.json (issue 10); the schema's enums are the model's."""
    from nslab.lab import loader, model

    schema = json_schema()
    top = schema["properties"]
    assert loader.TOP_KEYS == ("name", "routing", "pools", "defaults", "groups", "nodes", "links", "checks", "faults",
                              "profiles", "between")
    assert loader.LINK_KEYS == ("endpoints", "mtu", "prefix", "prefix6", "impair")
    assert loader.ENDPOINT_KEYS == ("node", "ifname", "ipv4", "ipv6")
    assert loader.IMPAIR_KEYS == ("loss", "rate", "duplicate", "corrupt", "delay", "jitter", "reorder",
                                  "delay_correlation", "distribution", "loss_correlation", "loss_model",
                                  "reorder_correlation", "gap", "corrupt_correlation", "limit", "profile")
    assert loader.CHECK_KEYS == ("reach", "no_reach", "port_open", "retries")
    assert (loader.NODE_KEYS, loader.PORT_CHECK_KEYS) == (
        ("kind", "env", "sysctls", "routes", "loopback", "exec", "group", "count", "files", "private", "services"),
        ("from", "to", "port"))
    assert tuple(model.DEFAULT_POOLS) == loader.POOL_KEYS
    assert tuple(top["routing"]["enum"]) == model.ROUTING
    node_form = next(o for o in top["nodes"]["additionalProperties"]["oneOf"] if o.get("type") == "object")
    assert tuple(node_form["properties"]["kind"]["enum"]) == model.KINDS
    assert tuple(c["required"][0] for c in top["checks"]["items"]["oneOf"]) == model.CHECK_KINDS
    assert {k: v["default"] for k, v in top["pools"]["properties"].items()} == model.DEFAULT_POOLS
    # A key the schema gains is a key the loader takes: an unknown key is refused with the schema's list.
    with pytest.raises(UsageError, match="allowed keys: " + ", ".join(loader.LINK_KEYS)):
        load_text("name: x\nnodes: {a: {}, b: {}}\nlinks:\n  - {endpoints: [a, b], mut: 9000}\n")


# --- Python builder ----------------------------------------------------------------------------------------


def test_builder_matches_file() -> None:
    t = Topology.new("campus")
    for name in ("h1", "h2", "db", "web", "cache"):
        t.add_node(name)
    t.add_node("r1", "router")
    t.add_node("s1", "switch")
    t.add_link("h1", "s1")
    t.add_link("h2", "s1")
    t.add_link("r1", "s1")
    t.add_link("r1", "db")
    t.add_link("r1", "web", "cache")
    t.add_link("db:eth1", "web:eth1", mtu=9000)
    from_file = load_file(HERE / "good" / "campus.yaml")
    assert t == from_file
    assert make_plan(t) == make_plan(from_file)


def test_builder_errors_name_the_field() -> None:
    with pytest.raises(UsageError, match="invalid lab name"):
        Topology.new("Bad Name")
    t = Topology.new("x")
    t.add_node("h1")
    with pytest.raises(UsageError, match=r"nodes\.h1: duplicate node"):
        t.add_node("h1")
    with pytest.raises(UsageError, match="unknown kind 'hub'"):
        t.add_node("h2", "hub")
    t = Topology.new("x")
    t.add_node("h1")
    t.add_link("h1", "h9")
    with pytest.raises(UsageError, match=r"^<python>: links\[0\]\.endpoints\[1\]: unknown node 'h9'"):
        make_plan(t)


def test_builder_mtu_bool_refused() -> None:
    t = Topology.new("x")
    t.add_node("a")
    t.add_node("b")
    t.add_link("a", "b", mtu=True)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="mtu"):
        t.validate()


# --- small helpers ---------------------------------------------------------------------------------------


def test_natural_key() -> None:
    assert sorted(["h10", "h2", "h1", "r1", "h1a"], key=natural_key) == ["h1", "h1a", "h2", "h10", "r1"]


@pytest.mark.parametrize(
    "text",
    [
        "::",
        "::1",
        "fd00::",
        "fd00:6e73::1",
        "fd00:0:0:1::2",
        "1:0:0:2:0:0:0:3",
        "1:0:0:2:0:0:3:4",
        "0:0:1:0:0:1:0:0",
        "1:2:3:4:5:6:7:8",
        "fd00:6e73:0:ff::ffff",
        "::ffff:0:1",
    ],
)
def test_format_ip_matches_ipaddress(text: str) -> None:
    ip = ipaddress.IPv6Address(text)
    assert format_ip(6, int(ip)) == str(ip)


def test_format_ip_random() -> None:
    import random

    rnd = random.Random(7)
    for _ in range(5000):
        # sparse values exercise the zero-run compression
        v = 0
        for g in range(8):
            if rnd.random() < 0.4:
                v |= rnd.randrange(0x10000) << (16 * g)
        assert format_ip(6, v) == str(ipaddress.IPv6Address(v))
        v4 = rnd.randrange(1 << 32)
        assert format_ip(4, v4) == str(ipaddress.IPv4Address(v4))
