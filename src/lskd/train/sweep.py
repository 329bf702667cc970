"""The fused temperature sweep: K students of one architecture distilled from one
teacher at K temperatures (docs/recipes.md#kd-loss), trained from ONE data stream with
ONE teacher forward per batch instead of K separate jobs.

Each student follows exactly the trajectory of its own `lskd distill` job:

- same init, data order and augmentation: the caller builds every student from the same
  seed (`runs.rng_seed`) and all K read the same batches from one generator;
- same loss and gradients: student k's loss is `kd_loss(student_k(x), teacher(x), T_k)`
  and is back-propagated on its own (one graph in memory at a time), so the gradient of
  its parameters is its separate job's gradient;
- same optimizer state: one SGD over all K students' parameters; momentum, Nesterov and
  weight decay are per parameter and the K students share the one recipe and schedule;
- same random draws: the global torch (and CUDA) RNG is swapped to student k's own
  stream around its forward (`RNGStreams`), so dropout or stochastic depth draw what
  they draw in the separate job instead of interleaving.

tests/test_fused.py checks bit-identity against K separate jobs on CPU. Evaluation,
selection and metrics are per student (`summarise`, as `engine.fit` does).

Interruptions are handled exactly as in a single job, by the same epoch loop
(`engine.run_epochs`): the rolling `last_sweep.pt` (`resume.save_sweep`) is written
after every epoch and, when SIGTERM/SIGUSR1 arrived (`lskd.train.preempt`), after the
step the sweep stops at, with every global RNG state, each student's RNG stream and the
running sums of the epoch (`resume.SweepProgress`); the job then raises `Preempted`
(exit 75) and the same command resumes all K students at that step, bit-identically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lskd.objectives.kd import kd_loss
from lskd.train import preempt, resume
from lskd.train.accuracy import topk_correct
from lskd.train.distributed import Context, all_sum
from lskd.train.engine import (
    autocast,
    make_optimizer,
    make_scheduler,
    run_epochs,
    summarise,
    to_device,
    unwrap,
)
from lskd.train.history import epoch_entry, format_val, record_epoch, validates
from lskd.train.preempt import Preempted
from lskd.train.recipe import Recipe
from lskd.train.resume import SweepProgress
from lskd.train.stability_sums import StabilitySums

log = logging.getLogger("lskd")


class RNGStreams:
    """One global-RNG stream per student, all starting from the current global state.

    `with streams.use(k):` sets the global torch RNG (and the device's CUDA RNG) to
    student k's state and stores it back on exit.
    """

    def __init__(self, k: int, device: torch.device):
        self.device = device if device.type == "cuda" else None
        self.states = [self._get() for _ in range(k)]

    def _get(self) -> dict[str, Tensor | None]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device else None
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    @contextmanager
    def use(self, k: int) -> Iterator[None]:
        state = self.states[k]
        torch.set_rng_state(state["cpu"])
        if self.device is not None:
            torch.cuda.set_rng_state(state["cuda"], self.device)
        try:
            yield
        finally:
            self.states[k] = self._get()


def train_sweep_epoch(
    students: Sequence[nn.Module],
    teacher: nn.Module,
    temperatures: Sequence[float],
    batches: Iterable,
    opt: torch.optim.Optimizer,
    scheduler,
    streams: RNGStreams,
    ctx: Context,
    progress: SweepProgress | None = None,
    stop: Callable[[], int | None] | None = None,
) -> tuple[list[dict[str, float]], float, float]:
    """One pass: per batch one teacher forward, then each student's KD step; one
    optimizer step for all. Returns per-student {loss, top1}, images/s and seconds
    (summed over ranks). Running sums stay on the device: no sync per step.

    As `engine.train_one_epoch`: with `progress` the pass continues a stopped epoch
    (`batches` positioned after its `step` steps) from its running sums, and after
    every step `stop()` may name a signal: `progress` is brought up to date and
    `Preempted` raised."""
    for s in students:
        s.train()
    k, dev = len(students), ctx.device
    p = progress or SweepProgress(epoch=0, lr=opt.param_groups[0]["lr"])
    loss_sum = torch.tensor(p.loss_sums or [0.0] * k, dtype=torch.float64, device=dev)
    hits = torch.tensor(p.hits or [0] * k, dtype=torch.int64, device=dev)
    start = time.perf_counter()

    def bring_up_to_date() -> None:
        p.loss_sums, p.hits = loss_sum.tolist(), hits.tolist()
        p.seconds += time.perf_counter() - start

    for x, y in batches:
        x, y = to_device(x, y, dev)
        with autocast(dev):
            t_logits = teacher(x)
        opt.zero_grad(set_to_none=True)
        for i, (student, T) in enumerate(zip(students, temperatures, strict=True)):
            with streams.use(i), autocast(dev):
                logits = student(x)
                loss = kd_loss(logits, t_logits, T)
            loss.backward()
            # the same arithmetic as engine.train_one_epoch: float64 loss * batch size
            loss_sum[i] += loss.detach().double() * len(y)
            hits[i] += logits.detach().topk(1, dim=-1).indices.eq(y[:, None]).sum()
        opt.step()
        scheduler.step()
        p.seen += len(y)
        p.step += 1
        signum = stop() if stop is not None else None
        if signum is not None:
            bring_up_to_date()
            raise Preempted(signum, f"epoch {p.epoch} step {p.step}")
    bring_up_to_date()
    totals = all_sum([*p.loss_sums, *p.hits, p.seen], ctx)
    seen = totals[-1]
    stats = [
        {"loss": totals[i] / seen, "top1": 100.0 * totals[k + i] / seen}
        for i in range(k)
    ]
    return stats, seen / p.seconds, p.seconds


@torch.no_grad()
def evaluate_students(
    students: Sequence[nn.Module], batches: Iterable, ctx: Context
) -> list[dict[str, float]]:
    """`engine.evaluate` for K models over one pass of the data (same arithmetic, so
    each result, the stability included, equals `evaluate(model_k, batches, ctx)`
    exactly)."""
    for s in students:
        s.eval()
    k = len(students)
    sums = [[0.0, 0, 0] for _ in range(k)]
    stability = [StabilitySums(ctx.device) for _ in range(k)]
    seen = 0
    for x, y in batches:
        x, y = to_device(x, y, ctx.device)
        for i, student in enumerate(students):
            with autocast(ctx.device):
                logits = student(x)
            ce = nn.functional.cross_entropy(logits.float(), y, reduction="sum")
            c1, c5 = topk_correct(logits, y, (1, 5))
            sums[i] = [sums[i][0] + float(ce), sums[i][1] + c1, sums[i][2] + c5]
            stability[i].add(logits, y)
        seen += len(y)
    flat = all_sum([v for s in sums for v in s] + [seen], ctx)
    for sums_i in stability:
        sums_i.reduce(ctx)
    seen = flat[-1]
    return [
        {
            "loss": flat[3 * i] / seen,
            "top1": 100.0 * flat[3 * i + 1] / seen,
            "top5": 100.0 * flat[3 * i + 2] / seen,
            "stability": stability[i].value(),
        }
        for i in range(k)
    ]


def _log_epoch(epoch, recipe, temperatures, stats, vals, rate, lr, ctx) -> None:
    parts = [
        f"T={T:g} loss={s['loss']:.4f} top1={s['top1']:.2f} val_top1={format_val(v)}"
        for T, s, v in zip(temperatures, stats, vals, strict=True)
    ]
    log.info(
        "epoch %d/%d img/s=%.0f (%.0f per process) lr=%.5f | %s",
        epoch,
        recipe.epochs,
        rate,
        rate / ctx.world,
        lr,
        " | ".join(parts),
    )


def fit_students(
    students: Sequence[nn.Module],
    teacher: nn.Module,
    temperatures: Sequence[float],
    train: Any,
    val: Iterable,
    test: Iterable,
    recipe: Recipe,
    gen: torch.Generator,
    ctx: Context,
    resume_path: Path,
) -> list[tuple[dict[str, Any], dict[str, Tensor]]]:
    """`engine.fit` for K students at once: one (metrics, chosen state_dict) per
    student, each as its separate `fit` would return it. Call with the global RNG in
    the state right after the students were built (the state every separate job's
    training starts from). Only rank 0 writes `resume_path` (`last_sweep.pt`): after
    every epoch and, on SIGTERM/SIGUSR1, after the step it stops at, before raising
    `Preempted` (`engine.run_epochs`)."""
    k = len(students)
    modules = [unwrap(s) for s in students]
    opt = make_optimizer(nn.ModuleList(students), recipe)
    scheduler = make_scheduler(opt, recipe, len(train))
    streams = RNGStreams(k, ctx.device)

    def train_epoch(batches, progress, stop):
        return train_sweep_epoch(
            students,
            teacher,
            temperatures,
            batches,
            opt,
            scheduler,
            streams,
            ctx,
            progress,
            stop,
        )

    def end_epoch(progress: SweepProgress, result) -> None:
        stats, rate, seconds = result
        vals = (
            evaluate_students(students, val, ctx)
            if validates(progress, recipe)
            else [None] * k
        )
        run.train_seconds += seconds
        for i, (s, v) in enumerate(zip(stats, vals, strict=True)):
            entry = epoch_entry(progress, {**s, "images_per_s": rate}, v)
            history, best = run.histories[i], run.best_states[i]
            run.best_states[i] = record_epoch(history, best, entry, modules[i])
        _log_epoch(
            progress.epoch, recipe, temperatures, stats, vals, rate, progress.lr, ctx
        )

    def write(epoch_generator: Tensor) -> None:
        run.streams = streams.states
        resume.save_sweep(
            resume_path,
            recipe,
            temperatures,
            modules,
            opt,
            scheduler,
            epoch_generator,
            run,
        )

    with preempt.watch():  # from here on SIGTERM/SIGUSR1 only set a flag
        run = resume.load_sweep(
            resume_path, recipe, temperatures, modules, opt, scheduler, gen
        )
        run = run or resume.SweepState(
            histories=[[] for _ in range(k)], best_states=[None] * k
        )
        if run.streams is not None:
            streams.states = run.streams
        run_epochs(
            run,
            recipe,
            gen,
            train,
            opt,
            ctx,
            train_epoch,
            end_epoch,
            write,
            SweepProgress,
        )
    return [
        summarise(s, best, history, test, recipe, ctx, run.train_seconds)
        for s, best, history in zip(
            students, run.best_states, run.histories, strict=True
        )
    ]
