"""nslab.units: one grammar of rates, times and percentages for every command and file (pure, no root)."""

from __future__ import annotations

import pytest
from kernel_guard import run_cli

from nslab import faults, perf, units
from nslab.errors import UsageError
from nslab.lab.topology import load_text

P2P = "name: u\nnodes: {a: {}, b: {}}\nlinks:\n  - endpoints: [a, b]\n"

# Spellings of one rate: tc's and iperf3's, case and spacing aside, all the same number of bits/s.
SAME = [
    (10**7, ["10mbit", "10Mbit", "10MBIT", "10m", "10M", "10Mb", "10mb", "10 mbit", "10mbit/s", "10M/s", "10000kbit",
             "10000k", "1.25mbps", "10000000", "10000000bit"]),
    (1_500_000_000, ["1.5gbit", "1.5g", "1.5G", "1500mbit", "1500M"]),
    (2**20, ["1mibit", "1Mibit", "1024kibit"]),
    (8 * 10**6, ["1mbps", "1MBps", "8mbit", "8M"]),
]


@pytest.mark.parametrize(("bits", "spellings"), SAME)
def test_every_spelling_is_read_alike_by_every_caller(bits: int, spellings: list[str]) -> None:
    for text in spellings:
        assert units.parse_rate(text, (1, 10**13)) == bits, text
        assert faults.parse_rate(text) == bits, text
        assert perf.parse_rate(text) == bits, text


@pytest.mark.parametrize("text", ["", "fast", "mbit", "-5mbit", "10 furlongs", "1e6bit", "1T0", "10X", "inf", "nan",
                                  "10MB", "10mB", "1mbps/s", "+5M", "1_000k", "١٠mbit", "10 m bit", "0x10M"])
def test_rates_refused_with_the_fix(text: str) -> None:
    with pytest.raises(UsageError, match="invalid rate") as info:
        units.parse_rate(text)
    assert info.value.hint and "10mbit" in info.value.hint and info.value.exit_code == 2


def test_each_caller_keeps_its_range() -> None:
    assert units.SHAPING_RATES == (8_000, 10**12) and units.PACING_RATES == (1_000, 100 * 10**9)
    for text in ("8kbit", "1tbit"):
        faults.parse_rate(text)
    for text in ("7999bit", "2tbit", "10", "0", "9" * 400 + "mbit"):
        with pytest.raises(UsageError, match="outside 8kbit-1tbit"):
            faults.parse_rate(text)
    assert perf.parse_rate("1k") == 1000 and perf.parse_rate("100G") == 100e9
    for text in ("999", "101G", "0"):
        with pytest.raises(UsageError, match="outside 1kbit-100gbit"):
            perf.parse_rate(text)
    assert units.parse_rate(2_000_000) == 2_000_000 and units.parse_rate(2.5e6) == 2_500_000  # Python: bits/s


def test_format_rate_reads_back() -> None:
    for bits in (8001, 1500, 10**7, 10**9, 1_500_000, 2**20):
        assert units.parse_rate(units.format_rate(bits), (1, 10**12)) == bits


@pytest.mark.parametrize(("text", "secs"), [("100ms", 0.1), ("1.5s", 1.5), ("250us", 0.00025), ("2", 2.0),
                                            ("100MS", 0.1), (" 3 s ", 3.0), (0.01, 0.01)])
def test_times(text: str | float, secs: float) -> None:
    assert units.parse_time(text) == pytest.approx(secs)


@pytest.mark.parametrize("text", ["fast", "-1ms", "10min", "1e9s", "5000s", "inf", "nan", "1_0ms", "٣ms", ""])
def test_times_refused(text: str) -> None:
    with pytest.raises(UsageError, match="invalid delay"):
        units.parse_time(text)


def test_seconds_are_plain_decimals() -> None:
    assert units.parse_seconds("2.5") == 2.5 and units.parse_seconds(".5") == 0.5 and units.parse_seconds(3) == 3.0
    for bad in ("0", "-1", "soon", "99999", "1e2", "inf", "nan", "1_0", "٣", " 2", "2s", True):
        with pytest.raises(UsageError, match="invalid time"):
            units.parse_seconds(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "pct"), [("5%", 5.0), ("5", 5.0), (" 0.5 % ", 0.5), ("100%", 100.0), (12, 12.0)])
def test_percentages(text: str | float, pct: float) -> None:
    assert units.parse_percent(text) == pct


@pytest.mark.parametrize("text", ["-1%", "101%", "abc", "", "%", "5%%", "nan", "inf", "0.001%", "1e3", "+5", "٥%",
                                  float("nan"), True])
def test_percentages_refused(text: object) -> None:
    with pytest.raises(UsageError, match="invalid loss percentage"):
        units.parse_percent(text, "loss percentage")  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", ["100M", "10mbit", "1.5g", "2000000", "1mbps"])
def test_the_commands_and_the_file_take_the_same_rates(rate: str) -> None:
    """`lab impair --rate 100M` was refused while `lab perf --rate 100M` was taken: now every spelling passes the
    parser of both verbs and of the file alike (the lab does not exist: the error is about that, not the rate)."""
    for argv in (["lab", "impair", "nolab", "h1", "h2", "--rate", rate],
                 ["lab", "perf", "nolab", "h1", "h2", "--udp", "--rate", rate]):
        rc, err, _ = run_cli(argv)
        assert "invalid" not in err and "rate" not in err.split("hint")[0], (argv, err)
        assert rc is None or "nolab" in err, (argv, rc, err)
    topo = load_text(P2P + f"    impair: {{rate: {rate}}}\n")
    assert topo.links[0].impair == {"both": {"rate": rate}}


@pytest.mark.parametrize("rate", ["fast", "10MB", "9" * 400 + "mbit"])
def test_the_commands_and_the_file_refuse_the_same_rates(rate: str) -> None:
    for argv in (["lab", "impair", "nolab", "h1", "h2", "--rate", rate],
                 ["lab", "perf", "nolab", "h1", "h2", "--udp", "--rate", rate]):
        rc, err, events = run_cli(argv)
        assert rc == 2 and "invalid rate" in err and events == [], (argv, rc, err)
    with pytest.raises(UsageError, match=r"links\[0\]\.impair\.rate: invalid rate"):
        load_text(P2P + f"    impair: {{rate: {rate}}}\n", "u.yaml")
