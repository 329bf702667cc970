"""Paper-layout result table (Tables 2 and 4) from the runs' ``metrics.json`` files.

Rows: ``Teacher <arch>``, then ``Student <arch>, T=<T>`` by T ascending (students of
another objective than `kd` get rows of their own, ``Student <arch>, DKD ..., T=<T>``).
Columns: the teachers' regularizers by label (``CE``, ``LS α = 0.1``, ``MaxSup λ =
0.1``), `ce` first (`labels.regularizer_order`). A cell is
``top1 / top5`` (%) or, with several seeds, ``mean ± std`` (sample std) and ``(n=k)``;
an empty cell is ``–``. A cell ends in ``†`` when one of its runs is at chance level
(``chance.at_chance`` of its metrics.json, ``lskd.train.chance.chance_level``); the
caption then says what the mark means.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lskd.analysis.formats import write_table_files
from lskd.analysis.labels import (
    column_label,
    latex_label,
    objective_order,
    regularizer_order,
    row_label,
)
from lskd.analysis.paper import with_paper_columns
from lskd.analysis.records import (
    EPOCH_TEXT,
    Run,
    check_consistent,
    parse_run,
    read_metrics,
)
from lskd.analysis.reference import with_reference_rows
from lskd.errors import DataError
from lskd.identity import DEFAULT_OBJECTIVE
from lskd.train.chance import CHANCE_POINTS, CHANCE_SIGMAS

log = logging.getLogger(__name__)

MISSING = "–"
CHANCE_MARK = "†"
CHANCE_NOTE = (
    f" {CHANCE_MARK} marks a cell with a run at chance level: its test top-1 is below "
    "100/K (K classes) plus the margin in its metrics.json (key chance: the larger of "
    f"{CHANCE_POINTS:g} points and {CHANCE_SIGMAS:g} binomial standard deviations of "
    "guessing on the test split), so that run did not learn."
)


def format_values(*columns: Sequence[float]) -> str:
    """One cell from per-run values of one or more metrics: ``a / b`` for one run;
    ``mean ± std / mean ± std (n=k)`` (sample std) for several; ``–`` for none."""
    n = len(columns[0])
    if n == 0:
        return MISSING
    if n == 1:
        return " / ".join(f"{c[0]:.2f}" for c in columns)
    parts = (np.asarray(c, dtype=float) for c in columns)
    text = " / ".join(f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" for v in parts)
    return f"{text} (n={n})"


def format_cell(runs: Sequence[Run]) -> str:
    """``top1 / top5`` for one run; ``mean ± std / mean ± std (n=k)`` for several;
    `` †`` appended when a run is at chance level."""
    text = format_values([r.top1 for r in runs], [r.top5 for r in runs])
    return f"{text} {CHANCE_MARK}" if any(r.at_chance for r in runs) else text


def _parse_all(
    metrics: Sequence[dict[str, Any]], sources: Sequence[str] | None
) -> list[Run]:
    if not metrics:
        raise DataError("no metrics.json given")
    if sources is None:
        sources = [f"metrics[{i}]" for i in range(len(metrics))]
    if len(sources) != len(metrics):
        raise DataError("sources and metrics differ in length")
    runs = [parse_run(m, s) for m, s in zip(metrics, sources, strict=True)]
    check_consistent(runs)
    return runs


def build_table(
    metrics: Sequence[dict[str, Any]], sources: Sequence[str] | None = None
) -> pd.DataFrame:
    """Paper-layout table; ``sources`` (e.g. file names) are named in errors."""
    runs = _parse_all(metrics, sources)
    teacher_arch = runs[0].teacher_arch
    students = [r for r in runs if r.role == "student"]
    regs = sorted({r.regularizer for r in runs}, key=regularizer_order)
    rows: list[tuple[str, tuple]] = [
        (row_label("teacher", teacher_arch), ("teacher", None, None))
    ]
    if students:
        arch = students[0].arch
        cells_of = sorted(
            {(r.objective, r.T) for r in students},
            key=lambda k: (objective_order(k[0]), k[1]),
        )
        rows += [
            (row_label("student", arch, T, obj), ("student", obj, T))
            for obj, T in cells_of
        ]
    cells = {
        label: [
            format_cell([r for r in runs if r.key == (role, reg, objective, T)])
            for reg in regs
        ]
        for label, (role, objective, T) in rows
    }
    table = pd.DataFrame.from_dict(
        cells, orient="index", columns=[column_label(reg) for reg in regs]
    )
    table.index.name = "model"
    return table


def table_caption(
    metrics: Sequence[dict[str, Any]], sources: Sequence[str] | None = None
) -> str:
    """One sentence: task, teacher→student, split, selected epoch, KD loss."""
    runs = _parse_all(metrics, sources)
    first = runs[0]
    students = [r for r in runs if r.role == "student"]
    pair = f"teacher {first.teacher_arch}"
    regs = sorted({r.regularizer for r in runs}, key=regularizer_order)
    kd = ""
    if students:
        pair += f" → student {students[0].arch}"
        objectives = sorted({r.objective for r in students}, key=objective_order)
        if objectives == [DEFAULT_OBJECTIVE]:
            kd = (
                "; students are trained with KD at temperature T as in "
                "docs/recipes.md#kd-loss (T²·KL, no hard-label term)"
            )
        else:
            kd = (
                "; students are trained at temperature T with "
                + ", ".join(o.label for o in objectives)
                + " (KD rows unmarked; docs/recipes.md#kd-loss)"
            )
    teacher_epochs, student_epochs = (
        " or ".join(sorted({EPOCH_TEXT[r.selection] for r in runs if r.role == role}))
        for role in ("teacher", "student")
    )
    if not student_epochs or teacher_epochs in ("", student_epochs):
        epoch = f"at the {teacher_epochs or student_epochs}"
    else:
        epoch = (
            f"at the {teacher_epochs} (teachers) and the {student_epochs} (students)"
        )
    return (
        f"{first.task}, {pair}: cells are top-1 / top-5 accuracy (%) on the "
        f"{first.eval_split} split {epoch}, "
        "as mean ± sample std with the number of seeds n when there are several; "
        "columns name the teachers' regularizer ("
        + ", ".join(r.label for r in regs)
        + f"){kd}."
        + (CHANCE_NOTE if any(r.at_chance for r in runs) else "")
    )


def write_table(
    metric_paths: Sequence[Path],
    out_csv: Path,
    out_md: Path,
    out_tex: Path,
    out_html: Path | None = None,
) -> pd.DataFrame:
    """Build the table from ``metric_paths``; write CSV, Markdown, LaTeX (and HTML).

    When the paper has numbers for this task and teacher -> student pair, each `ce` /
    `ls` column is followed by the paper's cell and the top-1 delta
    (``with_paper_columns``); when the KD literature publishes numbers for the pair
    (CIFAR-100), they follow as reference rows (``reference.with_reference_rows``).
    """
    paths = [Path(p) for p in metric_paths]
    metrics = [read_metrics(p) for p in paths]
    sources = [str(p) for p in paths]

    table = build_table(metrics, sources)
    caption = table_caption(metrics, sources)
    table, caption = with_paper_columns(table, caption, metrics, sources)
    table, caption = with_reference_rows(table, caption, metrics, sources)
    first = next(parse_run(m, s) for m, s in zip(metrics, sources, strict=True))
    label = latex_label(first.task, first.teacher_arch, _student_arch(metrics, sources))
    write_table_files(table, caption, label, out_csv, out_md, out_tex, out_html)
    log.info("wrote %s and more from %d runs", out_csv, len(paths))
    return table


def _student_arch(metrics: Sequence[dict], sources: Sequence[str]) -> str:
    runs = [parse_run(m, s) for m, s in zip(metrics, sources, strict=True)]
    return next((r.arch for r in runs if r.role == "student"), "teacher")
