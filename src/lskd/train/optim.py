"""The optimizer and learning-rate schedule a `Recipe` describes."""

from __future__ import annotations

import torch
from torch import nn

from lskd.train.recipe import Recipe


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD over `model`'s parameters. Momentum, Nesterov and weight decay act per
    parameter, so one optimizer over K models steps each as its own would."""
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
    """Per-iteration schedule: linear warm-up, then cosine to 0 or step decay (every
    `step_epochs`, or at the epochs of `milestones`)."""
    sched = torch.optim.lr_scheduler
    total = recipe.epochs * steps_per_epoch
    warm = min(int(recipe.warmup_epochs * steps_per_epoch), total - 1)
    if recipe.schedule == "cosine":
        main = sched.CosineAnnealingLR(opt, T_max=max(total - warm, 1))
    elif recipe.milestones:  # epochs counted from the start, warm-up included
        steps = [max(m * steps_per_epoch - warm, 1) for m in recipe.milestones]
        main = sched.MultiStepLR(opt, milestones=steps, gamma=recipe.gamma)
    else:
        main = sched.StepLR(
            opt, step_size=recipe.step_epochs * steps_per_epoch, gamma=recipe.gamma
        )
    if warm <= 0:
        return main
    ramp = sched.LinearLR(opt, start_factor=1.0 / warm, total_iters=warm)
    return sched.SequentialLR(opt, [ramp, main], milestones=[warm])
