"""What each model of the training loop minimises per step, and the frozen teacher.

An objective is `objective(logits, y, teacher_logits, epoch) -> loss`: the logits of
the model being trained on the batch, the batch's labels, the frozen teacher's logits
on the same augmented batch (None when a teacher is trained) and the epoch (1-based).
It is a registered method (`lskd.objectives`) bound to the run's T and epoch count:
a teacher's regularizer (`teacher_step`) or a student's KD objective (`student_step`).
The loop (`lskd.train.loop`) runs the teacher once per batch for all its students.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from lskd.objectives.method import Objective as KDObjective
from lskd.objectives.method import Regularizer

Objective = Callable[[Tensor, Tensor, Tensor | None, int], Tensor]


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


def teacher_step(regularizer: Regularizer, epochs: int) -> Objective:
    """A teacher's objective: its regularizer's loss on the hard labels."""

    def objective(logits: Tensor, y: Tensor, teacher_logits: None, epoch: int):
        return regularizer.loss(logits, y, epoch, epochs)

    return objective


def student_step(method: KDObjective, T: float, epochs: int) -> Objective:
    """A student's objective: the KD objective `method` at temperature T against the
    frozen teacher's logits of the batch (the one place training calls it)."""

    def objective(logits: Tensor, y: Tensor, teacher_logits: Tensor, epoch: int):
        return method.loss(logits, teacher_logits, y, T, epoch, epochs)

    return objective
