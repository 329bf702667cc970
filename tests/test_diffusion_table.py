"""The diffusion table: mean and Student-t interval over seeds per cell (role, teacher
regularizer, student objective, T), rows identified by the files' contents and run
directories, not by list order."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_metrics, write_metrics
from lskd.analysis.diffusion_table import (
    build_table,
    read_runs,
    shown,
    write_diffusion_table,
)
from lskd.analysis.tables import CHANCE_MARK, CHANCE_NOTE
from lskd.errors import DataError

T975_1 = 12.7062  # Student's t_{0.975, 1}


def _diffusion(separation, anisotropy, source):
    cls = {"n": 20, "spread": 1.0, "major": 0.8, "minor": 0.2, "anisotropy": anisotropy}
    return {
        "classes": {"0": cls, "1": dict(cls, anisotropy=2.0), "2": cls},
        "centroid_distance": separation,
        "pooled_std": 1.0,
        "separation": separation,
        "source": source,
    }


# (role, alpha, T, seed) -> (stability S, separation, anisotropy_0)
RUNS = {
    ("teacher", 0.0, None, 0): (0.80, 3.0, 4.0),
    ("teacher", 0.0, None, 1): (0.70, 3.0, 4.0),
    ("student", 0.1, 1.0, 0): (0.90, 1.0, 5.0),
    ("student", 0.1, 1.0, 1): (0.60, 2.0, 7.0),
    ("student", 0.0, 1.0, 0): (0.75, 2.5, 3.0),
}


def _write(root: Path) -> tuple[list[Path], list[Path]]:
    metrics, diffusion = [], []
    for i, ((role, alpha, T, seed), (s, sep, an)) in enumerate(RUNS.items()):
        run = root / "results" / "fmnist" / f"run{i}" / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(
            json.dumps(make_metrics(role, alpha, T, seed, stability=s))
        )
        source = str(run / "projection.npz")
        (run / "diffusion.json").write_text(json.dumps(_diffusion(sep, an, source)))
        metrics.append(run / "metrics.json")
        diffusion.append(run / "diffusion.json")
    return metrics, diffusion


def test_mean_and_interval_by_hand(tmp_path):
    metrics, diffusion = _write(tmp_path)
    table = build_table(read_runs(metrics, diffusion))
    assert list(
        zip(table["role"], table["alpha"], table["T"].fillna(-1), strict=True)
    ) == [
        ("teacher", 0.0, -1),
        ("student", 0.0, 1.0),
        ("student", 0.1, 1.0),
    ]
    ls = table.iloc[2]
    # separation 1, 2: mean 1.5, sd sqrt(0.5), half = t * sqrt(0.5) / sqrt(2) = t / 2
    assert ls["separation"] == pytest.approx(1.5)
    assert ls["separation_low"] == pytest.approx(1.5 - T975_1 / 2, abs=1e-4)
    assert ls["separation_high"] == pytest.approx(1.5 + T975_1 / 2, abs=1e-4)
    # 1 - S from metrics.json: 0.1, 0.4 -> mean 0.25, half = t * 0.2121 / 1.4142
    assert ls["one_minus_stability"] == pytest.approx(0.25)
    half = T975_1 * math.sqrt(0.045) / math.sqrt(2)
    assert ls["one_minus_stability_high"] == pytest.approx(0.25 + half, abs=1e-4)
    assert ls["anisotropy_0"] == pytest.approx(6.0) and ls["n"] == 2
    one = table.iloc[1]  # one seed: mean, no interval
    assert one["separation"] == 2.5 and math.isnan(one["separation_low"])
    teacher = table.iloc[0]  # identical separations: zero-width interval
    assert teacher["separation_low"] == teacher["separation_high"] == 3.0
    cells = shown(read_runs(metrics, diffusion))
    assert cells.loc[("student", "LS α = 0.1", "KD", "1"), "separation"] == (
        f"1.500 [{1.5 - T975_1 / 2:.3f}, {1.5 + T975_1 / 2:.3f}]"
    )
    assert cells.loc[("student", "CE", "KD", "1"), "separation"] == "2.500"
    assert list(table["regularizer"]) == ["CE", "CE", "LS α = 0.1"]
    assert list(table["objective"].fillna("–")) == ["–", "KD", "KD"]


def test_files_pair_by_run_directory_not_order(tmp_path):
    metrics, diffusion = _write(tmp_path)
    straight = build_table(read_runs(metrics, diffusion))
    shuffled = build_table(read_runs(metrics[::-1], diffusion[1:] + diffusion[:1]))
    pd.testing.assert_frame_equal(straight, shuffled)
    # a run without its diffusion.json keeps its stability, its diffusion is NaN
    partial = read_runs(metrics, diffusion[:2])
    assert partial["separation"].isna().sum() == 3
    assert partial["one_minus_stability"].notna().all()


def test_bad_pairings_stop_with_the_file(tmp_path):
    metrics, diffusion = _write(tmp_path)
    with pytest.raises(DataError, match="no metrics.json of its run directory"):
        read_runs(metrics[1:], diffusion)
    with pytest.raises(DataError, match="a second diffusion.json"):
        read_runs(metrics, [*diffusion, diffusion[0]])
    data = json.loads(diffusion[0].read_text())
    data["source"] = str(metrics[1].parent / "projection.npz")
    diffusion[0].write_text(json.dumps(data))
    with pytest.raises(DataError, match="a projection of another run"):
        read_runs(metrics, diffusion)
    m = json.loads(metrics[2].read_text())
    m["stability"] = "high"
    metrics[2].write_text(json.dumps(m))
    with pytest.raises(DataError, match="key 'stability' has bad value"):
        read_runs(metrics)


def test_write_files(tmp_path):
    metrics, diffusion = _write(tmp_path)
    out = tmp_path / "out"
    table = write_diffusion_table(
        metrics, diffusion, out / "d.csv", out / "d.html", out / "d.png"
    )
    pd.testing.assert_frame_equal(pd.read_csv(out / "d.csv"), table, check_dtype=False)
    page = (out / "d.html").read_text(encoding="utf-8")
    assert "Shen et al. 2021, Eq. (2)" in page and "Student-t" in page
    assert "reconstruct" not in page.lower()
    assert (out / "d.png").read_bytes()[:4] == b"\x89PNG"


def test_runs_of_another_pair_are_refused(tmp_path):
    paths = write_metrics(
        tmp_path,
        [
            make_metrics("teacher", 0.0),
            make_metrics("student", 0.0, 1.0),
            make_metrics("student", 0.1, 1.0, student_arch="mlp512"),
        ],
    )
    with pytest.raises(DataError, match="student arch 'mlp512' differs from 'mlp128'"):
        read_runs(paths)


def test_maxsup_and_dkd_cells_are_their_own_rows(tmp_path):
    maxsup = {"name": "maxsup", "lam": 0.1}
    runs = {  # (regularizer, objective, seed) -> stability S
        ("ce", "kd", 0): 0.8,
        ("ce", "kd", 1): 0.7,
        ("ce", "dkd", 0): 0.6,
        ("maxsup", "kd", 0): 0.5,
        ("maxsup", "kd", 1): 0.4,
    }
    metrics = []
    for (reg, obj, seed), s in runs.items():
        fields = {"objective": {"name": obj}, "stability": s}
        if reg == "maxsup":
            fields["regularizer"] = maxsup
        m = make_metrics("student", 0.0 if reg == "ce" else None, 2.0, seed, **fields)
        metrics.append(m)
    paths = write_metrics(tmp_path, metrics)
    table = build_table(read_runs(paths))
    keys = list(zip(table["regularizer"], table["objective"], strict=True))
    dkd = next(o for _, o in keys if o.startswith("DKD"))
    assert keys == [("CE", "KD"), ("CE", dkd), ("MaxSup λ = 0.1", "KD")]
    names = {"CE": "ce", "MaxSup λ = 0.1": "maxsup", "KD": "kd", dkd: "dkd"}
    for (reg, obj), row in zip(keys, table.itertuples(), strict=True):
        cell = (names[reg], names[obj])
        mine = [1 - s for (r, o, _), s in runs.items() if (r, o) == cell]
        assert row.one_minus_stability == pytest.approx(sum(mine) / len(mine))
        assert row.n == len(mine)
    assert math.isnan(table["alpha"].iloc[2])
    out = tmp_path / "out"
    write_diffusion_table(paths, [], out / "d.csv", out / "d.html", out / "d.png")
    page = (out / "d.html").read_text(encoding="utf-8")
    assert "MaxSup λ = 0.1" in page and "LS" not in page


def test_a_cell_with_a_run_at_chance_is_marked(tmp_path):
    metrics, diffusion = _write(tmp_path)
    m = json.loads(metrics[3].read_text())  # the LS student of T = 1, seed 1
    metrics[3].write_text(json.dumps(m | {"chance": {"at_chance": True}}))
    frame = read_runs(metrics, diffusion)
    table = build_table(frame)
    assert list(table["at_chance"]) == [False, False, True]
    cells = shown(frame)
    assert ("student", "LS α = 0.1", "KD", f"1 {CHANCE_MARK}") in cells.index
    assert ("student", "CE", "KD", "1") in cells.index
    out = [tmp_path / f"d.{ext}" for ext in ("csv", "html", "png")]
    write_diffusion_table(metrics, diffusion, *out)
    assert CHANCE_NOTE.strip() in out[1].read_text(encoding="utf-8")
