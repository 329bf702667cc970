"""Loss functions of docs/recipes.md#losses, as pure functions of tensors.

Both losses upcast the logits to float32 before any softmax, so they stay exact when the
forward pass ran in bf16 (docs/contributing.md#losses-in-float32: bf16 KD at T=64 is
23 % off, float32 1e-5).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def ls_cross_entropy(logits: Tensor, target: Tensor, alpha: float) -> Tensor:
    """Label-smoothing cross-entropy, batch mean (docs/recipes.md#losses).

    The target is y_LS = (1 - alpha) * onehot(y) + alpha / K, so the loss is (1 - alpha)
    * (-log p_y) + alpha * mean_k(-log p_k). alpha = 0 is plain CE.
    """
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    return F.cross_entropy(logits.float(), target, label_smoothing=alpha)


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


def topk_correct(
    logits: Tensor, target: Tensor, ks: tuple[int, ...] = (1, 5)
) -> list[int]:
    """Number of samples whose label is among the top-k logits, for each k."""
    maxk = min(max(ks), logits.shape[-1])
    pred = logits.topk(maxk, dim=-1).indices
    hit = pred.eq(target.unsqueeze(-1))
    return [int(hit[:, : min(k, maxk)].any(dim=-1).sum()) for k in ks]


__all__ = ["kd_loss", "ls_cross_entropy", "topk_correct"]
