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

In the pipeline (``stability_of_penultimate``) S is computed per run on the softmax of
the full logits (all classes, T = 1) of the images that ``lskd extract`` took for the
projection (the three classes of the visualization subset), per split; it lands in the
run's ``diffusion.json`` and in the diffusion table as ``stability_rec_<split>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lskd.analysis.checks import check_rows_and_labels
from lskd.analysis.projection import load_npz
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


NPZ_KEYS = ("train_logits", "train_labels", "test_logits", "test_labels")
DEFINITION = (
    "RECONSTRUCTED Shen et al. stability (formula NOT FOUND, PAPER.md §6): "
    "S = 1 - mean_k mean_{i in k} ||p_i - pbar_k||^2 over the softmax outputs p_i "
    "(all classes, T = 1) of the projection's images"
)


def stability_of_penultimate(penultimate_npz: Path) -> dict[str, Any]:
    """``stability_reconstructed`` per split of one run's ``penultimate.npz``."""
    arrays = load_npz(Path(penultimate_npz), NPZ_KEYS)
    result: dict[str, Any] = {"definition": DEFINITION}
    for split in ("train", "test"):
        try:
            result[split] = stability_reconstructed(
                softmax(arrays[f"{split}_logits"]), arrays[f"{split}_labels"]
            )
        except DataError as err:
            raise DataError(f"{penultimate_npz}: {split} split: {err}") from None
    return result
