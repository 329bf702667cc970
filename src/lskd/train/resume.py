"""The rolling resume checkpoints `last.pt` (one run) and `last_sweep.pt` (a fused
sweep of K students, `lskd.train.sweep`): what they hold and how a job continues.

The training loop (`engine.run_epochs`) writes them at every epoch boundary and, on a
preemption signal, after the step it stopped at. Both hold the optimizer and scheduler
states, every global RNG state (`lskd.train.rng`), the data-order generator's state *at
the start of the current epoch*, the train time and, for a mid-epoch stop, the epoch's
progress (step index and the running sums of its training statistics). `last.pt` adds
the model, the finished epochs' history and the best-validation weights;
`last_sweep.pt` adds the same per student plus each student's own RNG stream
(`sweep.RNGStreams`) and the temperatures. Resuming sets the generator back to the
epoch's start, replays the order and augmentation draws of the finished steps without
training on them (`position`), then restores the global RNG states, so the next step
sees exactly the batch and the random numbers an uninterrupted run would have.

There is no GradScaler state: CUDA runs use bf16 autocast, which needs none.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lskd.errors import CheckpointError
from lskd.train import checkpoint, rng
from lskd.train.distributed import all_sum
from lskd.train.recipe import Recipe

log = logging.getLogger("lskd")
FORMAT = "lskd-resume-v2"
SWEEP_FORMAT = "lskd-sweep-resume-v1"


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

    def sums(self) -> list[float]:
        """This rank's running sums, in the order `gather` stores them."""
        return [self.loss_sum, self.correct, self.seen]

    def set_sums(self, sums: Sequence[float]) -> None:
        loss_sum, correct, seen = sums
        self.loss_sum, self.correct, self.seen = loss_sum, int(correct), int(seen)

    def gather(self, ctx: Any) -> None:
        """Collect every rank's running sums into `ranks` (rank 0 saves them)."""
        if ctx.world == 1:
            return
        mine = self.sums()
        n = len(mine)
        flat = [0.0] * (n * ctx.world)
        flat[n * ctx.rank : n * ctx.rank + n] = mine
        flat = all_sum(flat, ctx)  # adding zeros: every value arrives exactly
        self.ranks = [flat[n * r : n * r + n] for r in range(ctx.world)]

    def scatter(self, ctx: Any) -> None:
        """Take this rank's own running sums back from `ranks` after a resume."""
        if self.ranks is not None:
            self.set_sums(self.ranks[ctx.rank])
            self.ranks = None


@dataclass
class SweepProgress(EpochProgress):
    """`EpochProgress` of a fused sweep: the loss sum and top-1 hits of every student
    (`loss_sum` and `correct` stay unused); `seen` is shared."""

    loss_sums: list[float] = field(default_factory=list)
    hits: list[int] = field(default_factory=list)

    def sums(self) -> list[float]:
        return [*self.loss_sums, *self.hits, self.seen]

    def set_sums(self, sums: Sequence[float]) -> None:
        k = (len(sums) - 1) // 2
        self.loss_sums = [float(v) for v in sums[:k]]
        self.hits = [int(v) for v in sums[k : 2 * k]]
        self.seen = int(sums[-1])


@dataclass
class RunState:
    """What `last.pt` restores besides the module, optimizer and scheduler."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    train_seconds: float = 0.0
    partial: EpochProgress | None = None
    rng: dict[str, Any] | None = None

    @property
    def epochs_done(self) -> int:
        return len(self.history)


@dataclass
class SweepState(RunState):
    """What `last_sweep.pt` restores besides the students, optimizer and scheduler:
    one history, best state and RNG stream per student (`history`/`best_state` stay
    unused)."""

    histories: list[list[dict[str, Any]]] = field(default_factory=list)
    best_states: list[dict[str, torch.Tensor] | None] = field(default_factory=list)
    streams: list[dict[str, Any]] | None = None

    @property
    def epochs_done(self) -> int:
        return len(self.histories[0]) if self.histories else 0


def _write(
    path: Path,
    fmt: str,
    recipe: Recipe,
    opt: torch.optim.Optimizer,
    scheduler: Any,
    epoch_generator: torch.Tensor,
    run: RunState,
    **models: Any,
) -> None:
    """Atomically write what every resume checkpoint holds, plus `models`."""
    checkpoint.save(
        {
            "format": fmt,
            "epoch": run.epochs_done,
            "recipe": recipe.to_dict(),
            **models,
            "optimizer": opt.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": epoch_generator,
            "rng": rng.capture(),
            "partial": dataclasses.asdict(run.partial) if run.partial else None,
            "train_seconds": run.train_seconds,
        },
        path,
    )


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
    _write(
        path,
        FORMAT,
        recipe,
        opt,
        scheduler,
        epoch_generator,
        run,
        model=module.state_dict(),
        history=run.history,
        best_state=run.best_state,
    )


def save_sweep(
    path: Path,
    recipe: Recipe,
    temperatures: Sequence[float],
    modules: Sequence[torch.nn.Module],
    opt: torch.optim.Optimizer,
    scheduler: Any,
    epoch_generator: torch.Tensor,
    run: SweepState,
) -> None:
    """Atomically write `last_sweep.pt`: `save` for K students at once, with each
    student's RNG stream (`run.streams`)."""
    _write(
        path,
        SWEEP_FORMAT,
        recipe,
        opt,
        scheduler,
        epoch_generator,
        run,
        temperatures=list(temperatures),
        students=[m.state_dict() for m in modules],
        histories=run.histories,
        best_states=run.best_states,
        streams=run.streams,
    )


def _read(path: Path, fmt: str, recipe: Recipe, **same: Any) -> dict[str, Any] | None:
    """The checkpoint at `path`, or None (train from scratch) when there is none or it
    was written by another format, another recipe or other `same` values."""
    if not path.exists():
        return None
    try:
        state = checkpoint.load(path)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; delete it to train from scratch") from None
    if state.get("format") != fmt:
        log.info("ignoring %s: not a %s checkpoint", path, fmt)
        return None
    for key, value in {"recipe": recipe.to_dict(), **same}.items():
        if state.get(key) != value:
            log.info("ignoring %s: written with another %s", path, key)
            return None
    return state


def _restore(
    path: Path,
    state: dict[str, Any],
    load_models: Callable[[], None],
    opt: torch.optim.Optimizer,
    scheduler: Any,
    gen: torch.Generator,
    progress: type[EpochProgress],
) -> EpochProgress | None:
    """Load the models (`load_models`), optimizer, scheduler and data generator;
    return the mid-epoch progress, if any."""
    try:
        load_models()
        opt.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"{path}: does not fit this model ({str(err).strip().splitlines()[0]}); "
            "delete it to train from scratch"
        ) from None
    scheduler.load_state_dict(state["scheduler"])
    gen.set_state(state["generator"])
    partial = progress(**state["partial"]) if state["partial"] else None
    where = f"epoch {state['epoch']}" + (f" + {partial.step} steps" if partial else "")
    log.info("resumed from %s at %s", path, where)
    return partial


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
    state = _read(path, FORMAT, recipe)
    if state is None:
        return None

    def load_models() -> None:
        module.load_state_dict(state["model"])

    partial = _restore(path, state, load_models, opt, scheduler, gen, EpochProgress)
    return RunState(
        state["history"],
        state["best_state"],
        state["train_seconds"],
        partial,
        state["rng"],
    )


def load_sweep(
    path: Path,
    recipe: Recipe,
    temperatures: Sequence[float],
    modules: Sequence[torch.nn.Module],
    opt: torch.optim.Optimizer,
    scheduler: Any,
    gen: torch.Generator,
) -> SweepState | None:
    """`load` for `last_sweep.pt`; also None when it was written for other
    temperatures. Each student's RNG stream comes back in `SweepState.streams`."""
    state = _read(path, SWEEP_FORMAT, recipe, temperatures=list(temperatures))
    if state is None:
        return None

    def load_models() -> None:
        for module, weights in zip(modules, state["students"], strict=True):
            module.load_state_dict(weights)

    partial = _restore(path, state, load_models, opt, scheduler, gen, SweepProgress)
    return SweepState(
        train_seconds=state["train_seconds"],
        partial=partial,
        rng=state["rng"],
        histories=state["histories"],
        best_states=state["best_states"],
        streams=state["streams"],
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
