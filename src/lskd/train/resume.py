"""The rolling resume checkpoint of a training job: what it holds and how a job
continues from it.

One format whatever the number K of models the loop trains (`lskd.train.loop`); the
job names the file (`last.pt`, `last_sweep.pt` for a fused sweep). It is written at
every epoch boundary and, on a preemption signal, after the step the loop stopped at.
It holds the K models, the optimizer and scheduler states, every global RNG state
(`lskd.train.rng`), each model's own RNG stream when K > 1 (`rng.RNGStreams`), the
data-order generator's state *at the start of the current epoch*, the train time,
each model's history and best-validation weights and, for a mid-epoch stop, the
epoch's progress (step index and the running sums of its training statistics).
Resuming sets the generator back to the epoch's start, replays the order and
augmentation draws of the finished steps without training on them (`position`), then
restores the global RNG states (`start_epoch`), so the next step sees exactly the
batch and the random numbers an uninterrupted run would have.

Checkpoints in the two formats written before this one (`lskd-resume-v2` of a single
run, `lskd-sweep-resume-v1` of a fused sweep) are read into its layout (`_upgrade`),
so a job stopped before an upgrade resumes after it.

There is no GradScaler state: CUDA runs use bf16 autocast, which needs none.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lskd.errors import CheckpointError
from lskd.models import checkpoint
from lskd.train import rng
from lskd.train.distributed import Context, all_sum, barrier
from lskd.train.preempt import Position
from lskd.train.recipe import Recipe

log = logging.getLogger("lskd")
FORMAT = "lskd-resume-v3"
RUN_FORMAT = "lskd-resume-v2"  # read only: one run, before v3
SWEEP_FORMAT = "lskd-sweep-resume-v1"  # read only: a fused sweep, before v3


@dataclass
class EpochProgress:
    """Where an epoch stands: its number, its starting lr, the steps done and images
    seen, and the running sums over those steps of each model's training loss
    (`loss_sums`, loss x batch size) and top-1 hits (`hits`)."""

    epoch: int
    lr: float
    step: int = 0
    seen: int = 0
    seconds: float = 0.0
    loss_sums: list[float] = field(default_factory=list)
    hits: list[int] = field(default_factory=list)
    ranks: list[list[float]] | None = None  # every rank's sums (data-parallel)

    def sums(self) -> list[float]:
        """This rank's running sums, in the order `gather` stores them."""
        return [*self.loss_sums, *self.hits, self.seen]

    def set_sums(self, sums: Sequence[float]) -> None:
        k = (len(sums) - 1) // 2
        self.loss_sums = [float(v) for v in sums[:k]]
        self.hits = [int(v) for v in sums[k : 2 * k]]
        self.seen = int(sums[-1])

    def gather(self, ctx: Context) -> None:
        """Collect every rank's running sums into `ranks` (rank 0 saves them)."""
        if ctx.world == 1:
            return
        mine = self.sums()
        n = len(mine)
        flat = [0.0] * (n * ctx.world)
        flat[n * ctx.rank : n * ctx.rank + n] = mine
        flat = all_sum(flat, ctx)  # adding zeros: every value arrives exactly
        self.ranks = [flat[n * r : n * r + n] for r in range(ctx.world)]

    def scatter(self, ctx: Context) -> None:
        """Take this rank's own running sums back from `ranks` after a resume."""
        if self.ranks is not None:
            self.set_sums(self.ranks[ctx.rank])
            self.ranks = None


@dataclass
class RunState:
    """What the checkpoint restores besides the models, optimizer, scheduler and RNG
    streams: per model its history and best-validation weights; the train time; the
    stopped epoch's progress and the global RNG states to put back (`start_epoch`)."""

    histories: list[list[dict[str, Any]]]
    best_states: list[dict[str, torch.Tensor] | None]
    train_seconds: float = 0.0
    partial: EpochProgress | None = None
    rng: dict[str, Any] | None = None

    @classmethod
    def fresh(cls, k: int) -> RunState:
        return cls([[] for _ in range(k)], [None] * k)

    @property
    def epochs_done(self) -> int:
        return len(self.histories[0])


@dataclass
class RollingCheckpoint:
    """The checkpoint file of one job and what it saves and restores: the bare
    `modules`, `opt`, `scheduler` and `streams`. `key` holds what a checkpoint must
    have been written for besides the recipe (a fused sweep's temperatures)."""

    path: Path
    recipe: Recipe
    key: dict[str, Any]
    modules: Sequence[torch.nn.Module]
    opt: torch.optim.Optimizer
    scheduler: Any
    streams: rng.RNGStreams

    def save(self, run: RunState, generator: torch.Tensor, ctx: Context) -> None:
        """Rank 0 writes the checkpoint atomically (`generator`: the data generator's
        state at the start of the epoch in progress, or of the next one at a
        boundary); no rank leaves before it is complete."""
        if ctx.is_main:
            state = {
                "format": FORMAT,
                "epoch": run.epochs_done,
                "recipe": self.recipe.to_dict(),
                **self.key,
                "models": [m.state_dict() for m in self.modules],
                "optimizer": self.opt.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "generator": generator,
                "rng": rng.capture(),
                "streams": self.streams.states,
                "partial": dataclasses.asdict(run.partial) if run.partial else None,
                "train_seconds": run.train_seconds,
                "histories": run.histories,
                "best_states": run.best_states,
            }
            checkpoint.save(state, self.path)
        barrier(ctx)

    def load(self, gen: torch.Generator) -> RunState | None:
        """Restore models, optimizer, scheduler, RNG streams and the data generator.

        Returns None (train from scratch) when there is no file, or it was written by
        another recipe, another `key` or is no lskd resume checkpoint. The global RNG
        states come back in `RunState.rng`: `start_epoch` restores them once the data
        iterator is positioned.
        """
        state = _read(self.path, self.recipe, self.key)
        if state is None:
            return None
        try:
            state = _upgrade(state)
            for module, weights in zip(self.modules, state["models"], strict=True):
                module.load_state_dict(weights)
            self.opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(
                f"{self.path}: does not fit this model "
                f"({str(err).strip().splitlines()[0]}); "
                "delete it to train from scratch"
            ) from None
        self.scheduler.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        if state["streams"] is not None:
            self.streams.states = state["streams"]
        partial = EpochProgress(**state["partial"]) if state["partial"] else None
        at = saved_position(state["epoch"], partial)
        log.info("resumed from %s at %s", self.path, at.text)  # as Preempted states it
        return RunState(
            state["histories"],
            state["best_states"],
            state["train_seconds"],
            partial,
            state["rng"],
        )


def saved_position(epochs_done: int, partial: EpochProgress | None) -> Position:
    """Where a checkpoint of `epochs_done` finished epochs and the stopped epoch's
    `partial` progress stands, stated as the loop's `Preempted` states it."""
    if partial is None:
        return Position.end_of(epochs_done)
    return Position(partial.epoch, partial.step)


def _read(path: Path, recipe: Recipe, key: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at `path`, or None (train from scratch) when there is none or it
    was written in an unknown format, by another recipe or for other `key` values."""
    if not path.exists():
        return None
    try:
        state = checkpoint.load(path)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; delete it to train from scratch") from None
    if state.get("format") not in (FORMAT, RUN_FORMAT, SWEEP_FORMAT):
        log.info("ignoring %s: not a %s checkpoint", path, FORMAT)
        return None
    for name, value in {"recipe": recipe.to_dict(), **key}.items():
        if state.get(name) != value:
            log.info("ignoring %s: written with another %s", path, name)
            return None
    return state


def _upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of the formats before v3 in v3's layout: one list entry per model
    (`models`, `histories`, `best_states`) and per-model running sums. A single run's
    `ranks` rows ([loss, hits, seen]) and a sweep's already are v3's."""
    if state["format"] == FORMAT:
        return state
    partial = dict(state.get("partial") or {})
    loss_sum, correct = partial.pop("loss_sum", None), partial.pop("correct", None)
    if state["format"] == RUN_FORMAT:
        if partial:
            partial.update(loss_sums=[loss_sum], hits=[correct])
        per_model = {
            "models": [state["model"]],
            "histories": [state.get("history")],
            "best_states": [state.get("best_state")],
            "streams": None,
        }
    else:
        per_model = {
            "models": state["students"],
            "histories": state["histories"],
            "best_states": state["best_states"],
            "streams": state["streams"],
        }
    return {**state, **per_model, "partial": partial or None}


def start_epoch(
    train: Iterable, progress: EpochProgress, run: RunState, ctx: Context
) -> Iterator:
    """This epoch's batches, after the steps `progress` has done, with this rank's
    running sums and the saved global RNG states back (once, after a resume)."""
    progress.scatter(ctx)
    if run.rng is not None and progress.step == 0:
        rng.restore(run.rng)
    batches = position(train, progress.step)
    if run.rng is not None and progress.step > 0:
        rng.restore(run.rng)
    run.partial, run.rng = None, None
    return batches


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
