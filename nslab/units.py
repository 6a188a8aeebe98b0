"""Rates, times and percentages as every nslab command and topology file spells them (pure).

One grammar for all of them (docs/labs.md, "Units"); each caller gives only its range:

- rate: a number, then a unit (case-insensitive), then optionally "/s" after a bit unit:
    bits/s:  bit kbit mbit gbit tbit, kibit mibit gibit tibit        (tc's spelling)
             k m g t, kb mb gb tb, or no unit at all                   (iperf3's: 100M, 1.5g, 500k, 2000000)
    bytes/s: bps kbps mbps gbps tbps, kibps mibps gibps tibps         (tc's: 1mbps is 8 Mbit/s)
  A Python int or float is bits/s. Where the two tools read one spelling differently, nslab reads it one way
  everywhere: a bare number is bits/s (iperf3; tc would read bytes/s), "bps" is bytes/s (tc).
- time: a number of seconds, or a number with us, ms or s (100ms, 1.5s, 250us, 2);
  seconds: a plain decimal number of seconds, no unit (the "S" of --time, --period, --timeout).
- percentage: a number from 0 to 100, with or without "%", in steps of 0.01 (5%, 0.5, 100%).

Numbers are ASCII decimal digits with an optional fraction: no sign, exponent, "_", inf or nan.
Every error is a UsageError naming the value and the fix.
"""

from __future__ import annotations

import math
import re

from .errors import UsageError

__all__ = ["PACING_RATES", "SHAPING_RATES", "format_rate", "parse_percent", "parse_rate", "parse_seconds",
           "parse_time"]

SHAPING_RATES = (8_000, 10**12)  # a tbf (impair --rate, impair: rate): below 8 kbit/s two frames take seconds
PACING_RATES = (1_000, 100 * 10**9)  # perf's UDP sender

_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"
_RATE_RE = re.compile(rf"\s*{_NUMBER}\s*([a-zA-Z]*)(/s)?\s*")
_PREFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
             "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
# unit (lower case) -> (bits per unit, "/s" may follow)
_RATE_UNITS: dict[str, tuple[int, bool]] = {
    **{p + "bit": (m, True) for p, m in _PREFIXES.items()},
    **{p + "bps": (8 * m, False) for p, m in _PREFIXES.items()},
    **{p: (m, True) for p, m in _PREFIXES.items() if len(p) < 2},  # "" (bare), k, m, g, t
}
# "b" alone is bits in iperf3's "100Mb"; upper-case "MB" would be read as bytes by many: refused, not guessed.
_BIT_B = {p + "b": (m, True) for p, m in _PREFIXES.items() if len(p) < 2}
RATE_HINT = ("write a number and a unit: 10mbit, 100M, 1.5g or 500kbit (bits/s; a bare number is bits/s), "
             "or 1mbps (bytes/s, tc's spelling)")


def format_rate(bits: int) -> str:
    """bits/s in tc's spelling, exact: 10mbit, 1gbit, 1500kbit, 8001bit."""
    for unit, mult in (("tbit", 10**12), ("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if bits % mult == 0:
            return f"{bits // mult}{unit}"
    return f"{bits}bit"


def parse_rate(value: str | int | float, limits: tuple[int, int] = SHAPING_RATES, what: str = "rate") -> int:
    """A rate (see the module's grammar) -> bits per second, within LIMITS (inclusive)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = f"{value}bit"
        amount = float(value)
    else:
        text = str(value)
        m = _RATE_RE.fullmatch(text)
        unit = m.group(2) if m else ""
        known = _BIT_B.get(unit[:-1].lower() + "b") if unit.endswith("b") else _RATE_UNITS.get(unit.lower())
        if m is None or known is None or (m.group(3) and not known[1]):
            raise UsageError(f"invalid {what} {text!r}", RATE_HINT)
        amount = float(m.group(1)) * known[0]
    bits = int(amount) if math.isfinite(amount) else limits[1] + 1  # 400 digits: inf, which int() refuses
    lo, hi = limits
    if not lo <= bits <= hi:
        raise UsageError(f"invalid {what} {text!r}: outside {format_rate(lo)}-{format_rate(hi)}",
                         f"give a rate from {format_rate(lo)} to {format_rate(hi)}, e.g. '10mbit' or '100M'")
    return bits


_TIME_RE = re.compile(rf"\s*{_NUMBER}\s*(us|ms|s)?\s*", re.IGNORECASE)
_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "": 1.0}


def parse_time(value: str | float, what: str = "delay", lo: float = 0.0, hi: float = 3600.0) -> float:
    """'100ms', '1.5s', '250us', or a number of seconds -> seconds, within LO..HI."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        secs = float(value)
        text = f"{value}s"
    else:
        text = str(value)
        m = _TIME_RE.fullmatch(text)
        if not m:
            raise UsageError(f"invalid {what} {text!r}", "write a time such as '100ms', '1.5s' or '250us'")
        secs = float(m.group(1)) * _TIME_UNITS[(m.group(2) or "").lower()]
    if not math.isfinite(secs) or not lo <= secs <= hi:
        raise UsageError(f"invalid {what} {text!r}: outside {lo:g}-{hi:g} s", "e.g. '100ms'")
    return secs


_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def parse_seconds(value: str | float, what: str = "time", lo: float = 0.1, hi: float = 3600.0) -> float:
    """A plain number of seconds (12, 0.5), within LO..HI: the S of the command line's seconds options."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        secs = float(value)
    else:
        text = str(value)
        secs = float(text) if _DECIMAL.fullmatch(text) and len(text) <= 32 else math.nan
    if not (math.isfinite(secs) and lo <= secs <= hi):
        raise UsageError(f"invalid {what} {value!r}", f"give the {what} in seconds, from {lo:g} to {hi:g}")
    return secs


def parse_percent(value: str | float, what: str = "percentage") -> float:
    """'5%', '5', 0.5 -> percent (0..100, in steps of 0.01)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        text, p = str(value), float(value)
    else:
        text = str(value).strip()
        num = text[:-1].strip() if text.endswith("%") else text
        if not re.fullmatch("-?" + _NUMBER, num) or len(num) > 32:  # a sign only to say "outside 0-100"
            raise UsageError(f"invalid {what} {text!r}", "write a percentage from 0 to 100, e.g. '5%' or '0.5%'")
        p = float(num)
    if not math.isfinite(p) or not 0 <= p <= 100:
        raise UsageError(f"invalid {what} {text!r}: outside 0-100", "write a percentage from 0 to 100, e.g. '5%'")
    if abs(p * 100 - round(p * 100)) > 1e-6:
        raise UsageError(f"invalid {what} {text!r}: finer than 0.01 %", "round it to two decimals")
    return p
