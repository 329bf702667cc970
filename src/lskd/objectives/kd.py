"""Student objective `kd`: Hinton et al.'s (2015) distillation loss at temperature T,
as the paper's code trains its students (docs/recipes.md#kd-loss)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lskd.objectives.method import Objective, Param

if TYPE_CHECKING:
    from torch import Tensor


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, T: float) -> Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), summed over classes, batch mean.

    Both logits are divided by T and the T^2 factor is always applied. The teacher
    distribution is a fixed target: gradients reach the student logits only.
    """
    import torch.nn.functional as F

    if T <= 0:
        raise ValueError(f"T must be > 0, got {T}")
    log_p_s = F.log_softmax(student_logits.float() / T, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / T, dim=-1)
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    return kl * (T * T)


# The hard-label term a KD objective may have, off by default (the paper's students
# never see a label): mixed, (1 - w) * KD + w * CE, or added, KD + w * CE.
MIXED_HARD_WEIGHT = Param(
    "hard_weight",
    float,
    0.0,
    "h",
    "hard",
    "CE weight: (1 - w) KD + w CE",
    0.0,
    1.0,
    True,
)
ADDED_HARD_WEIGHT = Param(
    "hard_weight", float, 0.0, "h", "hard", "CE weight: KD + w CE", 0.0, None, True
)


def with_hard_labels(
    kd: Tensor, student: Tensor, y: Tensor, weight: float, mixed: bool = True
) -> Tensor:
    """``kd`` with a hard-label cross-entropy of ``weight``: (1 - weight) * kd + weight
    * CE(student, y) when ``mixed``, kd + weight * CE otherwise; exactly ``kd`` when
    weight is 0."""
    if weight == 0:
        return kd
    import torch.nn.functional as F

    ce = F.cross_entropy(student.float(), y)
    return (1 - weight) * kd + weight * ce if mixed else kd + weight * ce


class KD(Objective):
    """`kd_loss`, mixed with a hard-label cross-entropy of weight `hard_weight`
    (0 in the paper's code: its students never see a label). Its path spelling is
    empty for the default, so students keep the paths of runs made before objectives
    were choices (`..._T3_s0`)."""

    name = "kd"
    title = "KD"
    params = (MIXED_HARD_WEIGHT,)

    @classmethod
    def token(cls, values):
        return "" if values["hard_weight"] == 0 else super().token(values)

    @classmethod
    def label(cls, values):
        return "KD" if values["hard_weight"] == 0 else super().label(values)

    def loss(self, student, teacher, y, T, epoch, epochs):
        kd = kd_loss(student, teacher, T)
        return with_hard_labels(kd, student, y, self.p["hard_weight"])
