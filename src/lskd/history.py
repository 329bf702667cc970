"""A run's epoch history: which epochs validate, one epoch's entry, the
best-validation weights kept while training, and the progress lines inside an epoch
(`lskd.engine.fit` and the fused sweep of `lskd.sweep` share them)."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from lskd.config import Recipe
from lskd.progress import format_clock, log_every_s
from lskd.resume import EpochProgress

log = logging.getLogger("lskd")


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
        self.every = every_s if every_s is not None else log_every_s()
        self.epochs, self.steps, self.p, self.clock = epochs, steps, progress, clock
        self.start = self.last = clock()
        self.step0, self.seen0 = progress.step, progress.seen

    def __call__(self) -> str | None:
        now, p = self.clock(), self.p
        done = p.step - self.step0
        if now - self.last < self.every or done <= 0:
            return None
        self.last = now
        per_step = (now - self.start) / done
        epoch_left = (self.steps - p.step) * per_step
        job_left = epoch_left + (self.epochs - p.epoch) * self.steps * per_step
        line = (
            f"step {p.step}/{self.steps} (epoch {p.epoch} of {self.epochs}): "
            f"{(p.seen - self.seen0) / (now - self.start):.0f} images/s, epoch ETA "
            f"{format_clock(epoch_left)}, job ETA {format_clock(job_left)}"
        )
        log.info(line)
        return line


def validates(progress: EpochProgress, recipe: Recipe) -> bool:
    """Is the validation split evaluated after this epoch (every `val_every`-th and
    the last)?"""
    return progress.epoch % recipe.val_every == 0 or progress.epoch == recipe.epochs


def format_val(val: dict | None) -> str:
    return "-" if val is None else f"{val['top1']:.2f}"


def epoch_entry(
    progress: EpochProgress, train: dict, val: dict | None
) -> dict[str, Any]:
    """One epoch's line of a run's history (`train`: loss, top1, images_per_s; `val`
    None on an epoch without validation)."""
    return {
        "epoch": progress.epoch,
        "lr": progress.lr,
        "train_loss": train["loss"],
        "train_top1": train["top1"],
        "val_top1": None if val is None else val["top1"],
        "val_top5": None if val is None else val["top5"],
        "val_stability": None if val is None else val["stability"],
        "images_per_s": train["images_per_s"],
    }


def validated(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [h for h in history if h["val_top1"] is not None]


def record_epoch(
    history: list[dict[str, Any]],
    best_state: dict[str, Tensor] | None,
    entry: dict[str, Any],
    module: nn.Module,
) -> dict[str, Tensor] | None:
    """Append `entry` to `history`; return the best-validation weights so far (a CPU
    copy of `module`'s if this validated epoch is strictly better than every earlier
    validated one)."""
    earlier = validated(history)
    if entry["val_top1"] is not None and (
        best_state is None or entry["val_top1"] > max(h["val_top1"] for h in earlier)
    ):
        best_state = copy.deepcopy(
            {k: v.detach().cpu() for k, v in module.state_dict().items()}
        )
    history.append(entry)
    return best_state
