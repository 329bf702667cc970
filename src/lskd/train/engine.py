"""The training loop: seeding, one epoch of training, evaluation, and `fit` with resume.

`fit` is shaped like pytorch/examples' ImageNet loop. What differs between a teacher and
a student is only the `step_loss(model, x, y) -> (loss, logits)` callable it is given.
At every epoch boundary, and at the step where a preemption signal arrived, it
atomically writes `last.pt` next to the outputs (never a declared Snakemake output), so
a killed job resumes where it stopped with the same RNG and data-order state
(`lskd.train.resume`). That resumable epoch loop, `run_epochs`, is shared with the fused
temperature sweep (`lskd.train.sweep`), which writes `last_sweep.pt` the same way.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lskd.train import preempt, resume, rng
from lskd.train.accuracy import topk_correct
from lskd.train.distributed import Context, all_sum, barrier
from lskd.train.history import (
    epoch_entry,
    format_val,
    record_epoch,
    validated,
    validates,
)
from lskd.train.preempt import Preempted
from lskd.train.recipe import Recipe
from lskd.train.resume import EpochProgress
from lskd.train.stability_sums import StabilitySums, stability_keys
from lskd.train.steplog import StepLog

log = logging.getLogger("lskd")
StepLoss = Callable[[nn.Module, Tensor, Tensor], tuple[Tensor, Tensor]]


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed python, numpy and torch; return the generator that drives data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; float32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
    )


def make_scheduler(
    opt: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-iteration schedule: linear warm-up, then cosine to 0 or step decay."""
    sched = torch.optim.lr_scheduler
    total = recipe.epochs * steps_per_epoch
    warm = min(int(recipe.warmup_epochs * steps_per_epoch), total - 1)
    if recipe.schedule == "cosine":
        main = sched.CosineAnnealingLR(opt, T_max=max(total - warm, 1))
    else:
        main = sched.StepLR(
            opt, step_size=recipe.step_epochs * steps_per_epoch, gamma=recipe.gamma
        )
    if warm <= 0:
        return main
    ramp = sched.LinearLR(opt, start_factor=1.0 / warm, total_iters=warm)
    return sched.SequentialLR(opt, [ramp, main], milestones=[warm])


def to_device(x: Tensor, y: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    """Move a batch; on CUDA images go channels_last (faster convolutions in bf16)."""
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def train_one_epoch(
    model: nn.Module,
    step_loss: StepLoss,
    batches: Iterable,
    opt: torch.optim.Optimizer,
    scheduler,
    ctx: Context,
    progress: EpochProgress | None = None,
    stop: Callable[[], int | None] | None = None,
) -> dict:
    """One pass over this rank's batches; loss/accuracy/throughput summed over ranks.

    With `progress` the pass continues a stopped epoch (`batches` already positioned
    after its `step` steps) and keeps its running sums. After every step `stop()` is
    asked whether to stop; if it names a signal, `progress` is brought up to date and
    `Preempted` is raised, so the caller can save it.
    """
    model.train()
    p = progress or EpochProgress(epoch=0, lr=opt.param_groups[0]["lr"])
    start = time.perf_counter()
    for x, y in batches:
        x, y = to_device(x, y, ctx.device)
        with autocast(ctx.device):
            loss, logits = step_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        scheduler.step()
        p.loss_sum += float(loss.detach()) * len(y)
        p.correct += topk_correct(logits.detach(), y, (1,))[0]
        p.seen += len(y)
        p.step += 1
        signum = stop() if stop is not None else None
        if signum is not None:
            p.seconds += time.perf_counter() - start
            raise Preempted(signum, f"epoch {p.epoch} step {p.step}")
    p.seconds += time.perf_counter() - start
    total_loss, correct, seen = all_sum([p.loss_sum, p.correct, p.seen], ctx)
    return {
        "loss": total_loss / seen,
        "top1": 100.0 * correct / seen,
        "images_per_s": seen / p.seconds,
        "seconds": p.seconds,
    }


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, ctx: Context) -> dict:
    """Plain cross-entropy, top-1 and top-5 (percent) and Shen et al.'s stability
    (``stability_sums``: Shen et al. 2021, Eq. (2), over every class and image) over a
    whole split; each rank evaluates its shard and the counts and sums are added over
    ranks, so the result is exact."""
    model.eval()
    loss, hits1, hits5, seen = 0.0, 0, 0, 0
    stability = StabilitySums(ctx.device)
    for x, y in batches:
        x, y = to_device(x, y, ctx.device)
        with autocast(ctx.device):
            logits = model(x)
        loss += float(nn.functional.cross_entropy(logits.float(), y, reduction="sum"))
        c1, c5 = topk_correct(logits, y, (1, 5))
        hits1, hits5, seen = hits1 + c1, hits5 + c5, seen + len(y)
        stability.add(logits, y)
    loss, hits1, hits5, seen = all_sum([loss, hits1, hits5, seen], ctx)
    stability.reduce(ctx)
    return {
        "loss": loss / seen,
        "top1": 100.0 * hits1 / seen,
        "top5": 100.0 * hits5 / seen,
        "stability": stability.value(),
    }


def fit(
    model: nn.Module,
    step_loss: StepLoss,
    train: Any,
    val: Iterable,
    test: Iterable,
    recipe: Recipe,
    gen: torch.Generator,
    ctx: Context,
    resume_path: Path,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Train for `recipe.epochs`; return (metrics, chosen state_dict).

    Validation (held out from the training set) is evaluated after every epoch; the test
    split only at the end, for the last epoch and for the best-validation epoch. `model`
    may be wrapped (DDP, torch.compile): states are read from and written to the bare
    module, so checkpoints never carry `module.` or `_orig_mod.` prefixes. Only rank 0
    writes `last.pt` (`lskd.train.resume`): after every epoch, and after the step at
    which a SIGTERM/SIGUSR1 arrived (`lskd.train.preempt`), before raising `Preempted`
    (`run_epochs`).
    """
    module = unwrap(model)
    opt = make_optimizer(model, recipe)
    scheduler = make_scheduler(opt, recipe, len(train))

    def train_epoch(batches, progress, stop) -> dict:
        return train_one_epoch(
            model, step_loss, batches, opt, scheduler, ctx, progress, stop
        )

    def end_epoch(progress: EpochProgress, stats: dict) -> None:
        val_stats = evaluate(model, val, ctx) if validates(progress, recipe) else None
        run.train_seconds += stats["seconds"]
        entry = epoch_entry(progress, stats, val_stats)
        run.best_state = record_epoch(run.history, run.best_state, entry, module)
        log.info(
            "epoch %d/%d loss=%.4f top1=%.2f val_top1=%s img/s=%.0f "
            "(%.0f per process) lr=%.5f",
            progress.epoch,
            recipe.epochs,
            stats["loss"],
            stats["top1"],
            format_val(val_stats),
            stats["images_per_s"],
            stats["images_per_s"] / ctx.world,
            progress.lr,
        )

    def write(epoch_generator: Tensor) -> None:
        resume.save(resume_path, recipe, module, opt, scheduler, epoch_generator, run)

    with preempt.watch():  # from here on SIGTERM/SIGUSR1 only set a flag
        run = resume.load(resume_path, recipe, module, opt, scheduler, gen)
        run = run or resume.RunState()
        run_epochs(run, recipe, gen, train, opt, ctx, train_epoch, end_epoch, write)
    return summarise(
        model, run.best_state, run.history, test, recipe, ctx, run.train_seconds
    )


def _after_step(ctx: Context, steps: StepLog | None) -> Callable[[], int | None]:
    """The `stop()` a training pass calls after every step: a progress line when one
    is due (rank 0), then the signal all ranks agree to stop on, if any."""

    def stop() -> int | None:
        if steps is not None:
            steps()
        return preempt.stop_agreed(ctx)

    return stop


def run_epochs(
    run: resume.RunState,
    recipe: Recipe,
    gen: torch.Generator,
    train: Any,
    opt: torch.optim.Optimizer,
    ctx: Context,
    train_epoch: Callable[[Iterable, EpochProgress, Callable[[], int | None]], Any],
    end_epoch: Callable[[EpochProgress, Any], None],
    write: Callable[[Tensor], None],
    new_progress: type[EpochProgress] = EpochProgress,
) -> None:
    """The resumable epoch loop of `fit` and `sweep.fit_students`, from the epoch
    after `run.epochs_done` (continuing `run.partial` mid-epoch) to `recipe.epochs`.

    Each epoch positions the data after the finished steps (`resume.position`), puts
    back the saved global RNG states, then calls `train_epoch(batches, progress,
    stop)` (which raises `Preempted` after the step at which `stop()` names a signal)
    and `end_epoch(progress, its result)`. Rank 0 calls `write(generator state)` to
    save the rolling checkpoint after every epoch and, with `run.partial` set, on
    preemption before re-raising; a signal that arrives between steps stops the job
    at the end of the epoch.
    """

    def save(epoch_generator: Tensor) -> None:
        if ctx.is_main:
            write(epoch_generator)
        barrier(ctx)  # no rank leaves (or exits) before the checkpoint is complete

    for epoch in range(run.epochs_done + 1, recipe.epochs + 1):
        progress = run.partial or new_progress(epoch, opt.param_groups[0]["lr"])
        progress.scatter(ctx)
        epoch_generator = gen.get_state()
        if run.rng is not None and progress.step == 0:
            rng.restore(run.rng)
        batches = resume.position(train, progress.step)
        if run.rng is not None and progress.step > 0:
            rng.restore(run.rng)
        run.partial, run.rng = None, None
        steps = StepLog(recipe.epochs, len(train), progress) if ctx.is_main else None
        stop = _after_step(ctx, steps)
        try:
            result = train_epoch(batches, progress, stop)
        except Preempted:
            progress.gather(ctx)
            run.partial = progress
            save(epoch_generator)
            raise
        end_epoch(progress, result)
        save(gen.get_state())
        signum = preempt.stop_agreed(ctx)
        if signum is not None:
            raise Preempted(signum, f"the end of epoch {epoch}")


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside DistributedDataParallel and/or torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def summarise(model, best_state, history, test, recipe, ctx, train_seconds):
    """Test-split metrics of the last and best-validation states; loads the chosen."""
    module = unwrap(model)
    best = max(validated(history), key=lambda h: h["val_top1"])
    last_state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    picks = {}
    for name, entry, weights in (
        ("last", history[-1], last_state),
        ("best", best, best_state),
    ):
        module.load_state_dict(weights)
        result = evaluate(model, test, ctx)
        picks[name] = {
            "epoch": entry["epoch"],
            "val_top1": entry["val_top1"],
            "val_top5": entry["val_top5"],
            "val_stability": entry.get("val_stability"),
            "test_top1": result["top1"],
            "test_top5": result["top5"],
            "test_loss": result["loss"],
            "test_stability": result["stability"],
        }
    chosen = "last" if recipe.selection == "last" else "best"
    chosen_state = last_state if chosen == "last" else best_state
    module.load_state_dict(chosen_state)
    images = sum(h["images_per_s"] for h in history) / len(history)
    metrics = {
        "selection": recipe.selection,
        "eval_split": "test",
        "chosen_epoch": picks[chosen]["epoch"],
        "top1": picks[chosen]["test_top1"],
        "top5": picks[chosen]["test_top5"],
        **stability_keys(picks[chosen]["test_stability"]),
        "last": picks["last"],
        "best": picks["best"],
        "epochs": recipe.epochs,
        "train_seconds": train_seconds,
        "train_images_per_s": images,
        "world_size": ctx.world,
        "train_images_per_s_per_process": images / ctx.world,
        "history": history,
    }
    return metrics, chosen_state


def evaluate_imported(
    model: nn.Module, val: Iterable, test: Iterable, ctx: Context
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Metrics of a model that was imported, not trained: epoch 0, selection `imported`,
    in the same layout as `fit`'s so tables treat it like any other run."""
    v, t = evaluate(model, val, ctx), evaluate(model, test, ctx)
    entry = {
        "epoch": 0,
        "val_top1": v["top1"],
        "val_top5": v["top5"],
        "val_stability": v["stability"],
        "test_top1": t["top1"],
        "test_top5": t["top5"],
        "test_loss": t["loss"],
        "test_stability": t["stability"],
    }
    metrics = {
        "selection": "imported",
        "eval_split": "test",
        "chosen_epoch": 0,
        "top1": t["top1"],
        "top5": t["top5"],
        **stability_keys(t["stability"]),
        "last": entry,
        "best": entry,
        "epochs": 0,
        "train_seconds": 0.0,
        "train_images_per_s": 0.0,
        "world_size": ctx.world,
        "train_images_per_s_per_process": 0.0,
        "history": [],
    }
    state = {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}
    return metrics, state
