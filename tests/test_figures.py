"""Projection grid figure from synthetic projections."""

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from matplotlib.colors import to_rgb

from conftest import make_metrics
from lskd.analysis.figures import (
    COLOURS,
    _build_figure,
    _load_grid,
    plot_projection_grid,
)
from lskd.analysis.panels import arrange
from lskd.analysis.projection import project_file
from lskd.analysis.tables import CHANCE_MARK
from lskd.errors import DataError
from lskd.identity import Choice

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASS_NAMES = np.array(["miniature_poodle", "standard_poodle", "submarine"])


def _projection(tmp_path: Path, name: str, seed: int) -> Path:
    """A projection.npz made by ``project_file`` from random 3-cluster features."""
    rng = np.random.default_rng(seed)
    d = 8
    weight = rng.normal(size=(3, d))
    labels = np.repeat(np.arange(3), 30)
    centres = 3.0 * weight  # clusters along the templates: well separated
    train = centres[labels] + rng.normal(size=(labels.size, d))
    test = centres[labels[::3]] + rng.normal(size=(labels.size // 3, d))
    src = tmp_path / f"{name}_penultimate.npz"
    np.savez(
        src,
        train_features=train.astype(np.float32),
        train_labels=labels,
        test_features=test.astype(np.float32),
        test_labels=labels[::3],
        weight=weight.astype(np.float32),
        bias=rng.normal(size=3).astype(np.float32),
        classes=np.array([266, 267, 833]),
        class_names=CLASS_NAMES,
    )
    out = tmp_path / f"{name}_projection.npz"
    project_file(src, out)
    return out


def _grid(tmp_path: Path, n_rows: int, n_alphas: int) -> list[list[Path]]:
    return [
        [_projection(tmp_path, f"r{r}a{a}", 10 * r + a) for a in range(n_alphas)]
        for r in range(n_rows)
    ]


def _has_colour(image: np.ndarray, colour: str, tol: float = 0.02) -> bool:
    return bool(np.any(np.all(np.abs(image[..., :3] - to_rgb(colour)) < tol, -1)))


@pytest.mark.parametrize(("n_rows", "n_alphas"), [(2, 2), (3, 1)])
def test_grid_writes_png_and_pdf(tmp_path: Path, n_rows: int, n_alphas: int):
    grid = _grid(tmp_path, n_rows, n_alphas)
    out_png, out_pdf = tmp_path / "fig" / "grid.png", tmp_path / "fig" / "grid.pdf"
    plot_projection_grid(
        grid,
        row_labels=[f"Student, T={t}" for t in (1, 3, 64)[:n_rows]],
        columns=["CE", "LS α = 0.1"][:n_alphas],
        title="synthetic",
        out_png=out_png,
        out_pdf=out_pdf,
    )
    assert out_png.read_bytes()[:8] == PNG_MAGIC
    assert out_pdf.read_bytes()[:5] == b"%PDF-" and out_pdf.stat().st_size > 1000
    image = matplotlib.image.imread(out_png)
    height, width = image.shape[:2]
    n_cols = 2 * n_alphas  # train and test panel per alpha
    # The panels are square, so the picture's aspect follows the panel grid.
    if n_cols > n_rows:
        assert width > 1.4 * height
    else:
        assert height > 1.2 * width
    for colour in COLOURS:  # opaque centroid stars in each class colour
        assert _has_colour(image, colour)
    assert sorted(p.name for p in out_png.parent.iterdir()) == ["grid.pdf", "grid.png"]


def test_grid_shape_must_match_labels(tmp_path: Path):
    grid = _grid(tmp_path, 1, 2)
    with pytest.raises(ValueError, match="1 rows x 3 columns"):
        plot_projection_grid(
            grid, ["T=1"], ["a", "b", "c"], "t", tmp_path / "a.png", tmp_path / "a.pdf"
        )


def test_bad_projection_file_names_file_and_key(tmp_path: Path):
    bad = tmp_path / "bad_projection.npz"
    np.savez(bad, train_2d=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"bad_projection\.npz: missing key"):
        plot_projection_grid(
            [[bad]], ["T=1"], ["CE"], "t", tmp_path / "a.png", tmp_path / "a.pdf"
        )
    assert not (tmp_path / "a.png").exists()


def _runs(tmp_path: Path, role: str, temps, alphas=(0.0, 0.1), **fields) -> list[Path]:
    """projection.npz paths (not written), each in a run directory with its
    metrics.json (``fields``: further metrics.json keys, e.g. a regularizer)."""
    paths = []
    for T in temps:
        for alpha in alphas:
            run = tmp_path / f"{role}_a{alpha}_T{T}_{len(fields)}"
            run.mkdir()
            m = make_metrics(role, alpha, T, **fields)
            (run / "metrics.json").write_text(json.dumps(m))
            paths.append(run / "projection.npz")
    return paths


def test_panels_are_placed_by_their_runs_not_by_argument_order(tmp_path: Path):
    ordered = _runs(tmp_path, "student", (1.0, 3.0))  # row-major: T, then alpha
    expected = [ordered[:2], ordered[2:]]
    for given in (
        ordered,
        ordered[::-1],
        [ordered[1], ordered[2], ordered[0], ordered[3]],
    ):
        layout = arrange(given)
        assert layout.grid == expected
        assert layout.rows == ["T = 1", "T = 3"]
        assert layout.columns == ["CE", "LS α = 0.1"]


def test_columns_are_regularizers_ce_first(tmp_path: Path):
    maxsup = {"name": "maxsup", "lam": 0.1}
    given = _runs(tmp_path, "teacher", (None,), alphas=(None,), regularizer=maxsup)
    given += _runs(tmp_path, "teacher", (None,), alphas=(0.1, 0.0))
    layout = arrange(given)
    assert layout.rows == ["teacher"]
    # CE first, then the others by method name: ls before maxsup; never LS for MaxSup
    assert layout.columns == ["CE", "LS α = 0.1", "MaxSup λ = 0.1"]
    assert layout.grid == [[given[2], given[1], given[0]]]
    # students of another objective get rows of their own, named by it
    dkd = _runs(tmp_path, "student", (1.0,), objective={"name": "dkd"})
    kd = _runs(tmp_path, "student", (1.0,))
    layout = arrange(dkd + kd)
    label = Choice.parse({"name": "dkd"}, "objective", "test").label
    assert layout.rows == ["KD, T = 1", f"{label}, T = 1"]
    assert layout.grid == [kd, dkd]


def test_teacher_panels_and_what_a_figure_refuses(tmp_path: Path):
    teachers = _runs(tmp_path, "teacher", (None,))
    assert arrange(teachers[::-1]).grid == [teachers]
    students = _runs(tmp_path, "student", (1.0,))
    students += _runs(tmp_path, "student", (3.0,), alphas=(0.0,))
    with pytest.raises(DataError, match="no projection of T = 3, LS α = 0.1"):
        arrange(students)
    with pytest.raises(DataError, match="a second projection of the same run"):
        arrange([*teachers, teachers[0]])
    with pytest.raises(DataError, match="no metrics.json beside it"):
        arrange([tmp_path / "elsewhere" / "projection.npz"])


def test_cli_figure_takes_projections_title_and_outputs(tmp_path: Path):
    from lskd.cli.main import main

    paths = _runs(tmp_path, "student", (1.0, 3.0))
    for i, path in enumerate(paths):  # a real projection in each run directory
        _projection(tmp_path, f"p{i}", i).rename(path)
    png, pdf = tmp_path / "f.png", tmp_path / "f.pdf"
    args = ["figure", *map(str, paths[::-1]), "--title", "t"]
    assert main([*args, "--png", str(png), "--pdf", str(pdf)]) == 0
    assert png.read_bytes()[:8] == PNG_MAGIC and pdf.read_bytes()[:5] == b"%PDF-"


def test_a_model_at_chance_is_marked_on_its_panels(tmp_path: Path):
    at_chance = {"at_chance": True}
    students = _runs(tmp_path, "student", (1.0,), alphas=(0.0,))
    students += _runs(tmp_path, "student", (1.0,), alphas=(0.1,), chance=at_chance)
    layout = arrange(students[::-1])
    assert layout.chance == [[False, True]]  # columns CE, LS α = 0.1
    grid = _load_grid(_grid(tmp_path, 1, 2), 1, 2)
    fig = _build_figure(grid, layout.rows, layout.columns, "t", layout.chance)
    marked = [
        i
        for i, ax in enumerate(fig.axes)
        if any("at chance" in t.get_text() for t in ax.texts)
    ]
    assert marked == [1, 3]  # the LS column's train and test panels
    assert f"{CHANCE_MARK}: a model at chance level" in fig.get_suptitle()
    plain = _build_figure(grid, layout.rows, layout.columns, "t", [[False, False]])
    assert not any(ax.texts for ax in plain.axes) and plain.get_suptitle() == "t"
