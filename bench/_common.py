"""Shared helpers for the bench/ scripts: machine info, timing, medians, tables, safe cleanup.

Scripts run as `python bench/NAME.py` from anywhere: importing this module puts the repository root
on sys.path so `import nslab` works without installing the package.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PREFIX = "nslabb-"  # every kernel object a bench creates is named with this prefix
NETNS_DIR = "/run/netns"

clock = time.perf_counter


def parser(doc: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0] if doc else None)
    p.add_argument("--quick", action="store_true", help="a short run (fewer rounds)")
    return p


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine_info() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ip = subprocess.run(["ip", "-V"], capture_output=True, text=True, check=False).stdout.strip()
    return (
        f"date {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; nproc {os.cpu_count()}; cpu {cpu}\n"
        f"kernel {platform.release()}; python {platform.python_version()}; {ip}; load {loadavg()}\n"
        f"before the run: {_count_netns()} named namespaces in {NETNS_DIR}, {_count_mounts()} mounts "
        "(ip -n / ip netns exec slow down as these grow)"
    )


def _count_netns() -> int:
    try:
        return len(os.listdir(NETNS_DIR))
    except OSError:
        return 0


def _count_mounts() -> int:
    try:
        with open("/proc/self/mountinfo") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        pairs = enumerate(zip(r, widths, strict=True))
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: Any) -> str:
    if isinstance(c, float):
        return f"{c:.3f}" if abs(c) < 100 else f"{c:.1f}"
    return str(c)


def sigterm_as_interrupt() -> None:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so `finally` blocks clean up."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def bench_netns_names() -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(PREFIX))
    except FileNotFoundError:
        return []


def delete_netns_exact(names: Sequence[str]) -> list[str]:
    """Delete the namespaces with exactly these names, if present; return the names that failed."""
    from nslab.kernel import netns

    failed = []
    for name in names:
        assert name.startswith(PREFIX), name
        if not os.path.lexists(os.path.join(NETNS_DIR, name)):
            continue
        try:
            netns.delete(name)
        except Exception as exc:
            print(f"cleanup: cannot delete namespace {name}: {exc}", file=sys.stderr)
            failed.append(name)
    return failed


def root_links_with_prefix() -> list[str]:
    try:
        return sorted(n for n in os.listdir("/sys/class/net") if n.startswith(PREFIX))
    except OSError:
        return []


def check_clean() -> bool:
    """Print whether anything named nslabb- remains (namespaces, root-namespace links)."""
    left = bench_netns_names() + root_links_with_prefix()
    if left:
        print(f"LEFTOVERS: {', '.join(left)}", file=sys.stderr)
        return False
    print(f"cleanup check: nothing named {PREFIX}* remains (namespaces, root links)")
    return True


def wait_until(cond: Callable[[], bool], timeout: float, step: float = 0.0005) -> bool:
    deadline = clock() + timeout
    while True:
        if cond():
            return True
        if clock() > deadline:
            return False
        time.sleep(step)
