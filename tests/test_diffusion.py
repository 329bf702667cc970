"""Our diffusion metrics on synthetic 2-D clusters with known geometry."""

import json
import math

import numpy as np
import pytest

from lskd.analysis.diffusion import (
    class_metrics,
    diffusion_file,
    diffusion_metrics,
    flat_metrics,
)
from lskd.analysis.projection import project_file
from lskd.errors import DataError


def _exact_cluster(n: int, cov: np.ndarray, mean, seed: int) -> np.ndarray:
    """``n`` points whose sample mean and covariance (ddof 1) are exactly ``mean``
    and ``cov``: whiten a Gaussian sample, then colour it with cholesky(cov)."""
    z = np.random.default_rng(seed).standard_normal((n, cov.shape[0]))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False)).T)
    return z @ np.linalg.cholesky(cov).T + np.asarray(mean, dtype=float)


def _rotation(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def test_isotropic_and_elongated_clusters_exact():
    # class 0: isotropic, variance 0.25 per axis -> spread 0.5, anisotropy 1.
    # class 1: variances 9 and 1 rotated by 30 deg -> spread 10, major 9, minor 1,
    # anisotropy 9 (eigenvalues do not change under rotation).
    rot = _rotation(30.0)
    elongated = rot @ np.diag([9.0, 1.0]) @ rot.T
    points = np.vstack(
        [
            _exact_cluster(200, 0.25 * np.eye(2), [0, 0], seed=1),
            _exact_cluster(300, elongated, [5, 0], seed=2),
        ]
    )
    labels = np.repeat([0, 1], [200, 300])
    result = diffusion_metrics(points, labels)
    iso, elo = result["classes"]["0"], result["classes"]["1"]
    assert iso["n"] == 200 and elo["n"] == 300
    assert iso["spread"] == pytest.approx(0.5, rel=1e-9)
    assert iso["anisotropy"] == pytest.approx(1.0, rel=1e-9)
    assert elo["spread"] == pytest.approx(10.0, rel=1e-9)
    assert elo["major"] == pytest.approx(9.0, rel=1e-9)
    assert elo["minor"] == pytest.approx(1.0, rel=1e-9)
    assert elo["anisotropy"] == pytest.approx(9.0, rel=1e-9)
    # separation = 5 / sqrt((0.5 + 10) / 2) = 5 / sqrt(5.25) = 2.182179
    assert result["centroid_distance"] == pytest.approx(5.0, rel=1e-9)
    assert result["separation"] == pytest.approx(5.0 / math.sqrt(5.25), rel=1e-9)


def test_sampled_clusters_within_computed_tolerance():
    # Gaussian sample of n points with covariance diag(4, 1): the sample trace has
    # std sqrt(2 * tr(S^2) / (n - 1)) = sqrt(2 * 17 / (n - 1)); each eigenvalue has
    # relative std ~ sqrt(2 / (n - 1)), so the ratio ~ 2 / sqrt(n - 1). Allow 4 std.
    n = 5000
    rng = np.random.default_rng(7)
    iso = rng.standard_normal((n, 2))
    elo = rng.standard_normal((n, 2)) * [2.0, 1.0] @ _rotation(-50.0).T
    points = np.vstack([iso, elo + [10.0, 0.0]])
    labels = np.repeat([0, 1], n)
    result = diffusion_metrics(points, labels)
    rel = 2.0 / math.sqrt(n - 1)
    assert result["classes"]["0"]["anisotropy"] == pytest.approx(1.0, abs=4 * rel)
    assert result["classes"]["1"]["anisotropy"] == pytest.approx(4.0, rel=4 * rel)
    spread_tol = 4 * math.sqrt(2 * 17 / (n - 1))
    assert result["classes"]["1"]["spread"] == pytest.approx(5.0, abs=spread_tol)
    spread_tol_iso = 4 * math.sqrt(2 * 2 / (n - 1))
    assert result["classes"]["0"]["spread"] == pytest.approx(2.0, abs=spread_tol_iso)


def test_separation_of_two_clusters_at_known_distance():
    # Isotropic std 0.5 -> spread 2 * 0.25 = 0.5 each, pooled std sqrt(0.5) = 0.7071;
    # centroids 3 apart along (3, 4) / 5 -> separation = 3 / 0.7071 = 4.242641.
    cov = 0.25 * np.eye(2)
    offset = 3.0 * np.array([0.6, 0.8])
    points = np.vstack(
        [
            _exact_cluster(50, cov, [1.0, -2.0], seed=3),
            _exact_cluster(80, cov, np.array([1.0, -2.0]) + offset, seed=4),
            _exact_cluster(30, cov, [-4.0, 4.0], seed=5),  # class 2: not in the pair
        ]
    )
    labels = np.repeat([0, 1, 2], [50, 80, 30])
    result = diffusion_metrics(points, labels)
    assert result["pooled_std"] == pytest.approx(math.sqrt(0.5), rel=1e-9)
    assert result["separation"] == pytest.approx(3.0 / math.sqrt(0.5), rel=1e-9)
    assert result["separation"] == pytest.approx(4.242641, abs=1e-6)
    flat = flat_metrics(result)
    assert flat["separation"] == result["separation"]
    assert flat["spread_2"] == pytest.approx(0.5, rel=1e-9)


def _projection_npz(tmp_path, test_per_class: int = 20):
    """A real ``project_file`` output from synthetic 8-d penultimate features."""
    rng = np.random.default_rng(11)
    centres = rng.normal(0.0, 3.0, (3, 8))
    scales = np.array([1.0, 0.5, 2.0])[:, None]

    def split(per_class: int):
        labels = np.repeat(np.arange(3), per_class)
        noise = rng.standard_normal((3 * per_class, 8)) * scales[labels]
        return centres[labels] + noise, labels

    train_x, train_y = split(40)
    test_x, test_y = split(test_per_class)
    penultimate = tmp_path / "penultimate.npz"
    np.savez(
        penultimate,
        train_features=train_x,
        train_labels=train_y,
        test_features=test_x,
        test_labels=test_y,
        weight=rng.standard_normal((3, 8)),
        bias=rng.standard_normal(3),
        classes=np.array([266, 267, 833]),
        class_names=np.array(["miniature_poodle", "standard_poodle", "submarine"]),
    )
    out = tmp_path / "projection.npz"
    project_file(penultimate, out)
    return out


def test_file_round_trip(tmp_path):
    projection = _projection_npz(tmp_path)
    out = tmp_path / "run" / "diffusion.json"
    returned = diffusion_file(projection, out)
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned))
    with np.load(projection) as data:
        train = diffusion_metrics(data["train_2d"], data["train_labels"])
        test = diffusion_metrics(data["test_2d"], data["test_labels"])
    assert written["split"] == "train"
    assert written["separation"] == pytest.approx(train["separation"], rel=1e-12)
    assert written["classes"]["1"]["name"] == "standard_poodle"
    for label in ("0", "1", "2"):
        for key in ("spread", "major", "minor", "anisotropy"):
            assert written["classes"][label][key] == pytest.approx(
                train["classes"][label][key], rel=1e-12
            )
    other = written["other_splits"]["test"]
    assert other["separation"] == pytest.approx(test["separation"], rel=1e-12)
    assert "not the paper's" in written["definition"]


def test_file_with_degenerate_other_split_records_error(tmp_path):
    projection = _projection_npz(tmp_path, test_per_class=1)
    out = tmp_path / "diffusion.json"
    written = diffusion_file(projection, out, split="train")
    assert "1 point(s)" in written["other_splits"]["test"]["error"]
    with pytest.raises(DataError, match=r"projection\.npz: test split: class 0 has 1"):
        diffusion_file(projection, out, split="test")


def test_a_collapsed_class_is_a_result_not_an_error():
    # points on a line: spread and major as computed, no finite anisotropy
    line = class_metrics(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), 1)
    assert line["spread"] == pytest.approx(2.0) and line["major"] == pytest.approx(2.0)
    assert line["anisotropy"] is None and "on a line" in line["degenerate"]
    same = class_metrics(np.ones((5, 2)), 0)
    assert same["spread"] == 0.0 and same["anisotropy"] is None
    # both similar classes collapsed onto points: separation undefined, NaN when flat
    points = np.array([[0.0, 0.0]] * 3 + [[1.0, 0.0]] * 3 + [[0, 1], [1, 1], [2, 3]])
    metrics = diffusion_metrics(points, np.array([0] * 3 + [1] * 3 + [2] * 3))
    assert metrics["separation"] is None and metrics["centroid_distance"] == 1.0
    flat = flat_metrics(metrics)
    assert np.isnan(flat["separation"]) and np.isnan(flat["anisotropy_0"])
    assert flat["anisotropy_2"] == metrics["classes"]["2"]["anisotropy"]


def test_degenerate_inputs_raise():
    ok = np.array([[0.0, 0.0], [1.0, 0.5], [0.2, 1.0]])
    with pytest.raises(DataError, match="class 3 has 1 point"):
        class_metrics(ok[:1], 3)
    with pytest.raises(DataError, match=r"no point of class \[1\]"):
        diffusion_metrics(ok, np.array([0, 0, 2]))
    with pytest.raises(DataError, match="non-finite"):
        diffusion_metrics(np.array([[0.0, np.nan], [1, 1]]), np.array([0, 1]))
    with pytest.raises(DataError, match="integers"):
        diffusion_metrics(ok, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(DataError, match="split must be one of"):
        diffusion_file("x.npz", "y.json", split="val")


def test_file_holds_no_stability(tmp_path):
    # Shen et al.'s stability is computed over the whole test split at evaluation time
    # and lives in metrics.json; diffusion.json carries only lskd's own metrics.
    written = diffusion_file(_projection_npz(tmp_path), tmp_path / "d.json")
    assert not any("stabil" in key for key in written)
    assert not any("stabil" in key for key in flat_metrics(written))
