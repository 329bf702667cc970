"""Input checks shared by the per-sample metrics (diffusion, stability)."""

from __future__ import annotations

import numpy as np

from lskd.errors import DataError


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
