"""Teacher regularizer `maxsup`: Max Suppression (Zhou et al. 2025, Eq. (8) and the
official `losses.py`): cross-entropy plus lambda * (max_k z_k - mean_k z_k), batch mean.

Label smoothing is CE + alpha * (z_y - mean_k z_k) (`ls`); MaxSup penalises the largest
logit instead of the target's, which is the same on correctly classified images and
differs on the others, where LS would push the (wrong-class) top logit up relative to
the target. Their recipe ramps lambda linearly from 0.1 to 0.2 over training: `lam` at
the first epoch to `lam_end` at the last (constant `lam` when `lam_end` is unset).
"""

from __future__ import annotations

from lskd.objectives.method import Param, Regularizer
from lskd.spelling import label_text


def maxsup_weight(lam: float, lam_end: float | None, epoch: int, epochs: int) -> float:
    """lambda in epoch `epoch` (1-based) of `epochs`: linear from `lam` to `lam_end`."""
    if lam_end is None or epochs <= 1:
        return lam
    return lam + (lam_end - lam) * (epoch - 1) / (epochs - 1)


class MaxSup(Regularizer):
    name = "maxsup"
    title = "MaxSup"
    params = (
        Param("lam", float, 0.1, "l", "λ", "penalty weight (first epoch)", low=0.0),
        Param(
            "lam_end", float, None, "e", "λ end", "weight at the last epoch", low=0.0
        ),
    )

    @classmethod
    def label(cls, values):
        lam, end = values["lam"], values["lam_end"]
        ramp = "" if end is None else f"→{label_text(end)}"
        return f"MaxSup λ = {label_text(lam)}{ramp}"

    def loss(self, logits, y, epoch, epochs):
        import torch.nn.functional as F

        z = logits.float()
        lam = maxsup_weight(self.p["lam"], self.p["lam_end"], epoch, epochs)
        gap = z.max(dim=-1).values - z.mean(dim=-1)
        return F.cross_entropy(z, y) + lam * gap.mean()
