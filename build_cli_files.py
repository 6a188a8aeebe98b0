"""Shell completions (bash, zsh, fish) and the man page, generated from the CLI's own parser at build time.

setuptools runs this as its build_py step ([tool.setuptools.cmdclass] in pyproject.toml); the files land in
build/cli-files/ and the package installs them as data files (share/bash-completion, share/zsh,
share/fish, share/man). shtab and argparse-manpage are build requirements only: nothing here is imported
when nslab runs, so the CLI pays nothing for them.

    python build_cli_files.py [OUT_DIR]    # the same files by hand
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join("build", "cli-files")
# shell -> file name, where each shell's completion loader looks for it
COMPLETIONS = {"bash": "nslab", "zsh": "_nslab", "fish": "nslab.fish"}
MANPAGE = "nslab.1"


def generate(out_dir: str = OUT) -> list[str]:
    """Write the completions and the man page of the current parser into out_dir; their paths."""
    import shtab
    from argparse_manpage.manpage import Manpage

    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)  # the nslab of this source tree, not an installed one
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"  # argparse wraps help to the terminal: the same files on every machine
    try:
        from nslab import __version__
        from nslab.cli.main import build_parser

        os.makedirs(out_dir, exist_ok=True)
        written = []
        for shell, name in COMPLETIONS.items():
            written.append(_write(out_dir, name, shtab.complete(build_parser(), shell=shell)))
        page: Any = Manpage(build_parser())
        page.source = f"nslab {__version__}"
        page.manual = "nslab manual"
        page.description = "Linux network namespaces, virtual interfaces and labs of them"
        written.append(_write(out_dir, MANPAGE, str(page)))
        return written
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns


def _write(out_dir: str, name: str, text: str) -> str:
    path = os.path.join(out_dir, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")
    return path


class BuildPy(build_py):
    """build_py that first writes the completions and the man page the data files name."""

    def run(self) -> None:
        generate()
        super().run()


class EditableWheel(editable_wheel):
    """pip install -e: setuptools' editable wheel asks the distribution for `has_data`, which does not exist
    (it is has_data_files), so data files were never installed; here they are. run_command runs a command
    once, so where setuptools does install them this adds nothing."""

    def _run_install(self, category: str) -> None:
        super()._run_install(category)
        if category == "data" and self.distribution.has_data_files():
            self.run_command("install_data")


if __name__ == "__main__":
    for p in generate(sys.argv[1] if len(sys.argv) > 1 else OUT):
        print(p)
