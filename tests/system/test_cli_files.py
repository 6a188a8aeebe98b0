"""Shell completions and the man page: generated from the parser at build time (build_cli_files.py), installed
with the package, and costing the CLI nothing at run time. No root needed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, REPO)
# the build hook lives at the top of the repository, not in the package
import build_cli_files

SHARE = Path(sys.prefix, "share")
INSTALLED = {"bash": SHARE / "bash-completion/completions/nslab", "zsh": SHARE / "zsh/site-functions/_nslab",
             "fish": SHARE / "fish/vendor_completions.d/nslab.fish", "man": SHARE / "man/man1/nslab.1"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("cli-files")
    paths = [Path(p) for p in build_cli_files.generate(str(out))]
    return {"bash": paths[0], "zsh": paths[1], "fish": paths[2], "man": paths[3]}


def _bash_complete(script: Path, line: str) -> list[str]:
    """COMPREPLY of the completion function SCRIPT registers for nslab, at the end of LINE (as bash calls it)."""
    words = line.split(" ")
    prog = f"""
source {script}
fn=$(complete -p nslab | sed -E 's/.* -F ([^ ]+) .*/\\1/')
COMP_WORDS=({" ".join(repr(w) if w else "''" for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE={line!r}
COMP_POINT={len(line)}
"$fn" nslab {words[-1] or "''"} {words[-2]}
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    res = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return [w for w in res.stdout.split("\n") if w]


@pytest.mark.parametrize(("line", "want"), [
    ("nslab li", ["link"]), ("nslab la", ["lab"]), ("nslab ne", ["neigh"]), ("nslab link sh", ["show"]),
])
def test_generated_bash_completion(generated: dict[str, Path], line: str, want: list[str]) -> None:
    assert _bash_complete(generated["bash"], line) == want


def test_generated_bash_completion_lists_verbs_and_options(generated: dict[str, Path]) -> None:
    verbs = _bash_complete(generated["bash"], "nslab link ")
    assert {"show", "set", "add", "del"} <= set(verbs)
    assert {"-s", "--stats", "-br", "--brief"} <= set(_bash_complete(generated["bash"], "nslab link show -"))


def test_installed_completion_and_man_page() -> None:
    """What the package installed (bootstrap's pip install): every file there, and the bash one works."""
    missing = [str(p) for p in INSTALLED.values() if not p.is_file()]
    assert not missing, f"not installed (run ./scripts/bootstrap.sh --dev again): {missing}"
    assert _bash_complete(INSTALLED["bash"], "nslab li") == ["link"]


def _render(page: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": "0", "LC_ALL": "C.UTF-8"}
    return subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("which", ["generated", "installed"])
def test_man_page_renders_without_warnings(generated: dict[str, Path], which: str) -> None:
    page = generated["man"] if which == "generated" else INSTALLED["man"]
    res = _render(page)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    shown = re.sub(".\x08", "", res.stdout)  # man's bold and underline are overstrikes
    for text in ("NSLAB(1)", "nslab link", "nslab neigh", "-s, --stats", "nslab 0.1.0"):
        assert text in shown, text
    groff = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True)
    assert groff.returncode == 0 and groff.stderr == "", groff.stderr


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shells_parse_their_completion(generated: dict[str, Path], shell: str) -> None:
    text = generated[shell].read_text()
    assert "nslab" in text and "link" in text and "neigh" in text
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed here: only the content was checked, not its syntax")
    res = subprocess.run([exe, "-n", str(generated[shell])], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr


def test_no_runtime_cost() -> None:
    """Neither generator is imported when the CLI runs (only by the build)."""
    code = ("import sys; from nslab.cli.main import build_parser; build_parser().parse_args(['link', 'show']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('shtab', 'argparse_manpage', "
            "'build_cli_files')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "[]", res
    assert "shtab" not in Path(REPO, "nslab", "cli", "main.py").read_text()
