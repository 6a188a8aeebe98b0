"""The nodes' own settings of a topology file (issue 12): env, sysctls, routes, loopback, exec; defaults and
groups (inheritance), count (replicas) and ${...} substitution. Pure: parsing, planning, validation."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from nslab.errors import UsageError
from nslab.lab import subst
from nslab.lab.lab import digest, topology_from_data, topology_to_data
from nslab.lab.loader import json_schema
from nslab.lab.plan import Plan, make_plan, sysctl_device
from nslab.lab.topology import load_text

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "static-routes.yaml"


def plan_of(text: str) -> Plan:
    return make_plan(load_text(textwrap.dedent(text), "t.yaml"))


def refused(text: str) -> UsageError:
    with pytest.raises(UsageError) as info:
        plan_of(text)
    assert info.value.exit_code == 2
    assert info.value.hint
    return info.value


# ---- parsing and planning ---------------------------------------------------------------------------------------
def test_settings_reach_the_plan() -> None:
    plan = plan_of("""
        name: x
        nodes:
          h1:
            env: {A: "1", B: yes, N: 5}
            sysctls: {net.ipv4.conf.all.rp_filter: 0, net.ipv4.conf.eth0.arp_ignore: "1"}
            loopback: [10.9.9.1/32, "fd00:99::1/128"]
            exec: ["echo hi > /dev/null", [ip, -br, addr]]
          h2: {}
        links: [[h1, h2]]
        """)
    h1 = plan.node("h1")
    assert h1.env == {"A": "1", "B": "yes", "N": "5"}  # scalars as written (YAML 1.1 'yes' stays text)
    assert h1.sysctls == (("net.ipv4.conf.all.rp_filter", "0"), ("net.ipv4.conf.eth0.arp_ignore", "1"))
    assert h1.loopback == ("10.9.9.1/32", "fd00:99::1/128")
    assert h1.exec == (("sh", "-c", "echo hi > /dev/null"), ("ip", "-br", "addr"))
    assert plan.node("h2").env == {} and plan.node("h2").exec == ()


def test_a_single_loopback_string_and_the_allocator_skips_loopback_subnets() -> None:
    plan = plan_of("""
        name: x
        nodes: {r1: {kind: router, loopback: 10.0.0.1/32}, h1: {}, h2: {}}
        links: [[r1, h1, h2]]
        """)
    assert plan.node("r1").loopback == ("10.0.0.1/32",)
    # The first LAN would be 10.0.0.0/24, which holds the loopback address: it gets the next one.
    assert plan.segments[0].ipv4 == "10.0.1.0/24"


def test_static_routes_with_routing_none_via_address_and_via_node() -> None:
    plan = plan_of("""
        name: x
        routing: none
        nodes:
          h1: {routes: [{to: default, via: r1}, {to: 10.9.0.0/16, via: 10.0.0.254}]}
          r1: {kind: router}
          s1: {kind: switch}
        links: [[h1, s1], [r1, s1]]
        """)
    routes = {(r.dst, r.via, r.dev, r.static) for r in plan.routes_of("h1")}
    assert routes == {("default", "10.0.0.1", "eth0", True), ("default", "fd00:6e73::1", "eth0", True),
                      ("10.9.0.0/16", "10.0.0.254", "eth0", True)}
    assert plan.routes_of("r1") == []  # routing: none computes nothing


def test_a_static_route_replaces_the_computed_one_to_the_same_destination() -> None:
    plan = plan_of("""
        name: x
        nodes:
          h1: {routes: [{to: default, via: 10.0.0.254}]}
          r1: {kind: router}
          s1: {kind: switch}
        links: [[h1, s1], [r1, s1]]
        """)
    v4 = [r for r in plan.routes_of("h1") if ":" not in r.via]
    v6 = [r for r in plan.routes_of("h1") if ":" in r.via]
    assert [(r.dst, r.via, r.static) for r in v4] == [("default", "10.0.0.254", True)]
    assert [(r.dst, r.via, r.static) for r in v6] == [("default", "fd00:6e73::1", False)]  # IPv6 stays auto


def test_ipv6_routes_and_cidr_normalisation() -> None:
    plan = plan_of("""
        name: x
        routing: none
        nodes:
          h1: {routes: [{to: "FD00:9:0::/48", via: "fd00:1::1"}]}
          r1: {kind: router}
        links: [{endpoints: [h1, r1], prefix6: "fd00:1::/64"}]
        """)
    assert [(r.dst, r.via) for r in plan.routes_of("h1")] == [("fd00:9::/48", "fd00:1::1")]


# ---- inheritance ------------------------------------------------------------------------------------------------
INHERIT = """
    name: x
    defaults:
      env: {A: d, B: d}
      exec: ["echo defaults"]
    groups:
      outer: {members: [inner], env: {B: outer, C: outer}, kind: router}
      inner: {members: [r1], env: {C: inner}, exec: ["echo inner"]}
      side: {env: {D: side}}
    nodes:
      r1: {env: {E: own}, exec: ["echo own"]}
      h1: {group: side, env: {A: own, B: ~}}
      h2: {group: [side], kind: host}
    links: [[r1, h1], [r1, h2]]
    """


def test_node_wins_over_groups_inner_groups_over_outer_ones_and_groups_over_defaults() -> None:
    plan = plan_of(INHERIT)
    r1, h1 = plan.node("r1"), plan.node("h1")
    assert r1.kind == "router"  # from the outer group, through the inner one
    assert r1.env == {"A": "d", "B": "outer", "C": "inner", "E": "own"}  # mappings merge key by key
    assert [c[2] for c in r1.exec] == ["echo defaults", "echo inner", "echo own"]  # lists extend, outer first
    assert h1.env == {"A": "own", "D": "side"}  # `B: ~` drops the inherited key
    assert plan.groups == (("outer", ("r1",)), ("inner", ("r1",)), ("side", ("h1", "h2")))


def test_a_null_drops_an_inherited_list() -> None:
    plan = plan_of("""
        name: x
        defaults: {exec: ["echo d"]}
        nodes: {h1: {exec: ~}, h2: {}}
        links: [[h1, h2]]
        """)
    assert plan.node("h1").exec == () and plan.node("h2").exec == (("sh", "-c", "echo d"),)


# ---- replicas ---------------------------------------------------------------------------------------------------
def test_count_makes_replicas_and_links_to_them() -> None:
    plan = plan_of("""
        name: x
        groups: {etcd: {members: [db]}}
        nodes:
          db: {count: 3, env: {ME: "${node}", PEERS: "${addrs:etcd:,}"}}
          s1: {kind: switch}
          r1: {kind: router}
          w: {count: 2}
        links:
          - [s1, db]             # each replica on the switch: one LAN
          - [r1, w]              # one point-to-point link per replica
          - [r1, db, w]          # a LAN of 3+ endpoints takes every replica
        """)
    names = [n.name for n in plan.nodes]
    assert names[:3] == ["db1", "db2", "db3"] and {"w1", "w2", "lan3"} <= set(names)
    seg = {s.name: s for s in plan.segments}["s1"]
    assert {m[0] for m in seg.members} == {"db1", "db2", "db3"}
    assert sum({lk.a.node, lk.b.node} in ({"r1", "w1"}, {"r1", "w2"}) for lk in plan.links) == 2
    assert {lk.a.node for lk in plan.links if lk.b.node == "lan3"} == {"r1", "db1", "db2", "db3", "w1", "w2"}
    db2 = plan.node("db2")
    assert db2.env["ME"] == "db2"
    assert db2.env["PEERS"] == ",".join(plan.first_address(f"db{i}", 4) or "" for i in (1, 2, 3))
    assert dict(plan.groups)["db"] == ("db1", "db2", "db3") and dict(plan.groups)["etcd"] == ("db1", "db2", "db3")


def test_replicated_impairment_directions_follow_the_replica() -> None:
    plan = plan_of("""
        name: x
        nodes: {h: {count: 2}, r1: {kind: router}}
        links: [{endpoints: [r1, h], impair: {"r1->h": {rate: 10mbit}}}]
        """)
    assert sorted((i.src, i.dst) for i in plan.impairments) == [("r1", "h1"), ("r1", "h2")]


@pytest.mark.parametrize(("text", "line", "field", "what"), [
    ("nodes: {db: {count: 0}}", 2, "nodes.db.count", "count must be 1..1000"),
    ("nodes: {db: {count: 1001}}", 2, "nodes.db.count", "count must be 1..1000"),
    ("nodes: {db: {count: '3'}}", 2, "nodes.db.count", "quoted string"),
    ("nodes: {dbdbdbdbd: {count: 10}}", 2, "nodes.dbdbdbdbd.count", "longer than 10"),
    ("nodes: {db: {count: 2}, db2: {}}", 2, "nodes.db.count", "also declared"),
    ("nodes: {db: {count: 2}, w: {count: 2}}\nlinks: [[db, w]]", 3, "links[0]", "both ends"),
    ("nodes: {db: {count: 2}, h: {}}\nlinks: [[{node: db, ipv4: 10.0.0.1/24}, h]]", 3, "links[0].endpoints[0]",
     "cannot share one address"),
    ("nodes: {db: {count: 2}, h: {}}\nchecks: [{reach: [h, db]}]", 3, "checks[0].reach", "replicated node"),
])
def test_bad_replicas(text: str, line: int, field: str, what: str) -> None:
    err = refused("name: x\n" + text + "\n")
    assert err.message.startswith(f"t.yaml:{line}: {field}: "), err.message
    assert what in f"{err.message} {err.hint}"


# ---- groups: bad input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "line", "field", "what"), [
    ("groups: {a: {members: [b]}, b: {members: [a]}}\nnodes: {h: {}}", 2, "groups.a.members",
     "a -> b -> a"),
    ("groups: {a: {members: [a]}}\nnodes: {h: {}}", 2, "groups.a.members", "a -> a"),
    ("groups: {a: {members: [nope]}}\nnodes: {h: {}}", 2, "groups.a.members[0]", "unknown node or group 'nope'"),
    ("groups: {a: {}}\nnodes: {h: {group: b}}", 3, "nodes.h.group", "unknown group 'b'"),
    ("groups: {a: {}}\nnodes: {h: {group: [a, c]}}", 3, "nodes.h.group[1]", "unknown group 'c'"),
    ("groups: {h: {}}\nnodes: {h: {}}", 2, "groups.h", "name of a node"),
    ("groups: {A: {}}\nnodes: {h: {}}", 2, "groups.A", "invalid group name"),
    ("groups: {a: {count: 2}}\nnodes: {h: {}}", 2, "groups.a.count", "unknown key 'count'"),
    ("defaults: {group: a}\nnodes: {h: {}}", 2, "defaults.group", "unknown key 'group'"),
    ("defaults: {kind: hub}\nnodes: {h: {}}", 2, "nodes.h.kind", "unknown kind 'hub'"),  # where it is written
    ("groups: {a: {members: x}}\nnodes: {h: {}}", 2, "groups.a.members", "must be a list"),
])
def test_bad_groups(text: str, line: int, field: str, what: str) -> None:
    err = refused("name: x\n" + text + "\n")
    assert err.message.startswith(f"t.yaml:{line}: {field}"), err.message
    assert what in err.message, err.message


def test_an_inherited_error_names_the_line_where_the_value_is_written() -> None:
    err = refused("name: x\ndefaults:\n  sysctls:\n    kernel.pid_max: 5\nnodes: {h: {}}\n")
    assert err.message.startswith("t.yaml:4: nodes.h.sysctls.kernel.pid_max: only net.*"), err.message


# ---- node settings: bad input ---------------------------------------------------------------------------------
NODES = "nodes:\n  h1:\n    {}\n  r1: {kind: router}\n  s1: {kind: switch}\nlinks: [[h1, s1], [r1, s1]]\n"


@pytest.mark.parametrize(("setting", "field", "what"), [
    ("sysctls: {kernel.hostname: x}", "nodes.h1.sysctls.kernel.hostname", "only net.* sysctls"),
    ("sysctls: {vm.swappiness: 1}", "nodes.h1.sysctls.vm.swappiness", "whole machine"),
    ("sysctls: {net..x: 1}", "nodes.h1.sysctls.net..x", "invalid sysctl name"),
    ("sysctls: {net.ipv4.conf.eth9.rp_filter: 1}", "nodes.h1.sysctls.net.ipv4.conf.eth9.rp_filter",
     "no interface 'eth9'"),
    ("sysctls: {net.ipv4.ip_forward: [1]}", "nodes.h1.sysctls.net.ipv4.ip_forward", "single value"),
    ("env: {1A: x}", "nodes.h1.env", "invalid environment variable name"),
    ("env: {A: {b: c}}", "nodes.h1.env.A", "single value"),
    ("env: {A: \"a\\0b\"}", "nodes.h1.env.A", "NUL"),
    ("env: [A]", "nodes.h1.env", "must be a mapping"),
    ("routes: [{to: default, via: 10.9.9.9}]", "nodes.h1.routes[0].via", "on no segment of node 'h1'"),
    ("routes: [{to: default, via: 10.0.0.2}]", "nodes.h1.routes[0].via", "own address"),
    ("routes: [{to: default, via: nope}]", "nodes.h1.routes[0].via", "unknown node 'nope'"),
    ("routes: [{to: default, via: h1}]", "nodes.h1.routes[0].via", "via itself"),
    ("routes: [{to: 10.9.0.1/16, via: r1}]", "nodes.h1.routes[0].to", "host bits set (did you mean 10.9.0.0/16?)"),
    ("routes: [{to: somewhere, via: r1}]", "nodes.h1.routes[0].to", "not 'default' nor a CIDR"),
    ("routes: [{to: 10.9.0.0/16, via: 'fd00::1'}]", "nodes.h1.routes[0].via", "is IPv6"),
    ("routes: [{to: default, via: 127.0.0.1}]", "nodes.h1.routes[0].via", "loopback range"),
    ("routes: [{to: default, via: 'fe80::1%eth0'}]", "nodes.h1.routes[0].via", "zone id"),
    ("routes: [{to: default}]", "nodes.h1.routes[0]", "missing required key 'via'"),
    ("routes: [{to: default, via: r1, dev: eth0}]", "nodes.h1.routes[0].dev", "unknown key 'dev'"),
    ("routes: [{to: default, via: r1}, {to: 0.0.0.0/0, via: 10.0.0.254}]", "nodes.h1.routes[1]",
     "a second route to default"),
    ("routes: {to: default}", "nodes.h1.routes", "must be a list"),
    ("loopback: [10.9.9.1]", "nodes.h1.loopback[0]", "no prefix length"),
    ("loopback: [127.0.0.2/32]", "nodes.h1.loopback[0]", "loopback range"),
    ("loopback: [10.9.9.1/32, 10.9.9.1/32]", "nodes.h1.loopback[1]", "overlaps nodes.h1.loopback[0]"),
    ("loopback: [notanip/32]", "nodes.h1.loopback[0]", "not an address in CIDR form"),
    ("exec: [\"\"]", "nodes.h1.exec[0]", "empty command"),
    ("exec: [[]]", "nodes.h1.exec[0]", "empty command"),
    ("exec: \"echo hi\"", "nodes.h1.exec", "list of commands"),
    ("exec: [\"echo ${nope}\"]", "nodes.h1.exec[0]", "unknown variable ${nope}"),
    ("exec: [\"echo ${addr:nope}\"]", "nodes.h1.exec[0]", "unknown node 'nope'"),
    ("exec: [\"echo ${addr:s1}\"]", "nodes.h1.exec[0]", "has no IPv4 address"),
    ("env: {P: \"${group:nope}\"}", "nodes.h1.env.P", "unknown group 'nope'"),
    ("env: {P: \"${node\"}", "nodes.h1.env.P", "without its closing"),
    ("group: x", "nodes.h1.group", "unknown group 'x'"),
])
def test_bad_node_settings(setting: str, field: str, what: str) -> None:
    err = refused("name: x\n" + NODES.replace("{}", "{" + setting + "}"))
    assert err.message.startswith(f"t.yaml:4: {field}"), err.message
    assert what in f"{err.message} {err.hint}", err.message


def test_a_loopback_address_inside_a_given_subnet_is_refused() -> None:
    err = refused("name: x\nnodes:\n  h1: {loopback: [10.9.0.7/32]}\n  h2: {}\n"
                  "links: [{endpoints: [h1, h2], prefix: 10.9.0.0/24}]\n")
    assert err.message.startswith("t.yaml:3: nodes.h1.loopback[0]: 10.9.0.7/32 overlaps segment 'h1-h2'"), err.message


def test_a_router_keeps_its_forwarding_and_a_switch_has_no_routes() -> None:
    router = "r1: {kind: router, sysctls: {net.ipv4.ip_forward: 0}}"
    err = refused("name: x\n" + NODES.replace("r1: {kind: router}", router))
    assert "t.yaml:5: nodes.r1.sysctls.net.ipv4.ip_forward: " in err.message and "forwarding" in err.message
    switch = "s1: {kind: switch, routes: [{to: default, via: r1}]}"
    err = refused("name: x\n" + NODES.replace("s1: {kind: switch}", switch))
    assert err.message.startswith("t.yaml:6: nodes.s1.routes: switch 's1' carries no addresses")


# ---- substitution (pure module) ---------------------------------------------------------------------------------
def ctx(node: str = "h1") -> subst.Context:
    addrs = {("h1", 4): "10.0.0.1", ("h2", 4): "10.0.0.2", ("h1", 6): "fd00::1", ("h2", 6): "fd00::2"}
    return subst.Context("lab", node, {"h1", "h2", "s1"}, {"all": ["h1", "h2"]},
                         lambda n, f: addrs.get((n, f)))


@pytest.mark.parametrize(("text", "out"), [
    ("plain", "plain"),
    ("${node}@${lab}", "h1@lab"),
    ("${addr:h2}:2379 [${addr6:h2}]", "10.0.0.2:2379 [fd00::2]"),
    ("${group:all}", "h1 h2"),
    ("${group:all:,}", "h1,h2"),
    ("${addrs:all:, }", "10.0.0.1, 10.0.0.2"),
    ("${addrs6:all}", "fd00::1 fd00::2"),
    ("$HOME $1 $$ ${ node }", "$HOME $1 $$ h1"),  # the shell's own forms pass through
    ("$${HOME} $${node}", "${HOME} ${node}"),  # $${ is a literal ${
])
def test_substitution(text: str, out: str) -> None:
    assert subst.expand(text, ctx()) == out


@pytest.mark.parametrize(("text", "what"), [
    ("${HOME}", "unknown variable ${HOME}"), ("${addr:}", "needs a name"), ("${addr:x}", "unknown node 'x'"),
    ("${addr:all}", "is a group"), ("${addr:s1}", "no IPv4 address"), ("${group:h1}", "is a node"),
    ("${node:x}", "takes no argument"), ("${addr:h1:,}", "no separator"), ("${", "without its closing"),
    ("${a{b}", "without its closing"),
])
def test_substitution_refuses(text: str, what: str) -> None:
    with pytest.raises(subst.SubstError) as info:
        subst.expand(text, ctx())
    assert what in f"{info.value.message} {info.value.hint}" and info.value.hint and info.value.exit_code == 2


# ---- the example, the schema, the state record -----------------------------------------------------------------
def test_example_plans_and_satisfies_the_schema() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(EXAMPLE.read_text()), schema, cls=jsonschema.Draft202012Validator)
    plan = make_plan(load_text(EXAMPLE.read_text(), str(EXAMPLE)))
    assert plan.node("r1").kind == "router" and plan.node("r1").loopback == ("10.10.0.1/32", "fd00:10::1/128")
    assert plan.node("h1").env["PEER"] == plan.first_address("h2", 4) == "10.1.2.2"
    assert all(r.static for r in plan.routes)


@pytest.mark.parametrize("data", [
    {"name": "x", "nodes": {"h": {"sysctls": {"kernel.x": 1}}}},
    {"name": "x", "nodes": {"h": {"count": 0}}},
    {"name": "x", "nodes": {"h": {"routes": [{"to": "default"}]}}},
    {"name": "x", "nodes": {"h": {"env": {"1x": "a"}}}},
    {"name": "x", "defaults": {"count": 2}, "nodes": {"h": {}}},
    {"name": "x", "groups": {"g": {"members": ["h"], "group": "g"}}, "nodes": {"h": {}}},
    {"name": "x", "nodes": {"h": {"exec": [[]]}}},
])
def test_schema_refuses_bad_settings(data: dict[str, object]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json_schema(), cls=jsonschema.Draft202012Validator)


def test_state_record_round_trip_keeps_settings_and_digest() -> None:
    topo = load_text(EXAMPLE.read_text(), str(EXAMPLE))
    data = json.loads(json.dumps(topology_to_data(topo)))
    again = topology_from_data(data)
    assert make_plan(again) == make_plan(topo) and digest(again) == digest(topo)
    plain = load_text("name: x\nnodes: {h1: {}, h2: {}}\nlinks: [[h1, h2]]\n")
    assert topology_to_data(plain)["nodes"]["h1"] == {"name": "h1", "kind": "host"}  # older records still match


def test_sysctl_device() -> None:
    assert sysctl_device("net.ipv4.conf.eth0.rp_filter") == "eth0"
    assert sysctl_device("net.ipv6.neigh.up0.retrans_time_ms") == "up0"
    assert [sysctl_device(k) for k in ("net.ipv4.conf.all.x", "net.ipv6.conf.default.x", "net.ipv4.conf.lo.x",
                                       "net.ipv4.ip_forward", "net.core.somaxconn")] == [None] * 5


# ---- reconcile: the desired state and the diff of sysctls and loopback addresses (pure) -----------------------
def test_reconcile_wants_the_settings_and_diffs_them() -> None:
    from nslab.lab import reconcile as rc

    plan = make_plan(load_text(EXAMPLE.read_text(), str(EXAMPLE)))
    want = rc.desired(plan, rc.Faults())
    r1 = want["r1"]
    assert r1.loopback == ("10.10.0.1/32", "fd00:10::1/128")
    assert dict(r1.sysctls) == {"net.ipv4.conf.all.rp_filter": "0", "net.ipv4.icmp_ratelimit": "0"}
    assert {(w.dst, w.via) for w in want["h2"].routes} == {("0.0.0.0/0", "10.1.2.1"), ("::/0", "fd00:1:2::1")}
    links = {"lo": rc.SeenLink(1, None, True, None, 65536),
             **{i.ifname: rc.SeenLink(2 + k, "veth", True, None, 1500) for k, i in enumerate(r1.ifaces)}}
    in_sync = rc.SeenNode(links=links, addresses={"lo": frozenset(r1.loopback),
                                                  **{i.ifname: frozenset(i.addresses) for i in r1.ifaces}},
                          routes=(), forwarding=("1", "1"),
                          sysctls={"net.ipv4.conf.all.rp_filter": "0", "net.ipv4.icmp_ratelimit": "0"})
    changes, notes = rc.diff_node(dataclasses.replace(r1, routes=()), in_sync, "")
    assert (changes, notes) == ([], [])
    drifted = dataclasses.replace(in_sync, addresses={**in_sync.addresses, "lo": frozenset({"127.0.0.1/8"})},
                                  sysctls={"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.icmp_ratelimit": None})
    changes, notes = rc.diff_node(dataclasses.replace(r1, routes=()), drifted, "")
    assert [c.line(done=False) for c in changes] == [
        "r1: sysctl net.ipv4.conf.all.rp_filter is 1, the plan 0",
        "r1: address 10.10.0.1/32 on lo is missing", "r1: address fd00:10::1/128 on lo is missing"]
    assert [n.line() for n in notes] == ["r1: sysctl net.ipv4.icmp_ratelimit cannot be read (is its interface gone?)"]
    assert all(c.ifindex == 1 for c in changes if c.kind == "address")


# ---- a hostile user's per-node keys (s19-fx-keys) ---------------------------------------------------------------
@pytest.mark.parametrize("key", [
    "net.ipv4.conf.all.forwarding", "net.ipv4.conf.default.forwarding", "net.ipv4.conf.eth0.forwarding",
    "net.ipv6.conf.all.forwarding", "net.ipv6.conf.default.forwarding", "net.ipv6.conf.eth0.forwarding",
])
def test_a_router_refuses_every_alias_of_its_forwarding(key: str) -> None:
    err = refused("name: x\n" + NODES.replace("r1: {kind: router}", f"r1: {{kind: router, sysctls: {{{key}: '0'}}}}"))
    assert err.message.startswith(f"t.yaml:5: nodes.r1.sysctls.{key}: {key} is nslab's on a router"), err.message
    plan_of("name: x\n" + NODES.replace("{}", f"{{sysctls: {{{key}: '0'}}}}"))  # a host decides its own


@pytest.mark.parametrize("key", ["net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6",
                                 "net.ipv6.conf.eth0.disable_ipv6"])
def test_disable_ipv6_is_refused_where_nslab_gives_ipv6_addresses(key: str) -> None:
    err = refused("name: x\n" + NODES.replace("{}", f"{{sysctls: {{{key}: '1'}}}}"))
    assert err.message.startswith(f"t.yaml:4: nodes.h1.sysctls.{key}: {key}=1 turns IPv6 off"), err.message
    assert "eth0" in err.message
    plan_of("name: x\n" + NODES.replace("{}", f"{{sysctls: {{{key}: '0'}}}}"))


@pytest.mark.parametrize("key", ["net.core.rmem_max", "net.netfilter.nf_conntrack_max", "net.core.wmem_default"])
def test_machine_wide_net_keys_are_refused_at_load(key: str) -> None:
    err = refused("name: x\n" + NODES.replace("{}", f"{{sysctls: {{{key}: '4096'}}}}"))
    assert err.message.startswith(f"t.yaml:4: nodes.h1.sysctls.{key}: {key} is the machine's"), err.message
    assert "read-only inside a network namespace" in err.message


def test_a_route_via_a_switch_says_a_switch_has_no_address() -> None:
    err = refused("name: x\n" + NODES.replace("{}", "{routes: [{to: default, via: s1}]}"))
    assert "nodes.h1.routes[0].via: node 's1' is a switch, which has no address" in err.message, err.message
    assert "router or host" in err.hint


@pytest.mark.parametrize("name", ["localhost"])  # the other hosts-file names exceed NODE_NAME_MAX (10)
def test_names_etc_hosts_holds_are_reserved(name: str) -> None:
    err = refused(f"name: x\nnodes:\n  {name}: {{}}\n  h2: {{}}\nlinks: [[{name}, h2]]\n")
    assert err.message.startswith(f"t.yaml:3: nodes.{name}: node name {name!r} is reserved"), err.message


def test_the_example_routes_each_router_to_the_other_routers_loopback_in_both_families() -> None:
    plan = make_plan(load_text(EXAMPLE.read_text(), str(EXAMPLE)))
    for me, other in (("r1", "r2"), ("r2", "r1")):
        dsts = {r.dst for r in plan.routes_of(me)}
        assert set(plan.node(other).loopback) <= dsts, (me, sorted(dsts))


def test_a_sysctl_the_kernel_keeps_read_only_gets_a_hint_naming_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from nslab.lab import apply

    def read_only(key: str, value: str) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(apply.sysctl, "write", read_only)
    with pytest.raises(UsageError) as info:
        apply._write_sysctls("h1", [("net.core.xyz_max", "1")])
    assert info.value.exit_code == 2 and "Permission denied" in info.value.message
    assert "the machine's" in info.value.hint and "read-only inside a network namespace" in info.value.hint
