"""Progress lines of long work (training steps inside an epoch: `StepLog`; the scan of
an image-folder dataset), so that `tail -f` on a job's log always tells where it is:
one every `LOG_EVERY_S` seconds, or `LSKD_LOG_EVERY` seconds when set (`Interval`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger("lskd")
LOG_EVERY_S = 60.0


# Fields of the result files (metrics.json, NMT train.json) that measure the machine,
# not the result: comparisons of two runs of one config leave them out.
WALL_KEYS = frozenset(
    {
        "wall_s",
        "train_seconds",
        "train_images_per_s",
        "train_images_per_s_per_process",
        "images_per_s",
        "train_step_s",  # NMT (train.json): fairseq's summed step time
        "tokens_per_s",
    }
)


def log_every_s() -> float:
    """Seconds between two progress lines (`LSKD_LOG_EVERY` overrides the default)."""
    return float(os.environ.get("LSKD_LOG_EVERY") or LOG_EVERY_S)


def format_clock(seconds: float) -> str:
    """`h:mm:ss` of a duration."""
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{s:02d}"


class Interval:
    """Says when a progress line is due: at most once per `every_s` seconds
    (`log_every_s()` by default), counted from its creation."""

    def __init__(
        self,
        every_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.every = every_s if every_s is not None else log_every_s()
        self.clock = clock
        self.start = self.last = clock()

    def due(self) -> float | None:
        """Seconds since the start if a line is due now (the next is then due an
        interval later), else None."""
        now = self.clock()
        if now - self.last < self.every:
            return None
        self.last = now
        return now - self.start
