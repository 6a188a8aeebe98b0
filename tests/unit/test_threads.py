"""Every thread nslab starts comes from nslab.threads, which blocks SIGINT and SIGTERM from its first
instruction: the static check over nslab's source, and the mask of a thread and an executor worker.
The whole-feature run (namespaces, a lab, reach, capture, ...) is in tests/kernel/test_threads.py."""

from __future__ import annotations

import ast
import signal
import sys
import threading
from pathlib import Path

from conftest import REPO

from nslab import threads

# What starts a thread without nslab.threads: threading.Thread called or subclassed, the executors of
# concurrent.futures and multiprocessing, _thread.start_new_thread.
FORBIDDEN = {"ThreadPoolExecutor", "ProcessPoolExecutor", "start_new_thread", "start_new", "Timer", "ThreadPool"}


def _thread_starts(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call | ast.ClassDef):
            targets = [node.func] if isinstance(node, ast.Call) else node.bases
            for t in targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "threading" \
                        and t.attr in ("Thread", "Timer"):
                    lines.append(node.lineno)
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                                                   else [])
            names = [a.name for a in node.names]
            if any(m in ("multiprocessing", "multiprocessing.pool") for m in mods) or \
                    any(n in FORBIDDEN for n in names):
                lines.append(node.lineno)
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN:
            lines.append(node.lineno)
    return sorted(set(lines))


def test_no_thread_is_started_outside_nslab_threads() -> None:
    offenders = []
    for path in sorted(Path(REPO, "nslab").rglob("*.py")):
        if path.name == "threads.py":
            continue
        text = path.read_text()
        for n in _thread_starts(ast.parse(text)):
            offenders.append(f"{path.relative_to(REPO)}:{n}: {text.splitlines()[n - 1].strip()}")
    assert offenders == [], "threads must come from nslab.threads (Thread, start, Executor):\n" + "\n".join(offenders)


def test_the_static_check_finds_thread_starts() -> None:
    bad = ("import threading\nthreading.Thread(target=print).start()\n"
           "class T(threading.Thread): pass\n"
           "from concurrent.futures import ThreadPoolExecutor\nimport _thread\n_thread.start_new_thread(f, ())\n")
    assert _thread_starts(ast.parse(bad)) == [2, 3, 4, 6]
    fine = "import threading\nx: threading.Thread | None = None\nthreading.Event()\n"
    assert _thread_starts(ast.parse(fine)) == []


def _mask_at_first_call(start: object) -> tuple[bool, bool]:
    """(blocked at the thread's first Python call, blocked in its body) for a thread started by START."""
    seen: dict[str, bool] = {}

    def hook(frame: object, event: str, arg: object) -> None:
        if "first" not in seen and threading.current_thread().name.startswith("probe-me"):
            seen["first"] = {signal.SIGINT, signal.SIGTERM} <= signal.pthread_sigmask(signal.SIG_BLOCK, [])
            sys.setprofile(None)

    def body() -> None:
        seen["body"] = {signal.SIGINT, signal.SIGTERM} <= signal.pthread_sigmask(signal.SIG_BLOCK, [])

    threading.setprofile(hook)
    try:
        assert callable(start)
        start(body)
    finally:
        threading.setprofile(None)
    return seen["first"], seen["body"]


def test_thread_start_and_executor_block_from_the_first_instruction() -> None:
    def via_thread(body: object) -> None:
        t = threads.Thread(target=body, name="probe-me")  # type: ignore[arg-type]
        t.start()
        t.join()

    def via_start(body: object) -> None:
        threads.start(body, "probe-me", daemon=False).join()  # type: ignore[arg-type]

    def via_executor(body: object) -> None:
        with threads.Executor(1, thread_name_prefix="probe-me") as ex:
            ex.submit(body).result()  # type: ignore[arg-type]

    assert _mask_at_first_call(via_thread) == (True, True)
    assert _mask_at_first_call(via_start) == (True, True)
    assert _mask_at_first_call(via_executor) == (True, True)
    # The starter's own mask is untouched.
    assert not {signal.SIGINT, signal.SIGTERM} & signal.pthread_sigmask(signal.SIG_BLOCK, [])


