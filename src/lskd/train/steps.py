"""Knowledge distillation step (docs/recipes.md#kd-loss): frozen teacher, online, same
augmented batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lskd.objectives.kd import kd_loss
from lskd.objectives.ls import ls_cross_entropy
from lskd.train.engine import StepLoss


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


def teacher_step(alpha: float) -> StepLoss:
    """Teacher objective: LS cross-entropy, factor `alpha` (docs/recipes.md#losses)."""

    def step(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = model(x)
        return ls_cross_entropy(logits, y, alpha), logits

    return step


def student_step(teacher: FrozenTeacher, T: float) -> StepLoss:
    """Student objective: T^2 * KL at temperature T; no hard-label term (y unused)."""

    def step(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = model(x)
        return kd_loss(logits, teacher(x), T), logits

    return step
