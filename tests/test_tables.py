"""Paper-layout table built from hand-made metrics.json files."""

import statistics

import numpy as np
import pandas as pd
import pytest

from conftest import make_metrics, write_metrics
from lskd.analysis.formats import latex_escape
from lskd.analysis.records import read_metrics
from lskd.analysis.tables import build_table, table_caption, write_table
from lskd.identity import Choice

ALPHAS = (0.1, 0.0)  # deliberately not sorted
TEMPS = (64.0, 2.0, 1.0, 3.0)
MISSING_CELL = (0.1, 64.0)  # (alpha, T) with no run
TWO_SEEDS = (0.1, 2.0)  # (alpha, T) with seeds 0 and 1


def _run(role: str, alpha: float, T: float | None, seed: int, rng) -> dict:
    top1 = round(float(rng.uniform(60, 92)), 3)
    top5 = round(float(rng.uniform(95, 100)), 3)
    run = make_metrics(
        role,
        alpha,
        T,
        seed,
        top1,
        teacher_arch="cnn_m",
        student_arch="cnn_s",
        top5=top5,
        chosen_epoch=3,
        wall_s=12.5,
    )
    if role == "student":
        run["teacher"]["seed"] = 0  # every student learns from teacher seed 0
    return run


def _runs() -> list[dict]:
    rng = np.random.default_rng(0)
    runs = [_run("teacher", a, None, 0, rng) for a in ALPHAS]
    for alpha in ALPHAS:
        for T in TEMPS:
            if (alpha, T) == MISSING_CELL:
                continue
            seeds = (0, 1) if (alpha, T) == TWO_SEEDS else (0,)
            runs += [_run("student", alpha, T, s, rng) for s in seeds]
    return runs


def _column(alpha: float) -> str:
    """The column of a teacher's regularizer: its label (`CE`, `LS α = 0.1`)."""
    return Choice.from_alpha(alpha).label


def _expected_cell(runs: list[dict]) -> str:
    top1 = [r["top1"] for r in runs]
    top5 = [r["top5"] for r in runs]
    if len(runs) == 1:
        return f"{top1[0]:.2f} / {top5[0]:.2f}"
    return (
        f"{statistics.mean(top1):.2f} ± {statistics.stdev(top1):.2f} / "
        f"{statistics.mean(top5):.2f} ± {statistics.stdev(top5):.2f} (n={len(runs)})"
    )


def test_layout_and_cells_match_inputs():
    runs = _runs()
    table = build_table(runs)
    assert list(table.index) == [
        "Teacher cnn_m",
        "Student cnn_s, T=1",
        "Student cnn_s, T=2",
        "Student cnn_s, T=3",
        "Student cnn_s, T=64",
    ]
    assert list(table.columns) == ["CE", "LS α = 0.1"]
    for alpha in ALPHAS:
        column = _column(alpha)
        teacher = [r for r in runs if r["role"] == "teacher" and r["alpha"] == alpha]
        assert table.loc["Teacher cnn_m", column] == _expected_cell(teacher)
        for T in TEMPS:
            row = f"Student cnn_s, T={T:g}"
            group = [r for r in runs if (r["alpha"], r["T"]) == (alpha, T)]
            if (alpha, T) == MISSING_CELL:
                assert table.loc[row, column] == "–"
            else:
                assert table.loc[row, column] == _expected_cell(group)
    two = table.loc["Student cnn_s, T=2", "LS α = 0.1"]
    assert two.endswith("(n=2)") and two.count("±") == 2


def test_order_of_inputs_does_not_matter():
    runs = _runs()
    pd.testing.assert_frame_equal(build_table(runs), build_table(runs[::-1]))


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        ("task", "cifar10", "task"),
        ("selection", "best_val", "selection"),
        ("arch", "resnet18", "student arch"),
        ("teacher", {"arch": "resnet50"}, "teacher arch"),
    ],
)
def test_mixed_runs_are_rejected_naming_the_file(tmp_path, key, value, what):
    runs = _runs()
    runs[-1][key] = {**runs[-1][key], **value} if isinstance(value, dict) else value
    paths = write_metrics(tmp_path / "runs", runs)
    with pytest.raises(ValueError, match=rf"run{len(runs) - 1}/metrics\.json: {what}"):
        write_table(paths, *(tmp_path / f"t.{e}" for e in ("csv", "md", "tex")))


def test_bad_metrics_name_file_and_key(tmp_path):
    runs = _runs()
    del runs[3]["top5"]
    paths = write_metrics(tmp_path / "runs", runs)
    with pytest.raises(ValueError, match=r"run3/metrics\.json: missing key 'top5'"):
        build_table([read_metrics(p) for p in paths], [str(p) for p in paths])
    with pytest.raises(ValueError, match=r"metrics\[0\]: key 'role'"):
        build_table([{**runs[0], "role": "student_of_student"}])


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ValueError, match=r"absent\.json: file not found"):
        read_metrics(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"role": ')
    with pytest.raises(ValueError, match=r"broken\.json: invalid JSON"):
        read_metrics(broken)


def test_caption_names_task_pair_split_and_epoch():
    runs = _runs()
    caption = table_caption(runs)
    for text in ("fmnist", "cnn_m → student cnn_s", "test split", "last epoch"):
        assert text in caption
    assert "docs/recipes.md#kd-loss" in caption and "T²·KL" in caption
    best = [{**r, "selection": "best_val"} for r in runs]
    assert "never selected on the reported split" in table_caption(best)


def test_write_table_files(tmp_path):
    runs = _runs()
    paths = write_metrics(tmp_path / "runs", runs)
    out = {e: tmp_path / "tables" / f"table.{e}" for e in ("csv", "md", "tex")}
    table = write_table(paths, out["csv"], out["md"], out["tex"])
    pd.testing.assert_frame_equal(table, build_table(runs))
    csv = pd.read_csv(out["csv"], index_col=0, keep_default_na=False)
    assert csv.equals(table)
    md = out["md"].read_text(encoding="utf-8")
    assert md.splitlines()[0] == table_caption(runs)
    assert "Student cnn_s, T=64" in md
    tex = out["tex"].read_text(encoding="utf-8")
    assert r"\begin{table}" in tex and r"\caption{fmnist, teacher cnn\_m" in tex
    assert r"\ensuremath{\pm}" in tex and "±" not in tex and "–" not in tex
    for char in "_%#":
        assert tex.count(char) == tex.count("\\" + char), char
    assert tex.count("$") % 2 == 0
    assert sorted(p.name for p in out["csv"].parent.iterdir()) == [
        "table.csv",
        "table.md",
        "table.tex",
    ]


def test_teacher_only_table():
    teachers = [r for r in _runs() if r["role"] == "teacher"]
    table = build_table(teachers)
    assert list(table.index) == ["Teacher cnn_m"]
    caption = table_caption(teachers)
    assert "teacher cnn_m:" in caption and "→" not in caption and "KD" not in caption


def test_latex_escape_special_characters():
    text = "a_b & 50% $x$ #1 {y} ~^ \\ ± – α"
    assert latex_escape(text) == (
        r"a\_b \& 50\% \$x\$ \#1 \{y\} \textasciitilde{}\textasciicircum{} "
        r"\textbackslash{} \ensuremath{\pm} -- \ensuremath{\alpha}"
    )


def test_teachers_and_students_may_select_differently():
    runs = [
        {**r, "selection": "best_val"} if r["role"] == "student" else r for r in _runs()
    ]
    caption = table_caption(runs)
    assert "last epoch (teachers)" in caption
    assert "best held-out validation top-1" in caption and "(students)" in caption
    assert len(build_table(runs)) == len(build_table(_runs()))


def test_a_run_at_chance_level_marks_its_cell_only():
    """metrics.json's chance.at_chance (a bool) puts † after that cell; a run without
    the key or with at_chance false is unmarked."""
    runs = _runs()
    runs[0]["chance"] = {"at_chance": True}  # the first teacher
    runs[1]["chance"] = {"at_chance": False}
    table = build_table(runs)
    marked = [
        (row, col)
        for row in table.index
        for col in table.columns
        if str(table.loc[row, col]).endswith("†")
    ]
    assert marked == [(table.index[0], _column(runs[0]["alpha"]))]
