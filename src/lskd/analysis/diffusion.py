"""Diffusion metrics of projected penultimate features: OUR definitions, not the
paper's.

The paper shows "systematic diffusion" only as pictures
(docs/visualisation.md#what-the-figures-show); a numeric diffusion score is not stated
in the paper or its official code (docs/visualisation.md#diffusion-metrics). The
numbers below are lskd's own way to put the pictures into numbers. Never cite them as
the paper's.

Space. The metrics are computed on the 2-D PCA coordinates that
``projection.project_file`` writes (``train_2d`` / ``test_2d``): these are the points
the figures draw (docs/visualisation.md#the-official-script, step 9), so the numbers
describe what the reader sees, and the 3-D template-span coordinates are not stored.
Every metric is invariant to the PCA's centring and rotation; it is not invariant to the
dropped third PCA axis, which holds the least variance of the training points. The
functions accept points of any dimension d >= 2, so the 3-D template-span coordinates
can be passed as well.

Definitions, for the points x_i of class k (n_k >= 2 of them), mean c_k and sample
covariance C_k = (1 / (n_k - 1)) * sum_i (x_i - c_k)(x_i - c_k)^T with eigenvalues
lambda_1 >= ... >= lambda_d:

- ``spread_k = trace(C_k) = sum_j lambda_j`` (total within-class variance);
- ``major_k = lambda_1`` (variance along the class's principal direction), and
  ``minor_k = lambda_d``;
- ``anisotropy_k = lambda_1 / lambda_d >= 1``: 1 for an isotropic cluster, large when
  the class diffuses along one direction ("systematic" diffusion);
- between the two semantically similar classes 0 and 1 (e.g. the two poodles):
  ``separation = ||c_0 - c_1|| / sqrt((spread_0 + spread_1) / 2)``, a Fisher-like index
  (centroid distance over the pooled root-mean-square spread). ``centroid_distance``
  and ``pooled_std`` are reported beside it.

Units. Each model gets its own PCA, so ``spread``, ``major`` and ``minor`` are in that
model's feature units and compare across models only as far as feature scales do;
``anisotropy`` and ``separation`` are scale-free.

A class with fewer than 2 points raises ``DataError``. A collapsed class is a result,
not an error: where its points lie on a line (smallest eigenvalue zero) its
``anisotropy`` is undefined (``null`` in diffusion.json, NaN in the tables, which leave
it out of their intervals) and ``degenerate`` names the collapse; where they coincide
(spread zero) ``separation`` is undefined too when both similar classes collapsed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from lskd.analysis.projection import load_npz
from lskd.atomic import write_json
from lskd.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
SIMILAR_PAIR = (0, 1)
NPZ_KEYS = ("train_2d", "train_labels", "test_2d", "test_labels", "class_names")
DEFINITION = (
    "lskd's own diffusion metrics (not the paper's, "
    "docs/visualisation.md#diffusion-metrics): per class, "
    "spread = trace of the sample covariance, major/minor = its largest/smallest "
    "eigenvalue, anisotropy = major/minor; separation = ||c_0 - c_1|| / "
    "sqrt((spread_0 + spread_1)/2) between classes 0 and 1"
)
# A smallest eigenvalue below this fraction of the largest counts as zero.
_RELATIVE_ZERO = 1e-12


def check_rows_and_labels(
    values: np.ndarray, labels: np.ndarray, name: str, min_columns: int = 2
) -> None:
    """``values`` is (n >= 1, d >= min_columns) and finite; ``labels`` is (n,) integers.

    Raises ``DataError`` naming ``name`` (e.g. "points", "probs") and what is wrong.
    """
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] < min_columns:
        raise DataError(
            f"{name} must have shape (n >= 1, d >= {min_columns}), got {values.shape}"
        )
    if labels.shape != (values.shape[0],):
        raise DataError(
            f"labels have shape {labels.shape}, expected ({values.shape[0]},)"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be integers, got {labels.dtype}")
    if not np.all(np.isfinite(values)):
        raise DataError(f"{name} have non-finite values")


def _check_inputs(points: np.ndarray, labels: np.ndarray) -> None:
    """Shapes, integer labels, finiteness; raise ``DataError`` naming the problem."""
    check_rows_and_labels(points, labels, "points")
    missing = [k for k in SIMILAR_PAIR if not np.any(labels == k)]
    if missing:
        raise DataError(f"no point of class {missing} (separation needs classes 0, 1)")


def class_metrics(points: np.ndarray, label: int) -> dict[str, Any]:
    """``n``, ``spread``, ``major``, ``minor``, ``anisotropy`` (None where collapsed,
    with ``degenerate`` saying how) of one class's points."""
    n = points.shape[0]
    if n < 2:
        raise DataError(f"class {label} has {n} point(s); spread needs at least 2")
    cov = np.cov(points, rowvar=False, ddof=1)
    eig = np.linalg.eigvalsh(cov)  # ascending
    minor, major = float(eig[0]), float(eig[-1])
    values: dict[str, Any] = {
        "n": int(n),
        "spread": float(np.trace(cov)),
        "major": major,
        "minor": minor,
        "anisotropy": None,
    }
    if major <= 0.0:
        values["degenerate"] = "all points identical"
    elif minor <= _RELATIVE_ZERO * major:
        values["degenerate"] = "points on a line: no finite anisotropy"
    else:
        values["anisotropy"] = major / minor
    return values


def diffusion_metrics(points: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Per-class spread/major/minor/anisotropy and the class-0/1 separation.

    Returns ``{"classes": {"<label>": class_metrics}, "centroid_distance",
    "pooled_std", "separation"}``; formulas in the module docstring.
    """
    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels)
    _check_inputs(points, labels)
    per_class = {
        str(k): class_metrics(points[labels == k], int(k))
        for k in np.unique(labels).tolist()
    }
    a, b = SIMILAR_PAIR
    distance = float(
        np.linalg.norm(points[labels == a].mean(axis=0) - points[labels == b].mean(0))
    )
    pooled = float(
        np.sqrt((per_class[str(a)]["spread"] + per_class[str(b)]["spread"]) / 2)
    )
    for label, values in per_class.items():
        if "degenerate" in values:
            log.warning("class %s collapsed: %s", label, values["degenerate"])
    return {
        "classes": per_class,
        "centroid_distance": distance,
        "pooled_std": pooled,
        "separation": distance / pooled if pooled > 0 else None,
    }


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """One level: ``spread_0``, ``anisotropy_1``, ..., ``separation``."""

    def number(value: Any) -> float:
        return float("nan") if value is None else float(value)  # undefined: NaN

    flat = {
        f"{name}_{label}": number(values[name])
        for label, values in metrics["classes"].items()
        for name in ("spread", "major", "minor", "anisotropy")
    }
    for name in ("centroid_distance", "pooled_std", "separation"):
        flat[name] = number(metrics[name])
    return flat


def _named(metrics: dict[str, Any], names: np.ndarray) -> dict[str, Any]:
    """Add each class's name (``class_names[label]``) to its entry."""
    for label, values in metrics["classes"].items():
        if int(label) < len(names):
            values["name"] = str(names[int(label)])
    return metrics


def diffusion_file(
    projection_npz: Path,
    out_json: Path,
    split: str = "train",
) -> dict[str, Any]:
    """Write ``diffusion.json`` for one run's projection. (Shen et al.'s stability
    is computed over the whole test split at evaluation time and lives in the run's
    ``metrics.json``: ``lskd.train.stability_sums``.)

    The top level holds the metrics of ``split`` (errors raise ``DataError`` naming the
    file); ``other_splits`` holds those of the other split, or ``{"error": ...}`` when
    that split is degenerate (e.g. a class with one test point).
    """
    projection_npz, out_json = Path(projection_npz), Path(out_json)
    if split not in SPLITS:
        raise DataError(f"split must be one of {list(SPLITS)}, got {split!r}")
    arrays = load_npz(projection_npz, NPZ_KEYS)
    names = arrays["class_names"]

    def compute(name: str) -> dict[str, Any]:
        try:
            return _named(
                diffusion_metrics(arrays[f"{name}_2d"], arrays[f"{name}_labels"]), names
            )
        except DataError as err:
            raise DataError(f"{projection_npz}: {name} split: {err}") from None

    result: dict[str, Any] = {
        "definition": DEFINITION,
        "space": "2-D PCA of the template-span projection (projection.npz)",
        "source": str(projection_npz),
        "split": split,
        **compute(split),
        "other_splits": {},
    }
    for other in SPLITS:
        if other == split:
            continue
        try:
            result["other_splits"][other] = compute(other)
        except DataError as err:
            log.warning("%s", err)
            result["other_splits"][other] = {"error": str(err)}
    write_json(out_json, result)
    log.info("wrote %s (separation %.3f)", out_json, result["separation"])
    return result
