"""The paper's numbers (docs/results.md) beside ours: per cell ours, paper, delta.

``paper_numbers.csv`` (shipped in this package) copies every number of the official
READMEs' result tables (tests/data/official_readme_results.md) digit for digit, one row
per cell: ``section`` (the block 4.1–4.6 of docs/results.md#blocks, one per README
table), ``paper_table`` (the paper table the official README says it reproduces),
``task`` (lskd task name: ``imagenet``, ``cub200``; ``nmt_en_de`` / ``nmt_en_ru`` for
the NMT table), ``teacher_arch``, ``student_arch`` (torchvision names), ``role``
(``teacher`` | ``student``), ``T`` (empty for teachers), ``alpha`` (the teacher's LS
factor), ``top1``, ``top5`` (%, image tasks), ``bleu`` (NMT), ``source`` (the official
files read, docs/results.md#columns). The teacher rows are repeated in every table that
prints them, as the paper does.

Left out because neither the official READMEs nor the official code state them
(docs/results.md#not-shipped): paper Tables 1 and 3, ImageNet ResNet-50 →
EfficientNet-B0, standard deviations and seed counts. The patterns of
docs/results.md#patterns-in-the-numbers are derived from these rows, so they are not
copied either.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from typing import Any

import pandas as pd

from lskd.analysis.labels import column_label, row_label
from lskd.analysis.records import parse_run
from lskd.errors import DataError
from lskd.identity import DEFAULT_OBJECTIVE, Choice

log = logging.getLogger(__name__)

PAPER_CSV = "paper_numbers.csv"
TOLERANCE = 0.3  # top-1 points: a cell is "within" when |ours - paper| <= 0.3
CELL_KEYS = ("task", "teacher_arch", "student_arch", "role", "T", "alpha")
METRICS = ("top1", "top5", "bleu")
# Float slack for |delta| <= 0.3 (69.674 - 69.374 = 0.30000000000001137 in float64).
_EPS = 1e-9


def load_paper_numbers() -> pd.DataFrame:
    """The paper's numbers (docs/results.md) as one row per cell (module docstring)."""
    path = resources.files("lskd.analysis").joinpath(PAPER_CSV)
    with resources.as_file(path) as csv_path:
        frame = pd.read_csv(
            csv_path,
            dtype={"section": str, "paper_table": str, "source": str},
        )
    return frame


def ours_frame(
    metrics: Sequence[dict[str, Any]], sources: Sequence[str] | None = None
) -> pd.DataFrame:
    """Our runs (``metrics.json`` dicts) as one row per cell, mean over seeds.

    Columns: ``CELL_KEYS``, ``top1``, ``top5`` (means), ``top1_std``, ``top5_std``
    (sample std, NaN for one seed) and ``n`` (seeds). A teacher's ``student_arch`` is
    NaN: ``compare`` matches it to every table of its task and teacher arch. Only the
    paper's methods have rows: `ce` / `ls` teachers (``alpha``: the regularizer's
    label-smoothing factor) and their students of the default objective `kd`.
    """
    if not metrics:
        raise DataError("no metrics.json given")
    if sources is None:
        sources = [f"metrics[{i}]" for i in range(len(metrics))]
    runs = [parse_run(m, s) for m, s in zip(metrics, sources, strict=True)]
    runs = [
        r
        for r in runs
        if r.regularizer.alpha is not None and r.objective in (None, DEFAULT_OBJECTIVE)
    ]
    rows = [
        {
            "task": r.task,
            "teacher_arch": r.teacher_arch,
            "student_arch": r.arch if r.role == "student" else None,
            "role": r.role,
            "T": r.T,
            "alpha": r.regularizer.alpha,
            "top1": r.top1,
            "top5": r.top5,
        }
        for r in runs
    ]
    frame = pd.DataFrame(rows, columns=[*CELL_KEYS, "top1", "top5"])
    grouped = frame.groupby(list(CELL_KEYS), dropna=False, sort=True)
    out = grouped[["top1", "top5"]].mean()
    std = grouped[["top1", "top5"]].std(ddof=1).add_suffix("_std")
    out = out.join(std)
    out["n"] = grouped.size()
    return out.reset_index()


def _check_columns(frame: pd.DataFrame, needed: Sequence[str], name: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{name} frame lacks column(s) {missing}")


def compare(
    ours: pd.DataFrame, paper: pd.DataFrame, metric: str = "top1"
) -> pd.DataFrame:
    """Per cell of ``ours``: ``ours``, ``paper``, ``delta = ours - paper`` and
    ``within_0.3`` (``|delta| <= 0.3``; NA where the paper has no such cell).

    Students match on ``CELL_KEYS``; teachers on task, teacher arch and alpha, once per
    paper table that prints them (``student_arch`` then comes from the paper), limited
    to the tables of our student archs when ``ours`` has students of that task and
    teacher arch. Our ``n`` and ``<metric>_std`` columns are kept when present.
    """
    if metric not in METRICS:
        raise DataError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    _check_columns(ours, (*CELL_KEYS, metric), "ours")
    _check_columns(paper, ("section", *CELL_KEYS, metric), "paper")
    extra = [c for c in ("n", f"{metric}_std") if c in ours.columns]
    mine = ours[[*CELL_KEYS, metric, *extra]].rename(columns={metric: "ours"})
    if f"{metric}_std" in extra:
        mine = mine.rename(columns={f"{metric}_std": "ours_std"})
    theirs = paper[["section", *CELL_KEYS, metric]].rename(columns={metric: "paper"})
    theirs = theirs.dropna(subset=["paper"])
    students = mine[mine["role"] == "student"].merge(
        theirs[theirs["role"] == "student"], on=list(CELL_KEYS), how="left"
    )
    teacher_keys = ["task", "teacher_arch", "role", "alpha"]
    teachers = (
        mine[mine["role"] == "teacher"]
        .drop(columns="student_arch")
        .merge(
            theirs[theirs["role"] == "teacher"].drop(columns="T"),
            on=teacher_keys,
            how="left",
        )
    )
    teachers = _teachers_of_our_tables(teachers, students)
    frame = pd.concat([teachers, students], ignore_index=True)
    frame["delta"] = frame["ours"] - frame["paper"]
    within = frame["delta"].abs() <= TOLERANCE + _EPS
    frame["within_0.3"] = within.astype("boolean").mask(frame["paper"].isna())
    columns = ["section", *CELL_KEYS, "ours", *extra, "paper", "delta", "within_0.3"]
    columns = ["ours_std" if c == f"{metric}_std" else c for c in columns]
    log.debug("compared %d cells, %d in the paper", len(frame), frame["paper"].count())
    return _ordered(frame, columns)


def _ordered(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Per paper table: the teacher rows first, then T ascending, then alpha; cells
    the paper lacks (no section) last."""
    order = frame.assign(_T=frame["T"].fillna(-1.0)).sort_values(
        ["section", "task", "student_arch", "_T", "alpha"], na_position="last"
    )
    return frame.loc[order.index, list(columns)].reset_index(drop=True)


def _teachers_of_our_tables(
    teachers: pd.DataFrame, students: pd.DataFrame
) -> pd.DataFrame:
    """Keep a teacher's paper tables whose student arch we also ran; keep all of them
    when we ran none of those student archs (or no student)."""
    table = ["task", "teacher_arch", "student_arch"]
    ran = set(students[table].itertuples(index=False, name=None))
    mark = teachers.assign(
        _ran=[key in ran for key in teachers[table].itertuples(index=False, name=None)]
    )
    cell = ["task", "teacher_arch", "alpha"]
    any_ran = mark.groupby(cell, dropna=False)["_ran"].transform("any")
    return teachers[mark["_ran"] | ~any_ran]


def _paper_cell(row: pd.Series) -> str:
    if pd.isna(row["paper"]):
        return "–"
    return f"{row['paper']:.2f}"


def _delta_cell(row: pd.Series) -> str:
    if pd.isna(row["delta"]):
        return "–"
    mark = " ✓" if bool(row["within_0.3"]) else ""
    return f"{row['delta']:+.2f}{mark}"


def with_paper_columns(
    table: pd.DataFrame,
    caption: str,
    metrics: Sequence[dict[str, Any]],
    sources: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, str]:
    """Add the paper's top-1 and ``delta = ours - paper`` after each `ce` / `ls` column
    (the paper's teachers: alpha 0 and alpha > 0) of a
    ``tables.build_table`` table, when the paper has numbers for its task and teacher
    -> student pair; otherwise return ``table`` and ``caption`` unchanged.

    A delta cell is ``+0.12 ✓`` when ``|delta| <= 0.3`` top-1 points (``TOLERANCE``);
    the caption counts those cells and names the paper table and docs/results.md block.
    """
    ours = ours_frame(metrics, sources)
    if ours.empty:  # no `ce` / `ls` teacher, no `kd` student: nothing of the paper's
        return table, caption
    numbers = load_paper_numbers()
    compared = compare(ours, numbers)
    compared = compared[compared["paper"].notna()]
    students = compared[compared["role"] == "student"]
    if len(students):  # teachers match every paper table of their arch: keep ours
        pair = students["student_arch"].iloc[0]
        compared = compared[compared["student_arch"] == pair]
    if compared.empty:
        return table, caption
    out = table.copy()
    for alpha, cells in compared.groupby("alpha"):
        column = column_label(Choice.from_alpha(float(alpha)))
        labels = [
            row_label(
                r.role, r.teacher_arch if r.role == "teacher" else r.student_arch, r.T
            )
            for r in cells.itertuples()
        ]
        at = out.columns.get_loc(column) + 1
        paper = pd.Series([_paper_cell(r) for _, r in cells.iterrows()], index=labels)
        delta = pd.Series([_delta_cell(r) for _, r in cells.iterrows()], index=labels)
        out.insert(at, f"{column} paper", paper.reindex(out.index).fillna("–"))
        out.insert(at + 1, f"{column} Δ top-1", delta.reindex(out.index).fillna("–"))
    within = int(compared["within_0.3"].sum())
    used = sorted(set(compared["section"]))
    sections = ", ".join(used)
    tables = ", ".join(
        sorted(set(numbers.loc[numbers["section"].isin(used), "paper_table"]))
    )
    note = (
        f" Beside each CE / LS column: the paper's top-1 ({tables}; "
        f"docs/results.md#blocks, block {sections}) and delta = ours - paper in "
        "top-1 points; "
        f"✓ marks the {within} of "
        f"{len(compared)} paper cells within ±{TOLERANCE:g}."
    )
    return out, caption + note
