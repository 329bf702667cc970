"""The rolling resume checkpoint `last.pt`: what it holds and how a job continues.

`fit` writes it at every epoch boundary and, on a preemption signal, after the step it
stopped at. It holds the model, optimizer and scheduler states, every global RNG state
(`lskd.rng`), the data-order generator's state *at the start of the current epoch*,
the finished epochs' history, the best-validation weights and, for a mid-epoch stop,
the epoch's progress (step index and the running sums of its training statistics).
Resuming sets the generator back to the epoch's start, replays the order and
augmentation draws of the finished steps without training on them (`position`), then
restores the global RNG states, so the next step sees exactly the batch and the random
numbers an uninterrupted run would have.

There is no GradScaler state: CUDA runs use bf16 autocast, which needs none.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lskd import checkpoint, rng
from lskd.config import Recipe
from lskd.distributed import all_sum
from lskd.errors import CheckpointError

log = logging.getLogger("lskd")
FORMAT = "lskd-resume-v2"


@dataclass
class EpochProgress:
    """Where an epoch stands: its number, its starting lr, the steps done and the
    running sums of the training statistics over those steps."""

    epoch: int
    lr: float
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0
    ranks: list[list[float]] | None = None  # every rank's sums (data-parallel)

    def gather(self, ctx: Any) -> None:
        """Collect every rank's running sums into `ranks` (rank 0 saves them)."""
        if ctx.world == 1:
            return
        flat = [0.0] * (3 * ctx.world)
        flat[3 * ctx.rank : 3 * ctx.rank + 3] = [self.loss_sum, self.correct, self.seen]
        flat = all_sum(flat, ctx)  # adding zeros: every value arrives exactly
        self.ranks = [flat[3 * r : 3 * r + 3] for r in range(ctx.world)]

    def scatter(self, ctx: Any) -> None:
        """Take this rank's own running sums back from `ranks` after a resume."""
        if self.ranks is not None:
            loss_sum, correct, seen = self.ranks[ctx.rank]
            self.loss_sum, self.correct, self.seen = loss_sum, int(correct), int(seen)
            self.ranks = None


@dataclass
class RunState:
    """What `last.pt` restores besides the module, optimizer and scheduler."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    train_seconds: float = 0.0
    partial: EpochProgress | None = None
    rng: dict[str, Any] | None = None


def save(
    path: Path,
    recipe: Recipe,
    module: torch.nn.Module,
    opt: torch.optim.Optimizer,
    scheduler: Any,
    epoch_generator: torch.Tensor,
    run: RunState,
) -> None:
    """Atomically write `last.pt` (`epoch_generator`: the data generator's state at
    the start of the epoch in progress, or of the next one at a boundary)."""
    checkpoint.save(
        {
            "format": FORMAT,
            "epoch": len(run.history),
            "recipe": recipe.to_dict(),
            "model": module.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": epoch_generator,
            "rng": rng.capture(),
            "partial": dataclasses.asdict(run.partial) if run.partial else None,
            "history": run.history,
            "best_state": run.best_state,
            "train_seconds": run.train_seconds,
        },
        path,
    )


def load(
    path: Path,
    recipe: Recipe,
    module: torch.nn.Module,
    opt: torch.optim.Optimizer,
    scheduler: Any,
    gen: torch.Generator,
) -> RunState | None:
    """Restore module, optimizer, scheduler and the data generator from `path`.

    Returns None (train from scratch) when there is no file, or it was written by
    another recipe or another lskd checkpoint format. The global RNG states come back
    in `RunState.rng`: the caller restores them once the data iterator is positioned.
    """
    if not path.exists():
        return None
    try:
        state = checkpoint.load(path)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; delete it to train from scratch") from None
    if state.get("format") != FORMAT:
        log.info("ignoring %s: not a %s checkpoint", path, FORMAT)
        return None
    if state.get("recipe") != recipe.to_dict():
        log.info("ignoring %s: written with another recipe", path)
        return None
    try:
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"{path}: does not fit this model ({str(err).strip().splitlines()[0]}); "
            "delete it to train from scratch"
        ) from None
    scheduler.load_state_dict(state["scheduler"])
    gen.set_state(state["generator"])
    partial = EpochProgress(**state["partial"]) if state["partial"] else None
    where = f"epoch {state['epoch']}" + (f" + {partial.step} steps" if partial else "")
    log.info("resumed from %s at %s", path, where)
    return RunState(
        state["history"],
        state["best_state"],
        state["train_seconds"],
        partial,
        state["rng"],
    )


def position(train: Iterable, step: int) -> Iterator:
    """An iterator over this epoch's batches that starts after `step` finished steps,
    drawing the same order and augmentations as a full pass would.

    Sources with `iter_from(step)` skip cheaply (no decoding); any other iterable is
    advanced by `step` batches, which is exact but loads them.
    """
    if step == 0:
        return iter(train)
    if hasattr(train, "iter_from"):
        return train.iter_from(step)
    batches = iter(train)
    for _ in range(step):
        next(batches)
    return batches
