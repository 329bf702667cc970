"""What each model of the training loop minimises per step, and the frozen teacher.

An objective is `objective(logits, y, teacher_logits) -> loss`: the logits of the
model being trained on the batch, the batch's labels, and the frozen teacher's logits
on the same augmented batch (None when a teacher is trained). The loop
(`lskd.train.loop`) runs the teacher once per batch for all its students.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from lskd.objectives.kd import kd_loss
from lskd.objectives.ls import ls_cross_entropy

Objective = Callable[[Tensor, Tensor, Tensor | None], Tensor]


class FrozenTeacher(nn.Module):
    """Wraps a teacher so it stays in eval mode, without gradients, whatever `train()`
    says.
    """

    def __init__(self, teacher: nn.Module):
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenTeacher:
        return self  # the teacher never leaves eval mode (BatchNorm stats, dropout)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return self.teacher(x)


def teacher_step(alpha: float) -> Objective:
    """Teacher objective: LS cross-entropy, factor `alpha` (docs/recipes.md#losses)."""

    def objective(logits: Tensor, y: Tensor, teacher_logits: None) -> Tensor:
        return ls_cross_entropy(logits, y, alpha)

    return objective


def student_step(T: float) -> Objective:
    """Student objective: T^2 * KL at temperature T against the teacher's logits; no
    hard-label term, so `y` is unused (docs/recipes.md#kd-loss). The one call of
    `kd_loss` in training."""

    def objective(logits: Tensor, y: Tensor, teacher_logits: Tensor) -> Tensor:
        return kd_loss(logits, teacher_logits, T)

    return objective
