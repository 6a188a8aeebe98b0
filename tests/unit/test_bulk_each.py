"""bulk._each, the parallel loop of namespace deletion: every name done once, each error at its place."""

from __future__ import annotations

import threading

import pytest

from nslab.errors import NotFoundError
from nslab.kernel import bulk


@pytest.mark.parametrize("count", [0, 1, 7, 31, 32, 33, 100, 1000])
def test_each_name_once_and_errors_in_place(count: int) -> None:
    seen: list[str] = []
    lock = threading.Lock()
    threads: set[str] = set()

    def fn(name: str) -> None:
        with lock:
            seen.append(name)
            threads.add(threading.current_thread().name)
        if name.endswith("3"):
            raise NotFoundError(f"{name} is gone", "")

    names = [f"n{i}" for i in range(count)]
    out = bulk._each(fn, names)
    assert sorted(seen) == sorted(names)
    assert [isinstance(e, NotFoundError) for e in out] == [n.endswith("3") for n in names]
    assert all(str(e).startswith(n) for n, e in zip(names, out, strict=True) if e is not None)
    if count >= 32:  # many names: on the worker threads, which block SIGINT/SIGTERM (nslab.threads)
        assert threading.current_thread().name not in threads
