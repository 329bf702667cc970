"""Where each projection goes in a projection figure (`lskd figure`), read from its run.

A ``projection.npz`` lies in the directory of the run it projects, beside that run's
``metrics.json`` (one training job writes the model `lskd analyse` projects and the
metrics), which records the run's identity (`lskd.identity.RunId`). A figure's columns
are the teachers' regularizers (`ce` first, then `labels.regularizer_order`); its rows
are the teachers (``teacher``) and the students by objective and T (``T = <T>``, with
the objective's label before T when the figure has students of several objectives).
Rows and columns are those of the runs given, in whatever order the files are given;
every cell needs exactly one projection, and all runs of one figure share task,
architectures and seed. A run at chance level (``chance.at_chance`` of its
metrics.json) is flagged in ``Layout.chance`` so its panels carry the tables' mark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lskd.analysis.labels import (
    column_label,
    objective_order,
    panel_row,
    regularizer_order,
)
from lskd.analysis.records import check_same, parse_run, read_metrics
from lskd.errors import DataError
from lskd.identity import METRICS


@dataclass(frozen=True)
class Layout:
    """``grid[r][c]``: the projection of row ``rows[r]`` and column ``columns[c]``
    (labels); ``chance[r][c]``: that run is at chance level."""

    rows: list[str]
    columns: list[str]
    grid: list[list[Path]]
    chance: list[list[bool]]


def arrange(projections: Sequence[Path]) -> Layout:
    """The figure's rows, columns and projections, from the ``metrics.json`` beside
    each projection (module docstring)."""
    cells: dict[tuple, Path] = {}
    chance: dict[tuple, bool] = {}
    runs = []
    for path in map(Path, projections):
        metrics = path.parent / METRICS
        if not metrics.is_file():
            raise DataError(
                f"{path}: no {METRICS} beside it (a projection lies in its run's "
                "directory)"
            )
        run = parse_run(read_metrics(metrics), str(metrics))
        key = (run.role, run.objective, run.T, run.regularizer)
        if key in cells:
            raise DataError(
                f"{path}: a second projection of the same run identity (the first: "
                f"{cells[key]})"
            )
        cells[key] = path
        chance[key] = run.at_chance
        runs.append(run)
    if not runs:
        raise DataError("figure: no projection given")
    check_same([(f, runs) for f in ("task", "teacher_arch", "arch", "seed")])
    rows = sorted(
        {k[:3] for k in cells},
        key=lambda r: (r[0] != "teacher", objective_order(r[1]), r[2] or 0.0),
    )
    columns = sorted({k[3] for k in cells}, key=regularizer_order)
    several = len({r[1] for r in rows if r[0] == "student"}) > 1
    labels = [panel_row(*row, several) for row in rows]
    missing = [
        f"{label}, {column_label(reg)}"
        for row, label in zip(rows, labels, strict=True)
        for reg in columns
        if (*row, reg) not in cells
    ]
    if missing:
        raise DataError(f"figure: no projection of {'; '.join(missing)}")
    grid = [[cells[(*row, reg)] for reg in columns] for row in rows]
    at_chance = [[chance[(*row, reg)] for reg in columns] for row in rows]
    return Layout(labels, [column_label(reg) for reg in columns], grid, at_chance)
