"""Every name bench/ takes from lskd's training package, in one place.

The benchmarks time the production training loop itself (`lskd.train.loop.train_epoch`:
one job's pass over its batches, or the fused sweep's, with the KD objective of
`lskd.train.steps`), so they need a few of its internals. They import them from here
and nowhere else, through the two wrappers below, so that when the loop changes this
module is the only one in bench/ to adapt. Nothing here evaluates, checkpoints or
writes files: only the training steps run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from lskd.identity import Choice
from lskd.train.device import autocast, to_device
from lskd.train.distributed import Context
from lskd.train.loop import Trainees, train_epoch
from lskd.train.optim import make_optimizer, make_scheduler
from lskd.train.recipe import Recipe
from lskd.train.resume import EpochProgress
from lskd.train.rng import RNGStreams
from lskd.train.steps import FrozenTeacher, student_step

__all__ = [
    "Context",
    "FrozenTeacher",
    "RNGStreams",
    "Recipe",
    "autocast",
    "make_optimizer",
    "make_scheduler",
    "one_process",
    "sweep_pass",
    "to_device",
    "train_pass",
]


def one_process(device: torch.device) -> Context:
    """The context of a single-process job on `device` (rank 0 of 1)."""
    return Context(0, 1, device)


def train_pass(
    model, teacher, T: float, batches: Iterable, opt, scheduler, ctx: Context
) -> None:
    """One student job's training loop over `batches`, KD from `teacher` at `T`: batch
    to the device (channels_last on CUDA), teacher forward and the student's step under
    bf16 autocast on CUDA, backward, optimizer and scheduler step, as `lskd distill`
    runs it."""
    streams = RNGStreams(1, ctx.device)
    sweep_pass([model], teacher, [T], batches, opt, scheduler, streams, ctx)


def sweep_pass(
    students: Sequence[torch.nn.Module],
    teacher: torch.nn.Module,
    temperatures: Sequence[float],
    batches: Iterable,
    opt,
    scheduler,
    streams: RNGStreams,
    ctx: Context,
) -> None:
    """The fused sweep's loop over `batches`: one teacher forward per batch, then
    each student's KD step at its temperature, one optimizer step for all, as a fused
    `lskd distill --T ...` job runs it."""
    kd = Choice.parse("kd", "objective", "").build()
    epochs = 1  # kd has no epoch-dependent weight
    objectives = [student_step(kd, T, epochs) for T in temperatures]
    labels = [f"T={T:g}" for T in temperatures]
    trainees = Trainees(students, objectives, teacher, labels)
    progress = EpochProgress(1, opt.param_groups[0]["lr"])
    train_epoch(trainees, batches, opt, scheduler, streams, progress, ctx)
