"""Top-k hits of a batch of logits."""

from __future__ import annotations

from torch import Tensor


def topk_hits(logits: Tensor, target: Tensor, ks: tuple[int, ...] = (1, 5)) -> Tensor:
    """Number of samples whose label is among the top-k logits, for each k, as an
    int64 tensor on the logits' device (no host sync)."""
    maxk = min(max(ks), logits.shape[-1])
    hit = logits.topk(maxk, dim=-1).indices.eq(target.unsqueeze(-1))
    return hit.cumsum(dim=-1)[:, [min(k, maxk) - 1 for k in ks]].sum(dim=0)
