"""Every name bench/ takes from lskd's training package, in one place.

The benchmarks time the production training loop itself (one job's pass over its
batches, the fused sweep's pass, the KD step), so they need a few of its internals:
`lskd.train.engine`, `lskd.train.sweep`, `lskd.train.steps`. They import them from
here and nowhere else, through the two wrappers below, so that when the loop's
functions are renamed or merged this module is the only one in bench/ to adapt.
Nothing here evaluates, checkpoints or writes files: only the training steps run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from lskd.train.distributed import Context
from lskd.train.engine import (
    autocast,
    make_optimizer,
    make_scheduler,
    to_device,
    train_one_epoch,
)
from lskd.train.recipe import Recipe
from lskd.train.steps import FrozenTeacher, student_step
from lskd.train.sweep import RNGStreams, train_sweep_epoch

__all__ = [
    "Context",
    "FrozenTeacher",
    "RNGStreams",
    "Recipe",
    "autocast",
    "make_optimizer",
    "make_scheduler",
    "one_process",
    "student_step",
    "sweep_pass",
    "to_device",
    "train_pass",
]


def one_process(device: torch.device) -> Context:
    """The context of a single-process job on `device` (rank 0 of 1)."""
    return Context(0, 1, device)


def train_pass(model, step, batches: Iterable, opt, scheduler, ctx: Context) -> None:
    """One job's training loop over `batches`: batch to the device (channels_last on
    CUDA), `step(model, x, y)` under bf16 autocast on CUDA, backward, optimizer and
    scheduler step, as `lskd train` / `lskd distill` run it."""
    train_one_epoch(model, step, batches, opt, scheduler, ctx)


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
    train_sweep_epoch(
        students, teacher, temperatures, batches, opt, scheduler, streams, ctx
    )
