"""Student objective `logit_std_kd`: KD on standardized logits (Sun et al., CVPR 2024,
"Logit Standardization in Knowledge Distillation", Eq. (9) and Algorithm 1).

Each logit vector is z-scored, Z(z) = (z - mean(z)) / (1e-7 + std(z)) with the unbiased
std, for teacher and student alike; then T^2 * KL(softmax(Z(t)/T) || softmax(Z(s)/T)),
batch mean. The student need not match the teacher's logit range, only its relations
between classes, and T acts on a unit-variance scale. Their CIFAR-100 recipe weighs
this term 9 beside a hard-label CE of weight 0.1 (base temperature 2); here the KD
weight is `kd_weight` and the CE weight `hard_weight` (0 by default, like `kd`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lskd.objectives.kd import ADDED_HARD_WEIGHT, kd_loss, with_hard_labels
from lskd.objectives.method import Objective, Param

if TYPE_CHECKING:
    from torch import Tensor

EPS = 1e-7  # the authors' constant


def standardize(logits: Tensor) -> Tensor:
    """(z - mean z) / (EPS + std z) per row, unbiased std, in float32."""
    z = logits.float()
    return (z - z.mean(dim=-1, keepdim=True)) / (EPS + z.std(dim=-1, keepdim=True))


class LogitStdKD(Objective):
    name = "logit_std_kd"
    title = "logit-std KD"
    slug = "lskd"
    params = (
        Param(
            "kd_weight", float, 1.0, "k", "w", "weight of the KD term", 0.0, quiet=True
        ),
        ADDED_HARD_WEIGHT,
    )

    def loss(self, student, teacher, y, T, epoch, epochs):
        kd = self.p["kd_weight"] * kd_loss(
            standardize(student), standardize(teacher.detach()), T
        )
        return with_hard_labels(kd, student, y, self.p["hard_weight"], mixed=False)
