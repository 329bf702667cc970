"""Shen et al.'s stability metric (Shen et al. 2021, Eq. (2)), streamed at evaluation.

    S = 1 - (1/K) Σ_c (1/n_c) Σ_{i in c} ||p_i - p̄_c||²

p_i = softmax of the model's logits over ALL classes at T = 1, p̄_c = mean of p_i over
the n_c images of class c, K = the classes; over ALL images of the evaluated split.
Shen et al.'s Table 1 reports ``1 - S`` (the mean intra-class variance of the softmax
outputs: lower means label smoothing erased more of it).

Streaming form: with per-class sums ``P_c = Σ_i p_i`` (a K×K matrix over all
classes), ``Q_c = Σ_i ||p_i||²`` and counts ``n_c``,

    (1/n_c) Σ_i ||p_i - p̄_c||² = Q_c / n_c - ||P_c / n_c||²,

so one pass over the split suffices: softmax and sums in float64 on the device
(``index_add_``, no host sync per batch), and data-parallel ranks add their sums with
one all-reduce, as ``distributed.all_sum`` does for the accuracy counts. A class with
no image in the split has no mean and is left out of the average (K = the classes
present). ``stability`` in tests/test_stability.py is the same metric computed directly
from a matrix of probabilities.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lskd.train.distributed import Context, all_max, all_sum_tensor


class StabilitySums:
    """Per-class sums of softmax outputs for ``S`` (module docstring)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.sums: Tensor | None = None  # (K + 2, K): P, then the Q and n rows

    def _allocate(self, k: int) -> None:
        self.sums = torch.zeros(k + 2, k, dtype=torch.float64, device=self.device)

    def add(self, logits: Tensor, labels: Tensor) -> None:
        """Add one batch: ``logits`` (B, K) of any float dtype, ``labels`` (B,)."""
        k = logits.shape[-1]
        if self.sums is None:
            self._allocate(k)
        p = torch.softmax(logits.detach().double(), dim=-1)
        self.sums[:k].index_add_(0, labels, p)
        self.sums[k].index_add_(0, labels, (p * p).sum(dim=-1))
        self.sums[k + 1].index_add_(0, labels, torch.ones_like(p[:, 0]))

    def reduce(self, ctx: Context) -> None:
        """Sum over data-parallel ranks (a rank that saw no batch learns K first)."""
        if ctx.world == 1:
            return
        k = all_max(0 if self.sums is None else self.sums.shape[1], ctx)
        if self.sums is None:
            self._allocate(k)
        all_sum_tensor(self.sums, ctx)

    def value(self) -> float:
        """``S`` of everything added (and reduced) so far; NaN before any batch."""
        if self.sums is None:
            return float("nan")
        k = self.sums.shape[1]
        sums, squares, counts = self.sums[:k], self.sums[k], self.sums[k + 1]
        present = counts > 0
        n = counts[present]
        mean = sums[present] / n[:, None]
        spread = squares[present] / n - (mean * mean).sum(dim=-1)
        return float(1.0 - spread.mean())


def stability_keys(stability: float) -> dict[str, float]:
    """metrics.json's ``stability`` (Shen et al. 2021, Eq. (2), test split, reported
    epoch) and ``one_minus_stability`` (``1 - S``, the number their Table 1 shows)."""
    return {"stability": stability, "one_minus_stability": 1.0 - stability}
