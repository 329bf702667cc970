"""Student objective: the KD loss at temperature T (docs/recipes.md#kd-loss)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, T: float) -> Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), summed over classes, batch mean.

    Exactly the student loss of docs/recipes.md#kd-loss: both logits are divided by T,
    there is no hard-label term, and the T^2 factor is always applied. Mixing with other
    terms, if ever wanted, happens outside this function. The teacher distribution is a
    fixed target: gradients reach the student logits only.
    """
    if T <= 0:
        raise ValueError(f"T must be > 0, got {T}")
    log_p_s = F.log_softmax(student_logits.float() / T, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / T, dim=-1)
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    return kl * (T * T)
