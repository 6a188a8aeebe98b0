"""`${...}` in a node's `files:` text (inline and `{file: ...}`): expanded as its env is, an unknown name refused
with exit 2 naming nodes.NODE.files.PATH (by `prepare`, and by `lab validate` without the kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nslab.cli.main import main
from nslab.errors import UsageError
from nslab.lab.plan import make_plan
from nslab.lab.system import check_subst, expand_files
from nslab.lab.topology import load_file

FILE = """\
name: fsub
nodes:
  a:
    files:
      /etc/app.conf: "me=${node} lab=${lab} peer=${addr:b} lit=$${HOME}\\n"
      /etc/b.conf: {file: b.tmpl}
  b: {}
links:
  - [a, b]
"""


def test_inline_and_file_text_are_expanded(tmp_path: Path) -> None:
    (tmp_path / "b.tmpl").write_text("node ${node} of ${lab}\n")
    (tmp_path / "lab.yaml").write_text(FILE)
    topo = load_file(str(tmp_path / "lab.yaml"))
    plan = make_plan(topo)
    b = plan.first_address("b", 4)
    files = expand_files(plan, topo, "a")
    assert files["/etc/app.conf"] == f"me=a lab=fsub peer={b} lit=${{HOME}}\n"
    assert files["/etc/b.conf"] == "node a of fsub\n"
    check_subst(plan, topo)


@pytest.mark.parametrize("where", ["inline", "file"])
def test_an_unknown_name_is_exit_2_naming_the_field(tmp_path: Path, where: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b.tmpl").write_text("x=${nosuch}\n" if where == "file" else "fine\n")
    text = FILE.replace("peer=${addr:b}", "peer=${nosuch}") if where == "inline" else FILE
    (tmp_path / "lab.yaml").write_text(text)
    topo = load_file(str(tmp_path / "lab.yaml"))
    field = "nodes.a.files./etc/app.conf" if where == "inline" else "nodes.a.files./etc/b.conf"
    with pytest.raises(UsageError) as exc:
        check_subst(make_plan(topo), topo)
    assert exc.value.exit_code == 2 and f"{field}: " in exc.value.message, exc.value.message
    assert main(["lab", "validate", str(tmp_path / "lab.yaml")]) == 2  # validate reports it too
    assert field in capsys.readouterr().err
