"""RECONSTRUCTED stability metric of erased information (Shen et al., ICLR 2021).

Shen et al. measure "the degree of erased information in sample's representation"
with a stability metric whose exact formula was NOT FOUND (PAPER.md §6): only a
description was available (high when same-class samples give near-identical softmax
outputs). This module implements the UNVERIFIED reconstruction of PAPER.md §6, hence the
name ``stability_reconstructed``; replace it once Shen et al.'s Sec. 3 can be checked.

    S = 1 - (1/K) * sum_k (1/n_k) * sum_{i in class k} ||p_i - pbar_k||^2

p_i = softmax output (a probability vector) of sample i, pbar_k = mean of p_i over
class k, n_k = number of samples of class k, K = number of classes that have at least
one sample (classes without samples are left out of the mean). The inner term is the
mean squared distance to the class mean, E||p||^2 - ||pbar||^2 <= 1 - ||pbar||^2 < 1,
so 0 < S <= 1, with S = 1 exactly when every class's outputs are identical.
"""

from __future__ import annotations

import numpy as np

from lskd.errors import DataError

ROW_SUM_TOLERANCE = 1e-4


def softmax(logits: np.ndarray, T: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / T)`` in float64 (shifted by the row max)."""
    z = np.asarray(logits, dtype=np.float64) / T
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _check(probs: np.ndarray, labels: np.ndarray) -> None:
    """Rows are probability vectors (within 1e-4); labels are valid class indices."""
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] < 2:
        raise DataError(
            f"probs must have shape (n >= 1, classes >= 2), got {probs.shape}"
        )
    if labels.shape != (probs.shape[0],):
        raise DataError(
            f"labels have shape {labels.shape}, expected ({probs.shape[0]},)"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be integers, got {labels.dtype}")
    if not np.all(np.isfinite(probs)):
        raise DataError("probs have non-finite values")
    low = probs.min()
    if low < -ROW_SUM_TOLERANCE:
        raise DataError(f"probs have a negative entry ({low:g}): not probabilities")
    sums = probs.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > ROW_SUM_TOLERANCE:
        raise DataError(
            f"probs row {worst} sums to {sums[worst]:.6g}, not 1 (within "
            f"{ROW_SUM_TOLERANCE:g}): pass softmax outputs, not logits"
        )
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise DataError(
            f"labels must lie in [0, {probs.shape[1] - 1}], got "
            f"[{labels.min()}, {labels.max()}]"
        )


def stability_reconstructed(probs: np.ndarray, labels: np.ndarray) -> float:
    """Reconstructed Shen et al. stability S of softmax outputs (module docstring).

    ``probs``: (n, classes) rows summing to 1; ``labels``: (n,) integer classes.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    _check(probs, labels)
    spreads = []
    for k in np.unique(labels):
        p = probs[labels == k]
        spreads.append(float(np.mean(np.sum((p - p.mean(axis=0)) ** 2, axis=1))))
    return 1.0 - float(np.mean(spreads))
