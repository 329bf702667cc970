"""Teacher objective: label-smoothing cross-entropy (docs/recipes.md#losses)."""

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
