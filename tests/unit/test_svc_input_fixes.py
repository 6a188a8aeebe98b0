"""Bad service/file input a hostile user tried: a FIFO as `file:` (refused without blocking), a refused file
path named by its own field, a service env name the node's env would refuse."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from nslab.errors import UsageError
from nslab.lab import nodeview as nv
from nslab.lab.loader import parse_file, parse_text


def _with(node_yaml: str) -> str:
    return "name: sys\nnodes:\n  h1:\n" + "".join(f"    {line}\n" for line in node_yaml.splitlines()) + \
        "  h2: {}\nlinks:\n  - [h1, h2]\n"


def _alarm(signum: int, frame: object) -> None:
    raise TimeoutError("parse_file blocked on the FIFO")


@pytest.mark.parametrize("what", ["fifo", "dir"])
def test_a_file_that_is_not_regular_is_refused_without_blocking(tmp_path: Path, what: str) -> None:
    (tmp_path / "keys").mkdir()
    special = tmp_path / "keys" / "special"
    if what == "fifo":
        os.mkfifo(special)
    else:
        special.mkdir()
    topo = tmp_path / "lab.yaml"
    topo.write_text(_with("files: {/opt/x.conf: {file: keys/special}}"))
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    try:
        with pytest.raises(UsageError) as exc:
            parse_file(topo)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert exc.value.exit_code == 2
    assert f"{topo}:4: nodes.h1.files./opt/x.conf.file: 'keys/special' is not a regular file" in exc.value.message


def test_plan_node_names_the_field_of_a_refused_path() -> None:
    with pytest.raises(nv.PathError) as exc:
        nv.plan_node("l", "h1", None, [], {"/var/run/evil": "x"},
                     exists=lambda p: p in ("/var", "/var/run"), is_symlink=lambda p: p == "/var/run")
    assert exc.value.field == "files./var/run/evil"
    with pytest.raises(nv.PathError) as exc:
        nv.plan_node("l", "h1", None, ["/tmp", "/var/run/x"], {},
                     exists=lambda p: p in ("/tmp", "/var", "/var/run"), is_symlink=lambda p: p == "/var/run")
    assert exc.value.field == "private[1]"


@pytest.mark.parametrize("name", ["BAD-NAME", "1X", "A B"])
def test_service_env_names_follow_the_node_env_rule(name: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_text(_with(f"services:\n  - {{name: a, cmd: x, env: {{'{name}': 1}}}}"), "bad.yaml")
    assert exc.value.exit_code == 2
    assert "nodes.h1.services[0].env" in exc.value.message
    assert f"invalid environment variable name {name!r}" in exc.value.message
    ok = parse_text(_with("services:\n  - {name: a, cmd: x, env: {_OK_1: 1}}"), "ok.yaml")
    assert ok.nodes["h1"].services[0].env == {"_OK_1": "1"}


@pytest.mark.skipif(not os.path.islink("/var/run"), reason="/var/run is not a symbolic link here")
def test_prepare_names_the_file_field(tmp_path: Path) -> None:
    from nslab.lab.plan import make_plan
    from nslab.lab.system import prepare
    from nslab.lab.topology import load_text

    topo = load_text(_with("files: {/var/run/evil: x}"), "t.yaml")
    with pytest.raises(UsageError) as exc:
        prepare(make_plan(topo), topo)
    assert exc.value.exit_code == 2
    assert "t.yaml:4: nodes.h1.files./var/run/evil: /var/run is a symbolic link" in exc.value.message
