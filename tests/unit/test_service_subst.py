"""`${...}` in a service's cmd and env (nslab.lab.system.expand_service): expanded as the node's env and exec
are, and an unknown name refused by `prepare`'s check, before anything exists (exit 2 naming file, line, field)."""

from __future__ import annotations

import textwrap

import pytest

from nslab.errors import UsageError
from nslab.lab.plan import make_plan
from nslab.lab.system import expand_service
from nslab.lab.topology import load_text

FILE = """\
name: subst
groups:
  peers: {members: [a, b]}
nodes:
  a:
    env: {ROLE: "${node}"}
    services:
      - {name: web, cmd: "serve --me ${node} --peer ${addr:b}", env: {PEERS: "${group:peers:,}"}}
  b:
    services:
      - {name: web, cmd: [serve, "${lab}", "$${HOME}"]}
links:
  - [a, b]
"""


def test_cmd_string_list_and_env_are_expanded() -> None:
    topo = load_text(FILE, "t.yaml")
    plan = make_plan(topo)
    b_addr = plan.first_address("b", 4)
    assert b_addr is not None
    argv, env = expand_service(plan, topo, "a", topo.nodes["a"].services[0])
    assert argv == ["/bin/sh", "-c", f"serve --me a --peer {b_addr}"]
    assert env == {"PEERS": "a,b"}
    argv, env = expand_service(plan, topo, "b", topo.nodes["b"].services[0])
    assert argv == ["serve", "subst", "${HOME}"] and env == {}


def test_an_unknown_name_is_refused_with_its_line_and_field() -> None:
    text = FILE.replace('"${lab}"', '"${nope}"')
    topo = load_text(text, "t.yaml")
    plan = make_plan(topo)
    with pytest.raises(UsageError) as info:
        expand_service(plan, topo, "b", topo.nodes["b"].services[0])
    line = next(i for i, t in enumerate(textwrap.dedent(text).splitlines(), 1) if "${nope}" in t)
    assert f"t.yaml:{line}: nodes.b.services[0].cmd[1]: unknown variable ${{nope}}" in str(info.value)


def test_services_files_and_private_are_inherited_from_groups_defaults_and_replicas() -> None:
    topo = load_text(textwrap.dedent("""\
        name: g
        groups:
          db: {members: [a, b], services: [{name: s, cmd: "echo ${node}"}], private: [/run]}
        defaults:
          files: {/etc/x.conf: hi}
        nodes:
          a: {}
          b: {services: [{name: own, cmd: [sleep, "1"]}]}
          c: {count: 2, services: [{name: t, cmd: [sleep, "1"]}]}
        links: [[a, b], [b, c]]
        """), "t.yaml")
    got = {n.name: ([s.name for s in n.services], n.private, n.files) for n in topo.nodes.values()}
    files = {"/etc/x.conf": "hi"}
    assert got == {"a": (["s"], ["/run"], files), "b": (["s", "own"], ["/run"], files),
                   "c1": (["t"], [], files), "c2": (["t"], [], files)}
    plan = make_plan(topo)
    assert expand_service(plan, topo, "b", topo.nodes["b"].services[0])[0] == ["/bin/sh", "-c", "echo b"]
