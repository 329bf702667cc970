"""Projection of docs/visualisation.md (Algorithm 1) on synthetic features with known
geometry."""

from pathlib import Path

import numpy as np
import pytest

from lskd.analysis.projection import (
    INPUT_KEYS,
    OUTPUT_KEYS,
    project,
    project_file,
    template_basis,
)

D = 5
N_PER_CLASS = 40
CLASS_NAMES = np.array(["miniature_poodle", "standard_poodle", "submarine"])


def _pairwise(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)


def _classifier(seed: int = 0, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A full final layer: weight (n_classes, D), bias (n_classes,), |bias| >= 0.5."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(n_classes, D))
    bias = rng.uniform(0.5, 1.5, n_classes) * rng.choice([-1, 1], n_classes)
    return weight, bias


def _planar_features(
    weight: np.ndarray, bias: np.ndarray, n_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points whose (D+1)-d augmented vectors lie in one known 2-D affine plane.

    Cluster k sits around p_k = [w_k | b_k] / b_k (a template scaled so that its
    last coordinate is 1): an augmented point sum_k lam_k p_k with sum_k lam_k = 1
    lies in the template span and keeps its last coordinate 1. Noise is added only
    in the 2 directions orthogonal to the span and to the bias coordinate, so it
    vanishes on projection. Returns (features, labels, in-plane augmented points).
    """
    rng = np.random.default_rng(seed)
    templates = np.hstack([weight, bias[:, None]])
    centres = templates / bias[:, None]
    labels = np.repeat(np.arange(3), n_per_class)
    lam = np.eye(3)[labels] + rng.normal(scale=0.05, size=(labels.size, 3))
    lam[:, 2] = 1.0 - lam[:, 0] - lam[:, 1]
    in_plane = lam @ centres
    constraints = np.vstack([templates, np.eye(D + 1)[D]])
    orthogonal = np.linalg.svd(constraints)[2][4:]  # 2 x (D+1), last coordinate 0
    noise = rng.normal(scale=3.0, size=(labels.size, 2)) @ orthogonal
    augmented = in_plane + noise
    assert np.allclose(augmented[:, D], 1.0)
    return augmented[:, :D].astype(np.float32), labels, in_plane


def _penultimate(classes=(3, 5, 8), bias_rows=None, seed: int = 1) -> dict:
    """Penultimate dict for 3 classes of a 10-class layer; features in-plane."""
    weight, bias = _classifier()
    classes = np.array(classes)
    rows = classes if bias_rows is None else np.array(bias_rows)
    feats, labels, _ = _planar_features(weight[classes], bias[classes], 40, seed)
    test_feats, test_labels, _ = _planar_features(
        weight[classes], bias[classes], 10, seed + 100
    )
    return {
        "train_features": feats,
        "train_labels": labels,
        "test_features": test_feats,
        "test_labels": test_labels,
        "weight": weight[classes].astype(np.float32),
        "bias": bias[rows].astype(np.float32),
        "classes": classes,
        "class_names": CLASS_NAMES,
    }


def test_template_basis_is_orthonormal_and_spans_templates():
    weight, bias = _classifier()
    q = template_basis(weight[:3], bias[:3])
    templates = np.hstack([weight[:3], bias[:3, None]])
    assert q.shape == (D + 1, 3)
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(q @ (q.T @ templates.T), templates.T, atol=1e-12)


def test_template_basis_rejects_dependent_templates():
    weight, bias = _classifier()
    weight[2], bias[2] = weight[0] + weight[1], bias[0] + bias[1]
    with pytest.raises(ValueError, match="linearly dependent"):
        template_basis(weight[:3], bias[:3])


def test_planar_geometry_is_preserved():
    weight, bias = _classifier()
    classes = np.array([3, 5, 8])
    feats, labels, in_plane = _planar_features(
        weight[classes], bias[classes], N_PER_CLASS, seed=2
    )
    data = _penultimate()
    data.update(train_features=feats, train_labels=labels)
    out = project(data)
    # All augmented points lie in a 2-D affine plane inside the template span and
    # the noise is orthogonal to it, so the projection + PCA(2) is an isometry.
    np.testing.assert_allclose(
        _pairwise(out["train_2d"]), _pairwise(in_plane), atol=1e-4
    )
    expected_centroids = np.stack([in_plane[labels == k].mean(0) for k in range(3)])
    np.testing.assert_allclose(
        _pairwise(out["train_centroids_2d"]), _pairwise(expected_centroids), atol=1e-4
    )
    assert out["explained_variance_ratio"].sum() == pytest.approx(1.0, abs=1e-9)
    assert out["explained_variance_ratio"][0] >= out["explained_variance_ratio"][1]


def test_centroids_are_class_means_of_projected_points():
    rng = np.random.default_rng(3)
    data = _penultimate()
    data["train_features"] = rng.normal(size=data["train_features"].shape)
    data["test_features"] = rng.normal(size=data["test_features"].shape)
    out = project(data)
    for split in ("train", "test"):
        points, labels = out[f"{split}_2d"], out[f"{split}_labels"]
        means = np.stack([points[labels == k].mean(0) for k in range(3)])
        np.testing.assert_allclose(out[f"{split}_centroids_2d"], means, atol=1e-9)


def test_matching_bias_rows_matter():
    """The official script's bias-index bug is detectable
    (docs/official-code.md#visualisation-bias-indices).

    Features lie in the span of the templates with the matching biases, so the
    projection keeps their distances; templates built with the biases of rows
    0, 1, 2 span another subspace and distort them.
    """
    weight, bias = _classifier()
    classes = np.array([3, 5, 8])
    feats, labels, in_plane = _planar_features(
        weight[classes], bias[classes], N_PER_CLASS, seed=4
    )
    expected = _pairwise(in_plane)
    distances = {}
    for name, rows in {"matching": classes, "official_bug": [0, 1, 2]}.items():
        data = _penultimate(bias_rows=rows)
        data.update(train_features=feats, train_labels=labels)
        distances[name] = _pairwise(project(data)["train_2d"])
    np.testing.assert_allclose(distances["matching"], expected, atol=1e-4)
    assert np.abs(distances["official_bug"] - expected).max() > 0.1


def test_changing_one_bias_changes_the_projection():
    data = _penultimate()
    before = _pairwise(project(data)["train_2d"])
    data["bias"] = data["bias"].copy()
    data["bias"][2] += 1.0
    after = _pairwise(project(data)["train_2d"])
    assert not np.allclose(before, after, atol=1e-3)


def test_train_and_test_share_one_pca():
    data = _penultimate()
    rng = np.random.default_rng(5)
    data["train_features"] = rng.normal(size=data["train_features"].shape)
    data["test_features"] = data["train_features"][::2]
    data["test_labels"] = data["train_labels"][::2]
    out = project(data)
    np.testing.assert_allclose(out["test_2d"], out["train_2d"][::2], atol=1e-9)
    np.testing.assert_array_equal(out["test_labels"], data["train_labels"][::2])


def test_project_file_round_trip(tmp_path: Path):
    data = _penultimate()
    src = tmp_path / "penultimate.npz"
    np.savez(src, **data)
    out_path = tmp_path / "sub" / "projection.npz"
    project_file(src, out_path)
    expected = project(data)
    with np.load(out_path, allow_pickle=False) as saved:
        assert sorted(saved.files) == sorted(OUTPUT_KEYS)
        for key in OUTPUT_KEYS:
            np.testing.assert_array_equal(saved[key], expected[key])
    assert sorted(p.name for p in out_path.parent.iterdir()) == ["projection.npz"]


def _drop(data: dict, key: str) -> dict:
    return {k: v for k, v in data.items() if k != key}


@pytest.mark.parametrize(
    ("key", "mutate"),
    [
        ("bias", lambda d: _drop(d, "bias")),
        ("class_names", lambda d: _drop(d, "class_names")),
        ("weight", lambda d: {**d, "weight": np.zeros((3, D + 1))}),
        ("bias", lambda d: {**d, "bias": np.zeros(4)}),
        ("test_features", lambda d: {**d, "test_features": np.zeros((30, D - 1))}),
        ("train_labels", lambda d: {**d, "train_labels": d["train_labels"][1:]}),
        ("train_labels", lambda d: {**d, "train_labels": d["train_labels"] + 1}),
        (
            "test_labels",
            lambda d: {**d, "test_labels": np.zeros_like(d["test_labels"])},
        ),
    ],
)
def test_bad_input_file_names_file_and_key(tmp_path: Path, key: str, mutate):
    src = tmp_path / "bad_penultimate.npz"
    np.savez(src, **mutate(_penultimate()))
    out_path = tmp_path / "projection.npz"
    with pytest.raises(ValueError, match=rf"bad_penultimate\.npz: .*'{key}'"):
        project_file(src, out_path)
    assert not out_path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_penultimate.npz"]


def test_missing_or_unreadable_file(tmp_path: Path):
    with pytest.raises(ValueError, match=r"nope\.npz: file not found"):
        project_file(tmp_path / "nope.npz", tmp_path / "out.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_text("not an npz")
    with pytest.raises(ValueError, match=r"garbage\.npz: not a readable"):
        project_file(garbage, tmp_path / "out.npz")


def test_input_keys_cover_everything_project_reads():
    data = _penultimate()
    assert set(data) == set(INPUT_KEYS)
    for key in INPUT_KEYS:
        with pytest.raises(ValueError, match=f"missing key '{key}'"):
            project(_drop(data, key))
