"""The fused temperature sweep: K students of one architecture distilled from one
teacher at K temperatures (PAPER.md §2.2, §10), trained from ONE data stream with ONE
teacher forward per batch instead of K separate jobs.

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
selection and metrics are per student (`summarise`, as `engine.fit` does), and the
rolling `last_sweep.pt` resumes all K together.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lskd import checkpoint
from lskd.config import Recipe
from lskd.distributed import Context, all_sum
from lskd.engine import (
    autocast,
    make_optimizer,
    make_scheduler,
    summarise,
    to_device,
    unwrap,
)
from lskd.losses import kd_loss, topk_correct

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
) -> tuple[list[dict[str, float]], float, float]:
    """One pass: per batch one teacher forward, then each student's KD step; one
    optimizer step for all. Returns per-student {loss, top1}, images/s and seconds
    (summed over ranks). Running sums stay on the device: no sync per step."""
    for s in students:
        s.train()
    k, dev = len(students), ctx.device
    loss_sum = torch.zeros(k, dtype=torch.float64, device=dev)
    hits = torch.zeros(k, dtype=torch.int64, device=dev)
    seen, start = 0, time.perf_counter()
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
        seen += len(y)
    seconds = time.perf_counter() - start
    totals = all_sum([*loss_sum.tolist(), *hits.tolist(), seen], ctx)
    seen = totals[-1]
    stats = [
        {"loss": totals[i] / seen, "top1": 100.0 * totals[k + i] / seen}
        for i in range(k)
    ]
    return stats, seen / seconds, seconds


@torch.no_grad()
def evaluate_students(
    students: Sequence[nn.Module], batches: Iterable, ctx: Context
) -> list[dict[str, float]]:
    """`engine.evaluate` for K models over one pass of the data (same arithmetic, so
    each result equals `evaluate(model_k, batches, ctx)` exactly)."""
    for s in students:
        s.eval()
    k = len(students)
    sums = [[0.0, 0, 0] for _ in range(k)]
    seen = 0
    for x, y in batches:
        x, y = to_device(x, y, ctx.device)
        for i, student in enumerate(students):
            with autocast(ctx.device):
                logits = student(x)
            ce = nn.functional.cross_entropy(logits.float(), y, reduction="sum")
            c1, c5 = topk_correct(logits, y, (1, 5))
            sums[i] = [sums[i][0] + float(ce), sums[i][1] + c1, sums[i][2] + c5]
        seen += len(y)
    flat = all_sum([v for s in sums for v in s] + [seen], ctx)
    seen = flat[-1]
    return [
        {
            "loss": flat[3 * i] / seen,
            "top1": 100.0 * flat[3 * i + 1] / seen,
            "top5": 100.0 * flat[3 * i + 2] / seen,
        }
        for i in range(k)
    ]


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return copy.deepcopy({k: v.detach().cpu() for k, v in module.state_dict().items()})


class _Sweep:
    """Everything `last_sweep.pt` holds besides the optimizer: per-student histories,
    best states and RNG streams, and the shared generator and train time."""

    def __init__(self, k: int, streams: RNGStreams):
        self.histories: list[list[dict]] = [[] for _ in range(k)]
        self.best: list[dict | None] = [None] * k
        self.streams, self.train_seconds = streams, 0.0

    def record(self, i: int, entry: dict, module: nn.Module) -> None:
        history = self.histories[i]
        if self.best[i] is None or entry["val_top1"] > max(
            h["val_top1"] for h in history
        ):
            self.best[i] = _cpu_state(module)
        history.append(entry)


def _resume(path: Path, recipe, temperatures, modules, opt, scheduler, gen, sweep):
    if not path.exists():
        return
    state = checkpoint.load(path)
    if state.get("recipe") != recipe.to_dict() or state.get("temperatures") != list(
        temperatures
    ):
        log.info("ignoring %s: written for another recipe or temperatures", path)
        return
    for module, weights in zip(modules, state["students"], strict=True):
        module.load_state_dict(weights)
    opt.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    gen.set_state(state["generator"])
    sweep.streams.states = state["rng"]
    sweep.histories, sweep.best = state["histories"], state["best_states"]
    sweep.train_seconds = state["train_seconds"]
    log.info("resumed the sweep from %s at epoch %d", path, state["epoch"])


def _log_epoch(epoch, recipe, temperatures, stats, vals, rate, lr, ctx) -> None:
    parts = [
        f"T={T:g} loss={s['loss']:.4f} top1={s['top1']:.2f} val_top1={v['top1']:.2f}"
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
    training starts from). Only rank 0 writes `resume_path`."""
    modules = [unwrap(s) for s in students]
    opt = make_optimizer(nn.ModuleList(students), recipe)
    scheduler = make_scheduler(opt, recipe, len(train))
    sweep = _Sweep(len(students), RNGStreams(len(students), ctx.device))
    _resume(resume_path, recipe, temperatures, modules, opt, scheduler, gen, sweep)
    for epoch in range(len(sweep.histories[0]) + 1, recipe.epochs + 1):
        lr = opt.param_groups[0]["lr"]
        stats, rate, seconds = train_sweep_epoch(
            students, teacher, temperatures, train, opt, scheduler, sweep.streams, ctx
        )
        vals = evaluate_students(students, val, ctx)
        sweep.train_seconds += seconds
        for i, (s, v) in enumerate(zip(stats, vals, strict=True)):
            entry = {
                "epoch": epoch,
                "lr": lr,
                "train_loss": s["loss"],
                "train_top1": s["top1"],
                "val_top1": v["top1"],
                "val_top5": v["top5"],
                "images_per_s": rate,
            }
            sweep.record(i, entry, modules[i])
        _log_epoch(epoch, recipe, temperatures, stats, vals, rate, lr, ctx)
        if ctx.is_main:
            checkpoint.save(
                {
                    "epoch": epoch,
                    "recipe": recipe.to_dict(),
                    "temperatures": list(temperatures),
                    "students": [m.state_dict() for m in modules],
                    "optimizer": opt.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "generator": gen.get_state(),
                    "rng": sweep.streams.states,
                    "histories": sweep.histories,
                    "best_states": sweep.best,
                    "train_seconds": sweep.train_seconds,
                },
                resume_path,
            )
    return [
        summarise(s, best, history, test, recipe, ctx, sweep.train_seconds)
        for s, best, history in zip(students, sweep.best, sweep.histories, strict=True)
    ]
