"""Rounds of a benchmark within a time budget (`--rounds N --seconds S`)."""

from __future__ import annotations

import time
from collections.abc import Iterator


class Budget:
    """The wall-clock budget of one benchmark run, counted from its creation (so the
    set-up and warm-up spend it too); `None` seconds: no limit."""

    def __init__(self, seconds: float | None):
        self.seconds, self.start = seconds, time.perf_counter()

    def rounds(self, n: int) -> Iterator[int]:
        """Round numbers 0 .. n - 1, stopping early once another round as long as the
        longest so far would end past the budget; the first round always runs."""
        longest = 0.0
        for r in range(n):
            begin = time.perf_counter()
            if r and self.seconds is not None:
                if begin - self.start + longest > self.seconds:
                    print(f"budget: {r} of {n} rounds within {self.seconds:g} s")
                    return
            yield r
            longest = max(longest, time.perf_counter() - begin)
