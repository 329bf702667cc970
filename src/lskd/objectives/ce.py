"""Teacher regularizer `ce`: plain cross-entropy on the hard labels (no smoothing)."""

from __future__ import annotations

from typing import Any

from lskd.objectives.method import Regularizer


class CrossEntropy(Regularizer):
    """-log p_y, batch mean. Runs made before regularizers were choices spell it `a0`
    (label smoothing with alpha = 0), and so does this."""

    name = "ce"
    title = "CE"

    @classmethod
    def token(cls, values: dict[str, Any]) -> str:
        return "a0"

    def loss(self, logits, y, epoch, epochs):
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), y)
