"""Shared settings of the property-based fuzzers (tests/system/test_fuzz_*.py).

The normal suite runs a few hundred examples, derandomized (the same ones every run: a fuzzer that fails
one run in ten would be a flaky test). NSLAB_FUZZ=long runs random, many more (NSLAB_FUZZ_EXAMPLES, default
20000 per test) for a hunt; NSLAB_FUZZ_SEED makes a long run repeatable. No example database is written.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import HealthCheck, settings

LONG = os.environ.get("NSLAB_FUZZ") == "long"
PER_EXAMPLE_S = 10.0  # an example that takes longer is a hang: the property fails


def fuzz_settings(normal: int) -> settings:
    return settings(
        max_examples=int(os.environ.get("NSLAB_FUZZ_EXAMPLES", "20000")) if LONG else normal,
        deadline=None,  # time is bounded by `bounded()` instead: a deadline would not stop a real hang
        database=None,
        derandomize=not LONG,
        print_blob=LONG,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                               HealthCheck.large_base_example],
    )


class Hang(BaseException):
    """The example ran for more than PER_EXAMPLE_S."""


@contextmanager
def bounded(seconds: float = PER_EXAMPLE_S) -> Iterator[None]:
    """Fail (raise Hang) if the block runs longer than `seconds` of wall time."""
    def ring(signum: int, frame: object) -> None:
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)

