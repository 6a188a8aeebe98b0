"""Built-in throughput's pure parts (issue 4, item 2): rates, seconds, -i/-P/-R parsing; the runs on real labs
are in tests/kernel/test_perf.py and test_perf_oracle.py (iperf3)."""

from __future__ import annotations

import pytest

from nslab.errors import UsageError
from nslab.perf import _Clock, parse_interval, parse_rate, parse_seconds, parse_streams


# ---- pure parts --------------------------------------------------------------------------------------------
def test_parse_rate_and_seconds() -> None:
    assert parse_rate("100M") == 100e6
    assert parse_rate("1G") == 1e9
    assert parse_rate("1.5g") == 1.5e9
    assert parse_rate("500k") == 500e3
    assert parse_rate("200Mbit") == 200e6
    assert parse_rate("2000000") == 2e6
    for bad in ("fast", "10X", "-1M", "0", "1T0"):
        with pytest.raises(UsageError, match="invalid rate"):
            parse_rate(bad)
    assert parse_seconds("2.5") == 2.5
    for bad in ("0", "-1", "soon", "99999"):
        with pytest.raises(UsageError, match="invalid time"):
            parse_seconds(bad)


def test_intervals_interval_streams_parse() -> None:
    # iperf3 3.12 cuts -t 2 -i 0.5 in 4 intervals and -t 1 -i 0.3 in 4 (0.3 0.6 0.9 1.0), measured on a lab
    assert _Clock(2.0, 0.5).boundaries() == [0.5, 1.0, 1.5, 2.0]
    assert _Clock(1.0, 0.3).boundaries() == pytest.approx([0.3, 0.6, 0.9, 1.0])
    assert _Clock(1.0, 0.33).boundaries() == pytest.approx([0.33, 0.66, 1.0])  # a 0.01 s rest joins the last
    assert _Clock(1.0, None).boundaries() == [1.0]
    assert _Clock(0.5, 1.0).boundaries() == [0.5]
    assert parse_interval("0.5") == 0.5 and parse_streams("4") == 4 and parse_streams(128) == 128
    for bad in ("0", "0.01", "61", "x"):
        with pytest.raises(UsageError, match="invalid interval"):
            parse_interval(bad)
    for bad_n in ("0", "129", "-1", "2.5", "x", "", "\u0663"):
        with pytest.raises(UsageError, match="invalid number of streams"):
            parse_streams(bad_n)


