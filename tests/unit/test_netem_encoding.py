"""nslab's netem encoder against iproute2's own bytes: tests/unit/data/tc_netem_options.json holds what
`tc qdisc add ... netem ARGS` (iproute2 6.1) sent to the kernel, recorded by tests/unit/record_tc_netem.py.
Pure: no root, no kernel."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from nslab import netem
from nslab.kernel import netem as codec
from nslab.kernel.netlink import parse_attrs
from nslab.units import parse_percent, parse_time

DATA = json.loads((Path(__file__).parent / "data" / "tc_netem_options.json").read_text())


def from_tc(args: list[str]) -> netem.Netem:
    """tc-netem(8)'s words -> the Netem they mean (the test's own reading of the man page)."""
    kw: dict[str, object] = {}
    i = 0

    def number(j: int) -> bool:
        return j < len(args) and (args[j][0].isdigit() or args[j][0] == ".")

    while i < len(args):
        word = args[i]
        if word == "limit":
            kw["limit"] = int(args[i + 1])
            i += 2
        elif word == "delay":
            kw["delay"] = parse_time(args[i + 1], "delay", 0, 1e6)
            i += 2
            if number(i):
                kw["jitter"] = parse_time(args[i], "jitter", 0, 1e6)
                i += 1
                if number(i):
                    kw["delay_correlation"] = parse_percent(args[i])
                    i += 1
        elif word == "distribution":
            kw["distribution"] = args[i + 1]
            i += 2
        elif word == "loss" and args[i + 1] in ("gemodel", "state"):
            j = i + 2
            while number(j):
                j += 1
            kw["loss_model"] = " ".join(args[i + 1:j])
            i = j
        elif word in ("loss", "duplicate", "corrupt", "reorder"):
            kw[word] = parse_percent(args[i + 1])
            i += 2
            if number(i):
                kw[f"{word}_correlation"] = parse_percent(args[i])
                i += 1
        elif word == "gap":
            kw["gap"] = int(args[i + 1])
            i += 2
        elif word == "rate":
            from nslab.units import parse_rate

            kw["rate"] = parse_rate(args[i + 1], (1, 10**13))
            i += 2
        else:
            raise AssertionError(f"the test does not read {word!r}")
    return netem.Netem(**kw)  # type: ignore[arg-type]


def table(name: str) -> list[int] | None:
    return netem.load_table(name)


@pytest.mark.parametrize("case", sorted(DATA["cases"]))
def test_options_are_tcs_bytes(case: str) -> None:
    q = from_tc(case.split())
    assert codec.options(q, table(q.distribution)).hex() == DATA["cases"][case], case


def test_canonical_tc_words_round_trip() -> None:
    # The words nslab shows for a qdisc (lab status) mean the same qdisc to tc.
    for case in DATA["cases"]:
        q = from_tc(case.split())
        assert from_tc(q.tc_args()) == q, case


def test_complete_options_say_every_value() -> None:
    # A change in place must reset what an absent attribute would keep: correlations, reorder, corrupt.
    q = netem.Netem(delay=0.05)
    body = codec.options(q, complete=True)
    latency, limit, loss, gap, dup, jitter = struct.unpack_from("=6I", body)
    assert (latency, limit, loss, gap, dup, jitter) == (781250, 1000, 0, 0, 0, 0)
    attrs = parse_attrs(body, 24)
    assert attrs[codec.CORR] == bytes(12) and attrs[codec.REORDER] == bytes(8) and attrs[codec.CORRUPT] == bytes(8)
    assert codec.options(q) == body[:24]


def test_large_delay_goes_in_latency64() -> None:
    # 10 s fits tc_netem_qopt's 32-bit ticks; more than 2^32 ticks (~275 s) needs TCA_NETEM_LATENCY64.
    body = codec.options(netem.Netem(delay=300.0))
    assert struct.unpack_from("=I", body)[0] == codec.U32
    assert struct.unpack("=q", parse_attrs(body, 24)[codec.LATENCY64]) == (300 * 10**9,)


def test_tables_are_iproute2s() -> None:
    for name in ("normal", "pareto", "paretonormal"):
        t = netem.load_table(name)
        assert t is not None and len(t) == 4096 and min(t) >= -32768 and max(t) <= 32767
    assert netem.load_table("uniform") is None
