"""The netlink encoding of one netem qdisc's options (nslab.netem.Netem), byte for byte as iproute2's `tc ... netem`
(tests/unit/data/tc_netem_options.json holds tc's own bytes).

The payload is `struct tc_netem_qopt` followed by attributes (not a nested attribute: the kernel reads it
with nla_parse_nested_compat). Times go in psched ticks (64 ns, /proc/net/psched), probabilities as
fractions of 2^32 - 1, rounded as tc rounds them (round half to even of P/100 * (2^32 - 1)).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ..netem import Netem
from .netlink import NLA_F_NESTED, attr

TICK_NS = 64  # psched tick (PSCHED_SHIFT 6): tc_netem_qopt.latency/jitter are in these
U32 = 0xFFFFFFFF

# TCA_NETEM_* attribute types (linux/pkt_sched.h)
CORR, DELAY_DIST, REORDER, CORRUPT, LOSS, RATE, ECN, RATE64, PAD, LATENCY64, JITTER64 = range(1, 12)
NETEM_LOSS_GI, NETEM_LOSS_GE = 1, 2
_QOPT = struct.Struct("=6I")  # latency, limit, loss, gap, duplicate, jitter


# ---- the encoding (pure) ----------------------------------------------------------------------------------
def prob(percent: float) -> int:
    """A percentage as netem's u32 probability (tc's rounding: half to even of P/100 * (2^32 - 1))."""
    return min(U32, round(percent / 100 * U32))


def ticks(secs: float) -> int:
    """Seconds -> psched ticks, as tc computes them (whole microseconds, then 15.625 ticks each, truncated)."""
    return min(U32, round(secs * 1e6) * 1000 // TICK_NS)


def _loss_model(model: str) -> bytes:
    kind, *words = model.split()
    p = [float(w.rstrip("%")) for w in words]
    if kind == "gemodel":  # tc: p, r (default 1-p), 1-h (default 100 %: stored as h = 0), 1-k (default 0)
        r = prob(p[1]) if len(p) > 1 else U32 - prob(p[0])
        h = U32 - prob(p[2]) if len(p) > 2 else 0
        k = prob(p[3]) if len(p) > 3 else 0
        return attr(LOSS | NLA_F_NESTED, attr(NETEM_LOSS_GE, struct.pack("=4I", prob(p[0]), r, h, k)))
    # state: given p13 p31 p32 p23 p14; stored p13 p31 p32 p14 p23; defaults p31 = 1-p13, p32 0, p23 100 %, p14 0
    p13 = prob(p[0])
    p31 = prob(p[1]) if len(p) > 1 else U32 - p13
    p32 = prob(p[2]) if len(p) > 2 else 0
    p23 = prob(p[3]) if len(p) > 3 else U32
    p14 = prob(p[4]) if len(p) > 4 else 0
    return attr(LOSS | NLA_F_NESTED, attr(NETEM_LOSS_GI, struct.pack("=5I", p13, p31, p32, p14, p23)))


def options(q: Netem, table: Sequence[int] | None = None, complete: bool = False) -> bytes:
    """The payload of TCA_OPTIONS for Q (with TABLE, the delay distribution, when not uniform).

    complete=False: byte for byte what `tc qdisc add ... netem` sends. complete=True adds the correlation,
    reorder and corrupt attributes even when zero: a change of an existing qdisc (NLM_F_REPLACE) keeps
    whatever an absent attribute set before, so a change must say every value."""
    lat, jit = ticks(q.delay), ticks(q.jitter)
    gap = q.gap or (1 if q.reorder else 0)  # tc: a reorder without a gap means gap 1
    out = _QOPT.pack(lat, q.limit, prob(q.loss), gap, prob(q.duplicate), jit)
    if round(q.delay * 1e9) // TICK_NS > U32:
        out += attr(LATENCY64, struct.pack("=q", round(q.delay * 1e9)))
    if q.delay_correlation or q.loss_correlation or q.reorder_correlation or q.corrupt_correlation or complete:
        out += attr(CORR, struct.pack("=3I", prob(q.delay_correlation), prob(q.loss_correlation), 0))
    if q.reorder or complete:
        out += attr(REORDER, struct.pack("=2I", prob(q.reorder), prob(q.reorder_correlation)))
    if q.corrupt or complete:
        out += attr(CORRUPT, struct.pack("=2I", prob(q.corrupt), prob(q.corrupt_correlation)))
    if q.loss_model:
        out += _loss_model(q.loss_model)
    if q.rate:
        byte_rate = q.rate // 8
        if byte_rate > U32:
            out += attr(RATE64, struct.pack("=Q", byte_rate))
        out += attr(RATE, struct.pack("=IiIi", min(byte_rate, U32), 0, 0, 0))
    if table is not None:
        out += attr(DELAY_DIST, struct.pack(f"={len(table)}h", *table))
    return out
