"""Top-k hits of a batch of logits."""

from __future__ import annotations

from torch import Tensor


def topk_correct(
    logits: Tensor, target: Tensor, ks: tuple[int, ...] = (1, 5)
) -> list[int]:
    """Number of samples whose label is among the top-k logits, for each k."""
    maxk = min(max(ks), logits.shape[-1])
    pred = logits.topk(maxk, dim=-1).indices
    hit = pred.eq(target.unsqueeze(-1))
    return [int(hit[:, : min(k, maxk)].any(dim=-1).sum()) for k in ks]
