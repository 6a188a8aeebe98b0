"""The node keys files, private and services (nslab.lab.svcspec), the mounts of a view (nodeview.plan_node) and
the hosts files: pure, no root. Bad input of every class is refused with exit 2 naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from nslab.errors import UsageError
from nslab.lab import nodeview as nv
from nslab.lab import svcspec
from nslab.lab.loader import json_schema, parse_file, parse_text
from nslab.lab.plan import make_plan
from nslab.lab.svcspec import start_order

GOOD = """\
name: sys
nodes:
  h1:
    private: [/run, /var/lib/app]
    files:
      /etc/app.conf: "x = 1\\n"
    services:
      - name: db
        cmd: [sleep, "100"]
        ready: {tcp: 5432}
        timeout: 2.5
        restart: on-failure
      - name: web
        cmd: "exec sleep 100"
        env: {MODE: prod}
        cwd: /var/lib/app
        ready: {log: "listening on [0-9]+"}
        after: [db]
  h2:
    services:
      - name: client
        cmd: [sleep, "100"]
        ready: {cmd: "test -e /tmp"}
        after: [h1/web]
      - name: dns
        cmd: [sleep, "100"]
        ready: {udp: 53}
links:
  - [h1, h2]
"""


def test_good_file_parses_every_key() -> None:
    t = parse_text(GOOD, "sys.yaml")
    h1, h2 = t.nodes["h1"], t.nodes["h2"]
    assert h1.private == ["/run", "/var/lib/app"]
    assert h1.files == {"/etc/app.conf": "x = 1\n"}
    db, web = h1.services
    assert (db.name, db.cmd, db.ready, db.timeout, db.restart) == ("db", ["sleep", "100"], {"tcp": 5432}, 2.5,
                                                                    "on-failure")
    assert web.argv == ["/bin/sh", "-c", "exec sleep 100"] and web.env == {"MODE": "prod"}
    assert web.after == ["h1/db"] and web.ready == {"log": "listening on [0-9]+"} and web.cwd == "/var/lib/app"
    assert h2.services[0].after == ["h1/web"] and h2.services[1].ready == {"udp": 53}
    assert [(n, s.name) for n, s in start_order(t.nodes)] == [("h1", "db"), ("h1", "web"), ("h2", "client"),
                                                              ("h2", "dns")]


def test_schema_lists_the_new_keys() -> None:
    node = next(o for o in json_schema()["properties"]["nodes"]["additionalProperties"]["oneOf"]
                if o.get("type") == "object")
    assert {"files", "private", "services"} <= set(node["properties"])
    svc = json_schema()["$defs"]["service"]["properties"]
    assert tuple(svc) == svcspec.SERVICE_KEYS == ("name", "cmd", "env", "cwd", "ready", "timeout", "restart",
                                                  "after")
    assert svcspec.READY_KINDS == ("tcp", "udp", "cmd", "log") and svcspec.RESTART == ("no", "on-failure")
    assert set(svcspec.ServiceSpec("a", ["b"]).to_data()) == set(svcspec.SERVICE_KEYS)


def _bad(text: str, source: str = "bad.yaml") -> str:
    with pytest.raises(UsageError) as exc:
        parse_text(text, source)
    assert exc.value.exit_code == 2
    return exc.value.message


def _with(node_yaml: str) -> str:
    return "name: sys\nnodes:\n  h1:\n" + "".join(f"    {line}\n" for line in node_yaml.splitlines()) + \
        "  h2: {}\nlinks:\n  - [h1, h2]\n"


@pytest.mark.parametrize(("node_yaml", "line", "field", "what"), [
    ("services:\n  - {name: a, cmd: [x], colour: red}", 5, "nodes.h1.services[0].colour", "unknown key"),
    ("services:\n  - {name: a}", 5, "nodes.h1.services[0]", "missing required key 'cmd'"),
    ("services:\n  - {name: a, cmd: []}", 5, "nodes.h1.services[0].cmd", "expected a command"),
    ("services:\n  - {name: -a, cmd: [x]}", 5, "nodes.h1.services[0].name", "not valid"),
    ("services:\n  - {name: a, cmd: [x]}\n  - {name: a, cmd: [y]}", 6, "nodes.h1.services[1].name", "duplicate"),
    ("services:\n  - {name: a, cmd: [x], after: [nope]}", 5, "nodes.h1.services[0].after[0]",
     "no service 'h1/nope'"),
    ("services:\n  - {name: a, cmd: [x], after: [h9/a]}", 5, "nodes.h1.services[0].after[0]", "no service"),
    ("services:\n  - {name: a, cmd: [x], after: [a]}", 5, "nodes.h1.services[0].after[0]", "waits for itself"),
    ("services:\n  - {name: a, cmd: [x], after: [b]}\n  - {name: b, cmd: [x], after: [a]}", 6,
     "nodes.h1.services[1].after", "a cycle in after: h1/a -> h1/b -> h1/a"),
    ("services:\n  - {name: a, cmd: [x], ready: {tcp: 0}}", 5, "nodes.h1.services[0].ready.tcp", "out of range"),
    ("services:\n  - {name: a, cmd: [x], ready: {tcp: 80, udp: 53}}", 5, "nodes.h1.services[0].ready",
     "exactly one"),
    ("services:\n  - {name: a, cmd: [x], ready: {http: 80}}", 5, "nodes.h1.services[0].ready.http", "unknown key"),
    ("services:\n  - {name: a, cmd: [x], ready: {log: '(unclosed'}}", 5, "nodes.h1.services[0].ready.log",
     "not a valid regular expression"),
    ("services:\n  - {name: a, cmd: [x], ready: 8080}", 5, "nodes.h1.services[0].ready", "must be a mapping"),
    ("services:\n  - {name: a, cmd: [x], timeout: 0}", 5, "nodes.h1.services[0].timeout", "timeout must be"),
    ("services:\n  - {name: a, cmd: [x], timeout: '5'}", 5, "nodes.h1.services[0].timeout", "timeout must be"),
    ("services:\n  - {name: a, cmd: [x], restart: always}", 5, "nodes.h1.services[0].restart", "restart must"),
    ("services: {a: b}", 4, "nodes.h1.services", "must be a list"),
    ("private: [run]", 4, "nodes.h1.private[0]", "not an absolute, normalised path"),
    ("private: [/var/../etc]", 4, "nodes.h1.private[0]", "not an absolute, normalised path"),
    ("private: [/run/]", 4, "nodes.h1.private[0]", "not an absolute, normalised path"),
    ("private: [/proc/x]", 4, "nodes.h1.private[0]", "under /proc"),
    ("private: [/etc]", 4, "nodes.h1.private[0]", "cannot be private"),
    ("private: [/run, /run]", 4, "nodes.h1.private[1]", "listed twice"),
    ("files: {/etc/hosts: x}", 4, "nodes.h1.files./etc/hosts", "written by nslab"),
    ("files: {/sys/x: x}", 4, "nodes.h1.files./sys/x", "under /sys"),
    ("files: {relative: x}", 4, "nodes.h1.files.relative", "not an absolute"),
    ("files: {/etc/x: {file: a, mode: 1}}", 4, "nodes.h1.files./etc/x.mode", "unknown key"),
    ("files: {/etc/x: {file: a}}", 4, "nodes.h1.files./etc/x.file", "needs a topology read from a file"),
])
def test_bad_input_names_file_line_and_field(node_yaml: str, line: int, field: str, what: str) -> None:
    text = _with(node_yaml)
    msg = _bad(text)
    assert msg.startswith(f"bad.yaml:{line}: {field}: "), msg
    assert what in msg, msg


def test_file_next_to_the_topology_is_read_and_escapes_are_refused(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.conf").write_text("from a file\n")
    (tmp_path.parent / "secret").write_text("outside\n")
    good = tmp_path / "lab.yaml"
    good.write_text(_with("files: {/etc/app.conf: {file: conf/app.conf}}"))
    assert parse_file(good).nodes["h1"].files == {"/etc/app.conf": "from a file\n"}
    for rel in ("../secret", "/etc/passwd", "conf/../../secret"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(_with(f"files: {{/etc/app.conf: {{file: '{rel}'}}}}"))
        with pytest.raises(UsageError) as exc:
            parse_file(bad)
        assert exc.value.exit_code == 2
        assert f"{bad}:4: nodes.h1.files./etc/app.conf.file: " in exc.value.message
        assert "outside the topology file's directory" in exc.value.message
    (tmp_path / "link").symlink_to(tmp_path.parent / "secret")
    bad.write_text(_with("files: {/etc/app.conf: {file: link}}"))
    with pytest.raises(UsageError, match="outside the topology file's directory"):
        parse_file(bad)


def test_plan_node_binds_existing_paths_and_overlays_missing_ones() -> None:
    host = {"/etc", "/etc/ssh", "/etc/ssh/sshd_config", "/var", "/var/lib", "/run", "/tmp", "/etc/hosts",
            "/etc/hostname"}
    got = nv.plan_node("lab", "h1", "HOSTS", ["/run", "/var/lib/app", "/tmp"],
                       {"/etc/ssh/sshd_config": "a", "/etc/new/x.conf": "b", "/etc/ssh/sub/y": "c",
                        "/run/app/z": "d"}, exists=host.__contains__, is_symlink=lambda p: False)
    base = "/run/nslab/labs/lab/nodes/h1"
    kinds = [(m.kind, m.target) for m in got.mounts]
    # One overlay per missing tree: /etc (covers /etc/new and /etc/ssh/sub), /var/lib (for /var/lib/app).
    assert kinds[:2] == [("overlay", "/etc"), ("overlay", "/var/lib")]
    assert ("bind", "/run") in kinds and ("bind", "/var/lib/app") in kinds and ("bind", "/tmp") in kinds
    assert kinds.index(("bind", "/run")) < kinds.index(("bind", "/var/lib/app"))  # shallow first
    assert ("bind", "/etc/ssh/sshd_config") in kinds and ("bind", "/etc/hosts") in kinds
    writes = {p: (t, m) for p, t, m in got.writes}
    assert writes[f"{base}/upper/etc/new/x.conf"] == ("b", 0o644)
    assert writes[f"{base}/upper/etc/ssh/sub/y"] == ("c", 0o644)
    assert writes[f"{base}/fs/run/app/z"] == ("d", 0o644)  # under a private dir: written into it
    assert writes[f"{base}/upper/var/lib/app"] == (None, 0o755)  # the missing mountpoint, in the overlay
    assert writes[f"{base}/fs/tmp"] == (None, 0o1777)
    assert writes[f"{base}/etc/hosts"] == ("HOSTS", 0o644)
    shared = nv.plan_node("lab", "h2", None, [], {}, exists=host.__contains__, is_symlink=lambda p: False,
                          hosts_src="/run/nslab/labs/lab/hosts/0")
    assert ("bind", "/run/nslab/labs/lab/hosts/0", "/etc/hosts") in [(m.kind, m.source, m.target)
                                                                     for m in shared.mounts]
    assert not any(p.endswith("/etc/hosts") for p, _, _ in shared.writes)
    assert all(p.startswith(nv.LABS_DIR + "/") for p in writes)  # nothing is written on the host's own paths


def test_plan_node_refuses_symlinks_and_missing_top_dirs() -> None:
    host = {"/etc", "/var", "/var/run"}
    with pytest.raises(ValueError, match="symbolic link"):
        nv.plan_node("lab", "h1", "", ["/var/run"], {}, exists=host.__contains__,
                     is_symlink=lambda p: p == "/var/run")
    with pytest.raises(ValueError, match="does not exist"):
        nv.plan_node("lab", "h1", "", ["/nonexistent/dir"], {}, exists=host.__contains__,
                     is_symlink=lambda p: False)
    with pytest.raises(ValueError, match="outside"):
        nv.write_all([("/etc/passwd", "x", 0o644)])


def test_hosts_files_prefer_the_shared_segment() -> None:
    t = parse_text("name: hx\nnodes:\n  h1: {}\n  h2: {}\n  r1: {kind: router}\n  r2: {kind: router}\n"
                   "links:\n  - [h1, r1]\n  - [r1, r2]\n  - [r2, h2]\n", "hx.yaml")
    plan = make_plan(t)
    hosts = nv.hosts_files(plan)

    def entries(node: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for line in hosts[node].splitlines():
            ip, name = line.split("\t")
            out.setdefault(name.split()[0], []).append(ip)
        return out

    h1 = entries("h1")
    # r1 shares h1's link: its address there; r2 shares none with h1: its first address.
    h1_r1 = next(lk for lk in plan.links if {lk.a.node, lk.b.node} == {"h1", "r1"})
    r1_end = h1_r1.a if h1_r1.a.node == "r1" else h1_r1.b
    assert h1["r1"] == [a.split("/")[0] for a in r1_end.addresses]
    assert h1["r2"][0] == plan.addresses_of("r2")[0].split("/")[0]
    assert h1["h2"][0] == plan.primary_ipv4("h2")
    assert set(entries("h2")) >= {"h1", "h2", "r1", "r2", "localhost"}
