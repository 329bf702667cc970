"""Progress lines inside an epoch (`LSKD_LOG_EVERY`, lskd.progress)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from lskd.progress import Interval, format_clock
from lskd.train.resume import EpochProgress

log = logging.getLogger(__name__)


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
