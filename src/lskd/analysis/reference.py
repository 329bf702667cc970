"""Published numbers of the KD literature beside our tables, as reference rows.

`paper.py` sets the paper's own numbers (Chandrasegaran et al. 2022) beside each cell;
this module adds the numbers other code bases publish for the same teacher -> student
pair, which are not cells of our grid: a reference table has a CE teacher, the student
trained alone and one KD recipe. `reference_numbers.csv` (shipped in this package) holds
one row per number: ``benchmark`` (``cifar100``), ``classes`` (its class count: a table
gets the rows only when its runs have that many classes, so CIFAR-10 runs of the same
archs do not), ``teacher_arch``, ``student_arch`` (lskd's arch names), ``row``
(``teacher``: trained with CE; ``student``: the student arch trained alone with CE;
``kd``: the student distilled with the source's KD recipe), ``top1`` (%, test split) and
``source``. Today: RepDistiller's README (CRD, Tian et al. 2020), CIFAR-100, every pair
of its two tables whose archs lskd has; `NOTES` says how each source trained and
selected, and the caption repeats it beside the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

import pandas as pd

from lskd.analysis.labels import column_label
from lskd.analysis.records import parse_run
from lskd.identity import Choice

REFERENCE_CSV = "reference_numbers.csv"
ROWS = ("teacher", "student", "kd")
# how each source's numbers were obtained, said beside them in the caption
NOTES = {
    "RepDistiller README": (
        "RepDistiller's README (CRD, Tian et al. 2020; github.com/HobbitLong/"
        "RepDistiller), CIFAR-100 top-1: CE teacher, the student trained alone with "
        "CE, and KD = 0.1 CE + 0.9 T²·KL at T = 4, each 240 epochs of SGD; they report "
        "the best epoch on the test set, while our runs are selected on the held-out "
        "validation split, so these rows are a check of the recipe, not cells to match"
    ),
}


def load_reference_numbers() -> pd.DataFrame:
    """`reference_numbers.csv` as one row per published number (module docstring)."""
    path = resources.files("lskd.analysis").joinpath(REFERENCE_CSV)
    with resources.as_file(path) as csv_path:
        return pd.read_csv(csv_path, dtype={"source": str, "benchmark": str})


def row_text(row: str, teacher_arch: str, student_arch: str, source: str) -> str:
    """A reference row's label: `Reference (RepDistiller README): KD resnet8x4, T=4`."""
    what = {
        "teacher": f"teacher {teacher_arch} (CE)",
        "student": f"student {student_arch} alone (CE)",
        "kd": f"KD {student_arch} (0.1 CE + 0.9 KD, T=4)",
    }[row]
    return f"Reference ({source}): {what}"


def reference_rows(
    metrics: Sequence[dict[str, Any]], sources: Sequence[str] | None = None
) -> pd.DataFrame:
    """The published rows for the teacher -> student pair of `metrics` (one table's
    runs), empty when there are none or the runs' class count is not the source's."""
    if sources is None:
        sources = [f"metrics[{i}]" for i in range(len(metrics))]
    runs = [parse_run(m, s) for m, s in zip(metrics, sources, strict=True)]
    students = [r.arch for r in runs if r.role == "student"]
    if not runs or not students:
        return pd.DataFrame()
    classes = {(m.get("chance") or {}).get("classes") for m in metrics}
    numbers = load_reference_numbers()
    return numbers[
        (numbers["teacher_arch"] == runs[0].teacher_arch)
        & (numbers["student_arch"] == students[0])
        & numbers["classes"].isin([c for c in classes if c is not None])
        & (len(classes) == 1)
    ].reset_index(drop=True)


def with_reference_rows(
    table: pd.DataFrame,
    caption: str,
    metrics: Sequence[dict[str, Any]],
    sources: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, str]:
    """`table` with the published rows of its pair appended (their top-1 in the `CE`
    column, `–` elsewhere) and the caption saying where they come from and how they
    were selected; unchanged when the literature has no numbers for the pair."""
    rows = reference_rows(metrics, sources)
    if rows.empty:
        return table, caption
    ce = column_label(Choice.from_alpha(0.0))
    column = ce if ce in table.columns else table.columns[0]
    out = table.copy()
    for r in rows.itertuples():
        label = row_text(r.row, r.teacher_arch, r.student_arch, r.source)
        out.loc[label] = ["–"] * len(out.columns)
        out.loc[label, column] = f"{r.top1:.2f}"
    notes = "; ".join(NOTES.get(s, s) for s in sorted(set(rows["source"])))
    return out, f"{caption} Reference rows (top-1 only, column {column}): {notes}."
