"""The training loop: K (model, objective) pairs trained from one data stream.

K = 1 trains a teacher or a single student; K = |T| is the fused temperature sweep
(docs/recipes.md#kd-loss): K students of one architecture distilled from one teacher
with ONE forward of the frozen teacher per batch, shared by the K students. Each pair
follows exactly the trajectory it follows alone (tests/test_fused.py checks the sweep
against K separate jobs, bit for bit on CPU):

- same init, data order and augmentation: the job builds every model from the same
  seed (`job.rng_seed`) and all K read the same batches from one generator;
- same loss and gradients: each pair's loss is back-propagated on its own (one graph in
  memory at a time), so its gradients are those of its separate job;
- same optimizer state: one SGD over all K models' parameters (`optim.make_optimizer`);
- same random draws: with K > 1 the global torch (and CUDA) RNG is swapped to model
  k's own stream around its forward (`rng.RNGStreams`), so dropout or stochastic depth
  draw what they draw alone.

`fit` is the epoch loop with resume: rank 0 writes the rolling checkpoint
(`lskd.train.resume`) after every epoch and, when SIGTERM/SIGUSR1 arrived
(`lskd.train.preempt`), after the step at which all ranks agree to stop; it then raises
`Preempted`, and the same job resumes at that step bit-identically. `train_epoch` is the
one pass over the training batches; the running sums of each model's loss and top-1
hits stay on the device and are read once per epoch (docs/performance.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lskd.train import preempt
from lskd.train.accuracy import topk_hits
from lskd.train.device import autocast, to_device, unwrap
from lskd.train.distributed import Context, all_sum
from lskd.train.evaluation import evaluate, summarise
from lskd.train.history import epoch_entry, format_val, record_epoch, validates
from lskd.train.optim import make_optimizer, make_scheduler
from lskd.train.preempt import Preempted
from lskd.train.recipe import Recipe
from lskd.train.resume import EpochProgress, RollingCheckpoint, RunState, start_epoch
from lskd.train.rng import RNGStreams
from lskd.train.steplog import StepLog
from lskd.train.steps import Objective

log = logging.getLogger("lskd")


@dataclass(frozen=True)
class Trainees:
    """What the loop trains: `models[k]` minimises `objectives[k]` (`lskd.train.steps`)
    against the logits of `teacher`, frozen and shared by all (None for a teacher
    run). `labels` name the models in the log; `key` is what a rolling checkpoint must
    have been written for besides the recipe (`resume.RollingCheckpoint`)."""

    models: Sequence[nn.Module]
    objectives: Sequence[Objective]
    teacher: nn.Module | None
    labels: Sequence[str]
    key: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Splits:
    """A job's batches: `train` (one epoch per iteration, `len` = steps per epoch), and
    the `val` and `test` splits."""

    train: Any
    val: Iterable
    test: Iterable


def fit(
    trainees: Trainees,
    splits: Splits,
    recipe: Recipe,
    gen: torch.Generator,
    ctx: Context,
    path: Path,
) -> list[tuple[dict[str, Any], dict[str, Tensor]]]:
    """Train for `recipe.epochs`, resuming from the rolling checkpoint at `path`;
    return each model's (metrics, chosen state_dict) (`evaluation.summarise`).

    Call with the global RNG in the state right after the models were built. The
    validation split is evaluated after every `val_every`-th and the last epoch, the
    test split only at the end. Models may be wrapped (DDP, torch.compile): states are
    read from and written to the bare modules. A signal that arrives between steps
    stops the job at the end of the epoch.
    """
    k = len(trainees.models)
    modules = [unwrap(m) for m in trainees.models]
    opt = make_optimizer(nn.ModuleList(trainees.models), recipe)
    scheduler = make_scheduler(opt, recipe, len(splits.train))
    streams = RNGStreams(k, ctx.device)
    rolling = RollingCheckpoint(
        path, recipe, trainees.key, modules, opt, scheduler, streams
    )
    run = rolling.load(gen) or RunState.fresh(k)
    for epoch in range(run.epochs_done + 1, recipe.epochs + 1):
        progress = run.partial or EpochProgress(epoch, opt.param_groups[0]["lr"])
        epoch_start = gen.get_state()
        batches = start_epoch(splits.train, progress, run, ctx)
        main = ctx.is_main  # rank 0 alone logs progress lines
        steps = StepLog(recipe.epochs, len(splits.train), progress) if main else None
        try:
            train_epoch(
                trainees, batches, opt, scheduler, streams, progress, ctx, steps
            )
        except Preempted:
            progress.gather(ctx)
            run.partial = progress
            rolling.save(run, epoch_start, ctx)
            raise
        _end_epoch(run, progress, trainees, splits.val, recipe, ctx)
        rolling.save(run, gen.get_state(), ctx)
        signum = preempt.stop_agreed(ctx)
        if signum is not None:
            raise Preempted(signum, preempt.Position.end_of(epoch))
    return [
        summarise(model, best, history, splits.test, recipe, ctx, run.train_seconds)
        for model, best, history in zip(
            trainees.models, run.best_states, run.histories, strict=True
        )
    ]


def train_epoch(
    trainees: Trainees,
    batches: Iterable,
    opt: torch.optim.Optimizer,
    scheduler: Any,
    streams: RNGStreams,
    progress: EpochProgress,
    ctx: Context,
    steps: StepLog | None = None,
) -> None:
    """One pass over this rank's batches: per batch one teacher forward (students),
    then each model's forward, loss and backward in turn, and one optimizer step for
    all.

    `progress` may be a stopped epoch's (`batches` then start after its steps); it
    counts the steps and, at the end or on a stop, receives the running sums. After
    every step a progress line is logged when one is due (`steps`, rank 0's) and, once
    all ranks agree on a signal (`preempt.stop_agreed`), `Preempted` is raised.
    """
    for model in trainees.models:
        model.train()
    pairs = list(zip(trainees.models, trainees.objectives, strict=True))
    sums = RunningSums(progress, len(pairs), ctx.device)
    start = time.perf_counter()
    for x, y in batches:
        x, y = to_device(x, y, ctx.device)
        with autocast(ctx.device):
            soft = None if trainees.teacher is None else trainees.teacher(x)
        opt.zero_grad(set_to_none=True)
        for i, (model, objective) in enumerate(pairs):
            with streams.use(i), autocast(ctx.device):
                logits = model(x)
                loss = objective(logits, y, soft, progress.epoch)
            loss.backward()
            sums.add(i, loss, logits, y)
        opt.step()
        scheduler.step()
        progress.step += 1
        progress.seen += len(y)
        if steps is not None:
            steps()
        signum = preempt.stop_agreed(ctx)
        if signum is not None:
            sums.store(progress, start)
            raise Preempted(signum, preempt.Position(progress.epoch, progress.step))
    sums.store(progress, start)


class RunningSums:
    """Each model's training-loss sum (float64, loss x batch size: the arithmetic of a
    host-side sum) and top-1 hits (int64) over an epoch, kept on the device so that a
    step needs no host sync."""

    def __init__(self, progress: EpochProgress, k: int, device: torch.device):
        self.loss = torch.tensor(
            progress.loss_sums or [0.0] * k, dtype=torch.float64, device=device
        )
        self.hits = torch.tensor(
            progress.hits or [0] * k, dtype=torch.int64, device=device
        )

    def add(self, i: int, loss: Tensor, logits: Tensor, y: Tensor) -> None:
        self.loss[i] += loss.detach().double() * len(y)
        self.hits[i] += topk_hits(logits.detach(), y, (1,))[0]

    def store(self, progress: EpochProgress, start: float) -> None:
        """Read the sums into `progress` (one host sync) with the time since `start`."""
        progress.loss_sums, progress.hits = self.loss.tolist(), self.hits.tolist()
        progress.seconds += time.perf_counter() - start


def epoch_stats(
    progress: EpochProgress, ctx: Context
) -> tuple[list[dict[str, float]], float]:
    """Each model's training loss and top-1 over a finished epoch, summed over ranks,
    and the images per second of all ranks together."""
    totals = all_sum(progress.sums(), ctx)
    k, seen = len(progress.loss_sums), totals[-1]
    stats = [
        {"loss": totals[i] / seen, "top1": 100.0 * totals[k + i] / seen}
        for i in range(k)
    ]
    return stats, seen / progress.seconds


def _end_epoch(
    run: RunState,
    progress: EpochProgress,
    trainees: Trainees,
    val: Iterable,
    recipe: Recipe,
    ctx: Context,
) -> None:
    """The epoch's statistics, validation when due, each model's history entry and
    best-validation weights (`history.record_epoch`), and one log line."""
    stats, rate = epoch_stats(progress, ctx)
    k = len(trainees.models)
    due = validates(progress, recipe)
    vals = evaluate(trainees.models, val, ctx) if due else [None] * k
    run.train_seconds += progress.seconds
    for i, (s, v) in enumerate(zip(stats, vals, strict=True)):
        entry = epoch_entry(progress, {**s, "images_per_s": rate}, v)
        module = unwrap(trainees.models[i])
        run.best_states[i] = record_epoch(
            run.histories[i], run.best_states[i], entry, module
        )
    parts = [
        f"{label} loss={s['loss']:.4f} top1={s['top1']:.2f} val_top1={format_val(v)}"
        for label, s, v in zip(trainees.labels, stats, vals, strict=True)
    ]
    log.info(
        "epoch %d/%d img/s=%.0f (%.0f per process) lr=%.5f | %s",
        progress.epoch,
        recipe.epochs,
        rate,
        rate / ctx.world,
        progress.lr,
        " | ".join(parts),
    )
