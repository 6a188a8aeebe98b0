"""How soon a service's first printed line reaches its log: stdout a file (what nslab.services does), the same
with PYTHONUNBUFFERED=1 (nslab's default for services), and a pty whose master a thread copies into the file
(the alternative not taken: the log would need the starting process alive). Python and perl, each printing
one line and then sleeping 3 s, so a buffered line shows only at exit (~3 s).

    python bench/bench_service_log.py [--runs N]

No root, no namespace, no kernel object: plain child processes writing into temporary files.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from _common import machine_info, median, parser, table

PYTHON = [sys.executable, "-c", "import time; print('first'); time.sleep(3)"]
PERL = ["perl", "-e", 'print "first\\n"; sleep 3']


def _seen(path: str, t0: float, timeout: float = 6.0) -> float | None:
    while time.monotonic() - t0 < timeout:
        with open(path, "rb") as f:
            if b"first" in f.read():
                return time.monotonic() - t0
        time.sleep(0.002)
    return None


def to_file(argv: list[str], env: dict[str, str]) -> float | None:
    with tempfile.NamedTemporaryFile() as log, open(log.name, "ab") as out:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        got = _seen(log.name, t0)
        p.kill()
        p.wait()
        return got


def through_pty(argv: list[str], env: dict[str, str]) -> float | None:
    with tempfile.NamedTemporaryFile() as log, open(log.name, "ab", buffering=0) as out:
        master, slave = pty.openpty()
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=slave, stderr=slave, env=env)
        os.close(slave)

        def copy() -> None:
            while True:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    return
                if not data:
                    return
                out.write(data)

        th = threading.Thread(target=copy, daemon=True)
        th.start()
        got = _seen(log.name, t0)
        p.kill()
        p.wait()
        os.close(master)
        th.join(5)
        return got


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    print(machine_info())
    base = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    unbuffered = {**base, "PYTHONUNBUFFERED": "1"}
    ways: list[tuple[str, Callable[[list[str], dict[str, str]], float | None], dict[str, str]]] = [
        ("file", to_file, base), ("file, PYTHONUNBUFFERED=1", to_file, unbuffered), ("pty", through_pty, base)]
    rows = []
    for prog, argv in (("python", PYTHON), ("perl", PERL)):
        for label, way, env in ways:
            times = [way(argv, env) for _ in range(args.runs)]
            ok = [t for t in times if t is not None]
            rows.append([prog, label, f"{len(ok)}/{args.runs}", f"{median(ok) * 1000:.0f}" if ok else "-"])
    print(table(["program", "stdout", "seen", "median ms to the log"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
