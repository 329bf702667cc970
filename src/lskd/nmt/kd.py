"""Word-level KD loss of the NMT students (docs/recipes.md#nmt-word-level-kd-loss), a
pure function of tensors.

Per non-pad target token, with student logits s, teacher logits t over a vocabulary of
V words, temperature T, KD weight a and label-smoothing ε of the hard-label term:

    L = a·T²·Σ_j q_j·(−log p^T_j) + (1 − a)·[(1 − ε)·(−log p_y) + (ε/V)·Σ_v (−log p_v)]

q = softmax(t/T) over the whole vocabulary (``topk = 0``) or over the teacher's k
largest logits, renormalised on those k words (``topk = k``: RayeRen's recipe, k = 4),
and p^T = softmax(s/T), p = softmax(s) over the whole vocabulary. The loss is summed
over tokens. a = 1 is pure KD (the image students' loss, docs/recipes.md#kd-loss, up to
the teacher's entropy, a constant); a = 0 is the label-smoothed cross-entropy alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def teacher_topk(teacher_logits: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The teacher's k largest logits (float32, detached) and their word indices: all
    that the ``topk = k`` loss reads of the teacher, so a caller may compute it once
    per batch and reuse it."""
    values, index = teacher_logits.detach().float().topk(k, dim=-1)
    return values, index


def word_kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor | tuple[Tensor, Tensor],
    target: Tensor,
    T: float,
    kd_weight: float,
    label_smoothing: float,
    topk: int = 0,
    ignore_index: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(total loss, summed NLL of the targets, summed KD term without a·T²).

    Logits are ``[..., V]``, ``target`` is ``[...]``; with ``topk``, the teacher may
    also be given as `teacher_topk` of its logits. Positions whose target equals
    ``ignore_index`` (fairseq's pad) count nothing. Computed in float32.
    """
    if T <= 0:
        raise ValueError(f"T must be > 0, got {T}")
    if not 0 <= kd_weight <= 1 or not 0 <= label_smoothing < 1:
        raise ValueError("kd_weight must be in [0, 1] and label_smoothing in [0, 1)")
    s = student_logits.float().reshape(-1, student_logits.size(-1))
    if topk:
        if isinstance(teacher_logits, Tensor):
            teacher_logits = teacher_topk(teacher_logits, topk)
        values, index = (x.reshape(-1, topk) for x in teacher_logits)
    else:
        t = teacher_logits.float().reshape(-1, teacher_logits.size(-1)).detach()
    y = target.reshape(-1)
    if ignore_index is not None:
        keep = y != ignore_index
        s, y = s[keep], y[keep]
        if topk:
            values, index = values[keep], index[keep]
        else:
            t = t[keep]
    log_p_T = F.log_softmax(s / T, dim=-1)
    if topk:
        q = F.softmax(values / T, dim=-1)
        kd = -(q * log_p_T.gather(-1, index)).sum(-1)
    else:
        kd = -(F.softmax(t / T, dim=-1) * log_p_T).sum(-1)
    log_p = F.log_softmax(s, dim=-1)
    nll = -log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    label = (1 - label_smoothing) * nll - label_smoothing * log_p.mean(-1)
    loss = kd_weight * T * T * kd + (1 - kd_weight) * label
    return loss.sum(), nll.sum(), kd.sum()


def topk_mass(teacher_logits: Tensor, T: float, k: int) -> Tensor:
    """Mean share of softmax(t/T) that the k largest logits carry (how much of the
    teacher's distribution a top-k dump keeps)."""
    p = torch.softmax(teacher_logits.float() / T, dim=-1)
    return p.topk(k, dim=-1).values.sum(-1).mean()
