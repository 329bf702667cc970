"""Progress lines of long work (training steps inside an epoch: `StepLog`; the scan of
an image-folder dataset), so that `tail -f` on a job's log always tells where it is:
one every `LOG_EVERY_S` seconds, or `LSKD_LOG_EVERY` seconds when set (`Interval`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lskd.resume import EpochProgress

log = logging.getLogger("lskd")
LOG_EVERY_S = 60.0


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


class StepLog:
    """Progress inside an epoch, so that `tail -f` on a job's log always tells where
    it is: called after every step, it logs one line every `every_s` seconds with the
    epoch, the step of the epoch, images/s since the epoch (re)started, and the ETA of
    the epoch and of the job's remaining training steps (validation not included)."""

    def __init__(
        self,
        epochs: int,
        steps: int,
        progress: EpochProgress,
        every_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.interval = Interval(every_s, clock)
        self.epochs, self.steps, self.p = epochs, steps, progress
        self.step0, self.seen0 = progress.step, progress.seen

    def __call__(self) -> str | None:
        p = self.p
        done = p.step - self.step0
        elapsed = self.interval.due() if done > 0 else None
        if elapsed is None:
            return None
        per_step = elapsed / done
        epoch_left = (self.steps - p.step) * per_step
        job_left = epoch_left + (self.epochs - p.epoch) * self.steps * per_step
        line = (
            f"step {p.step}/{self.steps} (epoch {p.epoch} of {self.epochs}): "
            f"{(p.seen - self.seen0) / elapsed:.0f} images/s, epoch ETA "
            f"{format_clock(epoch_left)}, job ETA {format_clock(job_left)}"
        )
        log.info(line)
        return line
