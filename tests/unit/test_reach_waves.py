"""reach's waves: each fits the neighbour-table room it is given, whether pairs go both ways or one way."""

from __future__ import annotations

from typing import Any

import pytest

from nslab.reach import _Source, _waves


def _sources(pairs: list[tuple[str, str]]) -> dict[str, _Source]:
    by_src: dict[str, list[tuple[str, str]]] = {}
    for s, d in pairs:
        by_src.setdefault(s, []).append((d, f"addr-{d}"))
    sock: Any = None
    return {s: _Source(s, i, sock, t) for i, (s, t) in enumerate(by_src.items())}


def _entries(wave: list[tuple[_Source, int]]) -> int:
    """Neighbour entries a wave makes: one on each side of every pair of nodes it probes."""
    return 2 * len({frozenset((src.name, src.targets[q][0])) for src, q in wave})


@pytest.mark.parametrize("budget", [128, 685, 5000])
@pytest.mark.parametrize("shape", ["all pairs", "one source"])
def test_waves_fit_the_room_and_cover_every_pair_once(budget: int, shape: str) -> None:
    hosts = [f"h{i}" for i in range(1, 101 if shape == "all pairs" else 1001)]
    if shape == "all pairs":
        todo = [(s, d) for s in hosts for d in hosts if s != d]
    else:
        todo = [(hosts[0], d) for d in hosts[1:]]
    sources = _sources(todo)
    waves = _waves(todo, sources, budget)
    flat = [(src.name, src.targets[q][0]) for w in waves for src, q in w]
    assert sorted(flat) == sorted(todo)  # every pair, once
    assert all(0 < _entries(w) <= budget for w in waves)
    where = {p: i for i, w in enumerate(waves) for p in ((src.name, src.targets[q][0]) for src, q in w)}
    assert all(where[(s, d)] == where[(d, s)] for s, d in todo if (d, s) in where)  # both ways together
    # No wave smaller than it needs to be (all but the last are full to within one pair of nodes).
    assert all(_entries(w) > budget - 2 for w in waves[:-1])


def test_no_pairs_no_waves() -> None:
    assert _waves([], {}, 128) == []
