"""A one-line progress bar on a terminal; silent otherwise (logs and CI get only the summary)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Bar:
    def __init__(self, stream: TextIO | None = None, min_total: int = 50) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.min_total = min_total
        self.last = 0.0
        self.shown = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled or (total < self.min_total and phase != "services"):  # services are slow
            return
        now = time.monotonic()
        if done < total and now - self.last < 0.05:
            return
        self.last = now
        width = 30
        fill = width * done // max(total, 1)
        self.stream.write(f"\r  {phase:<11} [{'#' * fill}{'.' * (width - fill)}] {done}/{total}")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()
