"""Shen et al.'s stability metric of erased information (Shen et al. 2021, Eq. (2)),
computed directly from a matrix of softmax outputs.

    S = 1 - (1/K) * sum_c (1/n_c) * sum_{i in class c} ||p_i - pbar_c||^2

p_i = softmax output (a probability vector over ALL classes, T = 1) of image i, pbar_c
= mean of p_i over class c, n_c = number of images of class c, K = number of classes
that have at least one image (a class without images has no mean and is left out).
The inner term is the mean squared distance to the class mean, E||p||^2 - ||pbar||^2
<= 1 - ||pbar||^2 < 1, so 0 < S <= 1, with S = 1 exactly when every class's outputs are
identical. Shen et al.'s Table 1 reports ``1 - S``.

The training jobs compute S at evaluation time over every image of the evaluated
split, streaming per-class sums on the device (``lskd.train.stability_sums``), and
record it in each run's ``metrics.json`` (``stability``, ``one_minus_stability``); this
module is the direct formula the streaming sums are tested against.
"""

from __future__ import annotations

import numpy as np

from lskd.analysis.checks import check_rows_and_labels
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
    check_rows_and_labels(probs, labels, "probs")
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


def stability(probs: np.ndarray, labels: np.ndarray) -> float:
    """Shen et al.'s stability S of softmax outputs (module docstring).

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
