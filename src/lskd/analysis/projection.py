"""Penultimate-layer projection onto the span of three class templates (the paper's
Algorithm 1, docs/visualisation.md#algorithm-1).

Each template is a row of the final Linear layer with its *matching* bias appended (the
official script takes the biases of classes 0, 1, 2 instead:
docs/official-code.md#visualisation-bias-indices). Features get a constant 1 appended so
the bias acts as one more template coordinate. Features and class centroids are
projected on an orthonormal basis of the three templates (reduced QR), then reduced to
2-D with one PCA fitted on the training projections plus the three projected training
centroids; the same PCA transforms the test projections and centroids.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lskd.atomic import atomic_path
from lskd.errors import DataError

log = logging.getLogger(__name__)

N_CLASSES = 3
INPUT_KEYS = (
    "train_features",
    "train_labels",
    "test_features",
    "test_labels",
    "weight",
    "bias",
    "classes",
    "class_names",
)
OUTPUT_KEYS = (
    "train_2d",
    "test_2d",
    "train_labels",
    "test_labels",
    "train_centroids_2d",
    "test_centroids_2d",
    "explained_variance_ratio",
    "classes",
    "class_names",
)


def _check_shape(arr: np.ndarray, key: str, expected: tuple, source: str) -> None:
    """Raise if ``arr`` does not have ``expected`` shape (``None`` = any size)."""
    ok = arr.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, arr.shape, strict=False)
    )
    if not ok:
        shown = tuple("*" if e is None else e for e in expected)
        raise DataError(
            f"{source}: key '{key}' has shape {arr.shape}, expected {shown}"
        )


def _check_labels(labels: np.ndarray, key: str, source: str) -> None:
    """Labels must be integers in {0, 1, 2}, each class present at least once."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: key '{key}' must be integers, got {labels.dtype}")
    present = set(np.unique(labels).tolist())
    if not present <= set(range(N_CLASSES)):
        raise DataError(f"{source}: key '{key}' has labels outside {{0, 1, 2}}")
    if present != set(range(N_CLASSES)):
        missing = sorted(set(range(N_CLASSES)) - present)
        raise DataError(f"{source}: key '{key}' has no sample of class {missing}")


def validate(penultimate: Mapping[str, np.ndarray], source: str) -> None:
    """Check keys, shapes, label values and finiteness; errors name ``source``."""
    for key in INPUT_KEYS:
        if key not in penultimate:
            raise DataError(f"{source}: missing key '{key}'")
    arr = {key: np.asarray(penultimate[key]) for key in INPUT_KEYS}
    _check_shape(arr["train_features"], "train_features", (None, None), source)
    n, d = arr["train_features"].shape
    _check_shape(arr["test_features"], "test_features", (None, d), source)
    m = arr["test_features"].shape[0]
    _check_shape(arr["train_labels"], "train_labels", (n,), source)
    _check_shape(arr["test_labels"], "test_labels", (m,), source)
    _check_shape(arr["weight"], "weight", (N_CLASSES, d), source)
    for key in ("bias", "classes", "class_names"):
        _check_shape(arr[key], key, (N_CLASSES,), source)
    _check_labels(arr["train_labels"], "train_labels", source)
    _check_labels(arr["test_labels"], "test_labels", source)
    for key in ("train_features", "test_features", "weight", "bias"):
        if not np.all(np.isfinite(arr[key])):
            raise DataError(f"{source}: key '{key}' has non-finite values")
    if arr["class_names"].dtype.kind != "U":
        raise DataError(f"{source}: key 'class_names' must be a unicode str array")


def augment(features: np.ndarray) -> np.ndarray:
    """Append a constant 1 to every feature vector: (N, D) -> (N, D + 1), float64."""
    features = np.asarray(features, dtype=np.float64)
    return np.hstack([features, np.ones((features.shape[0], 1))])


def template_basis(weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Orthonormal basis Q, shape (D + 1, 3), of the span of the rows of [w | b]."""
    templates = np.hstack(
        [np.asarray(weight, np.float64), np.asarray(bias, np.float64)[:, None]]
    )
    q, r = np.linalg.qr(templates.T, mode="reduced")
    diag = np.abs(np.diag(r))
    if diag.min() <= 1e-10 * max(diag.max(), 1e-300):
        raise DataError("templates [weight | bias] are linearly dependent (rank < 3)")
    return q


def class_centroids(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean feature vector of each class 0, 1, 2 -> (3, features.shape[1])."""
    return np.stack([features[labels == k].mean(axis=0) for k in range(N_CLASSES)])


def project(penultimate: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Project penultimate features of three classes to 2-D (docs/visualisation.md).

    Input keys: ``INPUT_KEYS`` (see module docstring); output keys: ``OUTPUT_KEYS``.
    """
    validate(penultimate, source="penultimate")
    return _project(penultimate)


def _project(penultimate: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``project`` on already validated input."""
    q = template_basis(penultimate["weight"], penultimate["bias"])
    train_labels = np.asarray(penultimate["train_labels"])
    test_labels = np.asarray(penultimate["test_labels"])
    train_x = augment(penultimate["train_features"])
    test_x = augment(penultimate["test_features"])
    train_3d = train_x @ q
    test_3d = test_x @ q
    train_c3d = class_centroids(train_x, train_labels) @ q
    test_c3d = class_centroids(test_x, test_labels) @ q
    from sklearn.decomposition import PCA  # 2 s to import: only where it is used

    pca = PCA(n_components=2).fit(np.vstack([train_3d, train_c3d]))
    log.debug("PCA explained variance ratio %s", pca.explained_variance_ratio_)
    return {
        "train_2d": pca.transform(train_3d),
        "test_2d": pca.transform(test_3d),
        "train_labels": train_labels,
        "test_labels": test_labels,
        "train_centroids_2d": pca.transform(train_c3d),
        "test_centroids_2d": pca.transform(test_c3d),
        "explained_variance_ratio": pca.explained_variance_ratio_.copy(),
        "classes": np.asarray(penultimate["classes"]),
        "class_names": np.asarray(penultimate["class_names"]),
    }


def load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Load ``keys`` from an ``.npz`` without pickle; errors name the file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            files = set(data.files)
            arrays = {key: data[key] for key in keys if key in files}
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from None
    for key in keys:
        if key not in arrays:
            raise DataError(f"{path}: missing key '{key}'")
    return arrays


def project_file(penultimate_npz: Path, out_npz: Path) -> None:
    """Read penultimate features from ``penultimate_npz``; write the projection."""
    penultimate_npz, out_npz = Path(penultimate_npz), Path(out_npz)
    arrays = load_npz(penultimate_npz, INPUT_KEYS)
    validate(arrays, source=str(penultimate_npz))
    result = _project(arrays)
    with atomic_path(out_npz) as tmp, tmp.open("wb") as handle:
        np.savez(handle, **result)
    log.info(
        "wrote %s (explained variance %.3f, %.3f)",
        out_npz,
        *result["explained_variance_ratio"],
    )
