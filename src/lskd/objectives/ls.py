"""Teacher regularizer `ls`: label-smoothing cross-entropy (Szegedy et al. 2016; the
teachers of Müller et al. 2019 and Chandrasegaran et al. 2022; docs/recipes.md#losses).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lskd.errors import ConfigError
from lskd.objectives.method import Param, Regularizer
from lskd.spelling import path_token

if TYPE_CHECKING:
    from torch import Tensor


def ls_cross_entropy(logits: Tensor, target: Tensor, alpha: float) -> Tensor:
    """Label-smoothing cross-entropy, batch mean (docs/recipes.md#losses).

    The target is y_LS = (1 - alpha) * onehot(y) + alpha / K, so the loss is (1 - alpha)
    * (-log p_y) + alpha * mean_k(-log p_k) = CE + alpha * (z_y - mean_k z_k). alpha = 0
    is plain CE.
    """
    import torch.nn.functional as F

    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    return F.cross_entropy(logits.float(), target, label_smoothing=alpha)


class LabelSmoothing(Regularizer):
    """`ls_cross_entropy` with factor alpha > 0 (alpha = 0 is `ce`)."""

    name = "ls"
    title = "LS"
    params = (
        Param("alpha", float, 0.1, "a", "α", "smoothing factor", low=0.0, high=0.999),
    )

    @classmethod
    def check(cls, values: dict[str, Any], where: str) -> None:
        if values["alpha"] == 0:
            raise ConfigError(f"{where}.alpha: must be > 0 (alpha = 0 is `ce`)")

    @classmethod
    def token(cls, values: dict[str, Any]) -> str:
        return f"a{path_token(values['alpha'])}"  # the spelling of earlier runs

    def loss(self, logits, y, epoch, epochs):
        return ls_cross_entropy(logits, y, self.p["alpha"])
