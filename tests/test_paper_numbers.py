"""The shipped paper numbers equal the official READMEs' tables (copied in
tests/data/official_readme_results.md); compare() computes deltas."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_metrics, official_cells, write_metrics
from lskd.analysis.paper import compare, load_paper_numbers, ours_frame
from lskd.analysis.tables import write_table
from lskd.identity import Choice

REPO = Path(__file__).resolve().parents[1]
COLUMNS = [
    "section",
    "paper_table",
    "task",
    "teacher_arch",
    "student_arch",
    "role",
    "T",
    "alpha",
    "top1",
    "top5",
    "bleu",
    "source",
]
IMAGE_SECTIONS = ("4.1", "4.2", "4.3", "4.4", "4.5")


def _csv_cells(paper: pd.DataFrame) -> dict[tuple, float]:
    """The CSV's numbers keyed as `conftest.official_cells` keys them."""
    cells = {}
    for row in paper.itertuples(index=False):
        T = None if math.isnan(row.T) else float(row.T)
        cell = (row.task, row.teacher_arch, row.student_arch, row.role, T, row.alpha)
        for metric in ("top1", "top5", "bleu"):
            value = getattr(row, metric)
            if not math.isnan(value):
                cells[(*cell, metric)] = value
    return cells


def test_csv_loads_with_columns_and_types():
    paper = load_paper_numbers()
    assert list(paper.columns) == COLUMNS
    assert len(paper) == 5 * 10 + 20  # five image tables of 10 cells, NMT 20
    assert set(paper["role"]) == {"teacher", "student"}
    assert paper.loc[paper["role"] == "teacher", "T"].isna().all()
    assert set(paper.loc[paper["role"] == "student", "T"]) == {1.0, 2.0, 3.0, 64.0}
    assert set(paper["alpha"]) == {0.0, 0.1}
    image = paper[paper["section"].isin(IMAGE_SECTIONS)]
    assert image[["top1", "top5"]].notna().all().all()
    assert image["bleu"].isna().all()
    nmt = paper[paper["section"] == "4.6"]
    assert nmt["bleu"].notna().all() and nmt["top1"].isna().all()


def test_every_number_equals_the_official_readmes():
    official = official_cells()
    shipped = _csv_cells(load_paper_numbers())
    assert len(official) == 5 * 10 * 2 + 20  # 5 image tables x 10 cells x top-1/5
    assert shipped == official
    # two values read off the official READMEs by eye as well
    r18 = ("imagenet", "resnet50", "resnet18", "student", 1.0, 0.1, "top1")
    assert official[r18] == 71.666
    ru = ("nmt_en_ru", "transformer", "transformer", "student", 64.0, 0.1, "bleu")
    assert official[ru] == 3.590


def _ours(rows: list[tuple]) -> pd.DataFrame:
    keys = ["task", "teacher_arch", "student_arch", "role", "T", "alpha", "top1"]
    return pd.DataFrame(rows, columns=keys)


def _row(result: pd.DataFrame, role: str, T: float | None, alpha: float) -> pd.Series:
    same_T = result["T"].isna() if T is None else result["T"] == T
    rows = result[(result["role"] == role) & same_T & (result["alpha"] == alpha)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_compare_deltas_and_tolerance_flag():
    paper = load_paper_numbers()
    ours = _ours(
        [
            ("cub200", "resnet50", None, "teacher", None, 0.0, 81.884),  # +0.300
            ("cub200", "resnet50", None, "teacher", None, 0.1, 81.0),  # -1.068
            ("cub200", "resnet50", "resnet18", "student", 1.0, 0.1, 80.646),  # -0.3
            ("cub200", "resnet50", "resnet18", "student", 2.0, 0.0, 80.9),  # +0.092
            ("cub200", "resnet50", "resnet18", "student", 3.0, 0.0, 80.4),  # -0.385
            ("cub200", "resnet50", "resnet18", "student", 5.0, 0.0, 70.0),  # no paper
        ]
    )
    result = compare(ours, paper)
    # teachers match only the paper table of our student arch (block 4.3), not 4.4/4.5
    assert len(result) == len(ours)
    expected = {
        ("teacher", None, 0.0): (81.584, 0.300, True),
        ("teacher", None, 0.1): (82.068, -1.068, False),
        ("student", 1.0, 0.1): (80.946, -0.300, True),
        ("student", 2.0, 0.0): (80.808, 0.092, True),
        ("student", 3.0, 0.0): (80.785, -0.385, False),
    }
    for key, (paper_value, delta, within) in expected.items():
        row = _row(result, *key)
        assert row["section"] == "4.3"
        assert row["paper"] == paper_value
        assert row["delta"] == pytest.approx(delta, abs=1e-9)
        assert row["within_0.3"] == within
    missing = _row(result, "student", 5.0, 0.0)
    assert math.isnan(missing["paper"]) and math.isnan(missing["delta"])
    assert pd.isna(result["within_0.3"].iloc[-1])
    assert list(result["role"][:2]) == ["teacher", "teacher"]


def test_compare_teacher_alone_matches_every_table_and_bleu():
    paper = load_paper_numbers()
    teacher = _ours([("imagenet", "resnet50", None, "teacher", None, 0.1, 76.0)])
    result = compare(teacher, paper)
    assert list(result["section"]) == ["4.1", "4.2"]
    assert list(result["delta"]) == pytest.approx([-0.2, -0.2])
    nmt = pd.DataFrame(
        [("nmt_en_de", "transformer", "transformer", "student", 2.0, 0.1, 23.0)],
        columns=["task", "teacher_arch", "student_arch", "role", "T", "alpha", "bleu"],
    )
    row = compare(nmt, paper, metric="bleu").iloc[0]
    assert row["paper"] == 23.421
    assert row["delta"] == pytest.approx(-0.421)
    assert not row["within_0.3"]


def _imagenet(role, alpha, T, seed, top1, **fields) -> dict:
    """A made-up metrics.json of an ImageNet ResNet-50 teacher or ResNet-18 student."""
    return make_metrics(
        role,
        alpha,
        T,
        seed,
        top1,
        task="imagenet",
        teacher_arch="resnet50",
        student_arch="resnet18",
        **fields,
    )


def test_ours_frame_aggregates_seeds_then_compares():
    def run(role, alpha, T, seed, top1):
        return _imagenet(role, alpha, T, seed, top1, selection="best_val", top5=90.0)

    runs = [
        run("teacher", 0.0, None, 0, 76.0),
        run("student", 0.0, 1.0, 0, 71.0),
        run("student", 0.0, 1.0, 1, 72.0),
    ]
    ours = ours_frame(runs)
    student = ours[ours["role"] == "student"].iloc[0]
    # mean 71.5, sample std sqrt(((-.5)^2 + .5^2) / 1) = 0.707107
    assert student["top1"] == 71.5 and student["n"] == 2
    assert student["top1_std"] == pytest.approx(np.sqrt(0.5))
    result = compare(ours, load_paper_numbers())
    row = result[result["role"] == "student"].iloc[0]
    assert row["ours"] == 71.5 and row["paper"] == 71.488
    assert row["ours_std"] == pytest.approx(np.sqrt(0.5)) and row["n"] == 2
    assert row["delta"] == pytest.approx(0.012)
    teacher = result[result["role"] == "teacher"]
    assert list(teacher["section"]) == ["4.1"] and teacher["n"].iloc[0] == 1


def test_tolerance_edge_survives_float_rounding():
    # 69.374 - 69.674 = -0.30000000000001137 in float64: still "within 0.3".
    assert abs(69.374 - 69.674) > 0.3
    ours = _ours([("imagenet", "resnet50", "resnet18", "student", 3.0, 0.0, 69.374)])
    row = compare(ours, load_paper_numbers()).iloc[0]
    assert row["paper"] == 69.674 and bool(row["within_0.3"])
    ours.loc[0, "top1"] = 69.373  # delta -0.301
    assert not compare(ours, load_paper_numbers()).iloc[0]["within_0.3"]


def _metrics_from_paper(offsets: dict[tuple, float]) -> list[dict]:
    """metrics.json dicts for the paper's ImageNet R50 -> R18 cells, each top-1 moved
    by ``offsets[(role, T, alpha)]``."""
    paper = load_paper_numbers()
    cells = paper[(paper["section"] == "4.1")]
    runs = []
    for row in cells.itertuples():
        T = None if row.role == "teacher" else row.T
        top1 = row.top1 + offsets[(row.role, T, row.alpha)]
        runs.append(_imagenet(row.role, row.alpha, T, 0, top1, top5=row.top5))
    return runs


def test_written_table_has_paper_and_delta_columns(tmp_path):
    from lskd.analysis.tables import write_table

    rng = np.random.default_rng(0)
    keys = [("teacher", None, a) for a in (0.0, 0.1)] + [
        ("student", float(T), a) for T in (1, 2, 3, 64) for a in (0.0, 0.1)
    ]
    offsets = {k: float(rng.choice([-1.0, -0.25, 0.0, 0.2, 0.7])) for k in keys}
    paths = write_metrics(tmp_path / "runs", _metrics_from_paper(offsets))
    out = {ext: tmp_path / f"t.{ext}" for ext in ("csv", "md", "tex", "html")}
    table = write_table(paths, out["csv"], out["md"], out["tex"], out["html"])
    paper = load_paper_numbers().query("section == '4.1'")
    for role, T, alpha in keys:
        label = "Teacher resnet50" if T is None else f"Student resnet18, T={T:g}"
        col = Choice.from_alpha(alpha).label  # `CE`, `LS α = 0.1`
        want = paper[
            (paper["role"] == role)
            & (paper["alpha"] == alpha)
            & (paper["T"].isna() if T is None else paper["T"] == T)
        ]["top1"].item()
        assert table.loc[label, f"{col} paper"] == f"{want:.2f}"
        delta = table.loc[label, f"{col} Δ top-1"]
        assert float(delta.split()[0]) == pytest.approx(offsets[(role, T, alpha)])
        assert delta.endswith("✓") == (abs(offsets[(role, T, alpha)]) <= 0.3)
    within = sum(abs(v) <= 0.3 for v in offsets.values())
    md = out["md"].read_text()
    assert f"✓ marks the {within} of {len(keys)} paper cells within ±0.3" in md
    assert "docs/results.md#blocks, block 4.1" in out["html"].read_text()


def test_table_without_paper_cells_is_unchanged(tmp_path):
    import json

    from lskd.analysis.tables import build_table, write_table

    m = make_metrics("teacher", 0.1, top1=90.0)
    (tmp_path / "m.json").write_text(json.dumps(m))
    outs = [tmp_path / f"t.{e}" for e in ("csv", "md", "tex")]
    table = write_table([tmp_path / "m.json"], *outs)
    assert list(table.columns) == list(build_table([m]).columns) == ["LS α = 0.1"]


def test_maxsup_and_dkd_runs_get_no_paper_cells(tmp_path):
    """The paper has numbers for CE / LS teachers and KD students only: a MaxSup
    teacher's column and a DKD student's row stay without paper columns, while the
    CE and LS columns of the same table get theirs."""
    from lskd.analysis.tables import build_table

    maxsup = {"name": "maxsup", "lam": 0.1}
    archs = {"task": "imagenet", "teacher_arch": "resnet50", "student_arch": "resnet18"}
    runs = [
        make_metrics("teacher", 0.0, top1=76.0, **archs),
        make_metrics("teacher", None, top1=77.0, regularizer=maxsup, **archs),
        make_metrics("student", 0.0, 1.0, top1=70.0, **archs),
        make_metrics("student", None, 1.0, top1=71.0, regularizer=maxsup, **archs),
        make_metrics(
            "student", 0.0, 1.0, top1=69.0, objective={"name": "dkd"}, **archs
        ),
    ]
    frame = ours_frame(runs)
    assert list(frame["alpha"]) == [0.0, 0.0]  # the CE teacher and its KD student
    table = build_table(runs)
    assert list(table.columns) == ["CE", "MaxSup λ = 0.1"]
    dkd = Choice.parse({"name": "dkd"}, "objective", "test").label
    assert list(table.index) == [
        "Teacher resnet50",
        "Student resnet18, T=1",
        f"Student resnet18, {dkd}, T=1",
    ]
    assert table.loc[f"Student resnet18, {dkd}, T=1", "MaxSup λ = 0.1"] == "–"
    paths = write_metrics(tmp_path / "runs", runs)
    out = [tmp_path / f"t.{e}" for e in ("csv", "md", "tex")]
    written = write_table(paths, *out)
    assert "CE paper" in written.columns
    assert not any(c.startswith("MaxSup λ = 0.1 ") for c in written.columns)
    assert written.loc[f"Student resnet18, {dkd}, T=1", "CE paper"] == "–"
