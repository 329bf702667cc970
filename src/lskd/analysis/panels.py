"""Where each projection goes in a projection figure (`lskd figure`), read from its run.

A ``projection.npz`` lies in the directory of the run it projects, beside that run's
``metrics.json`` (one training job writes the model `lskd analyse` projects and the
metrics), which says the run's role, alpha, T, task, architectures and seed. A
figure's rows are labelled by identity, ``teacher`` or ``T = <T>`` with T spelled as in
run paths (`row_label`); its columns are alphas. Each projection goes to the row of
its run's label and the column of its alpha, in whatever order the files are given;
every cell needs exactly one, and all runs of one figure share task, architectures and
seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lskd.analysis.records import check_same, parse_run, read_metrics
from lskd.errors import DataError
from lskd.plan.checks import path_token

TEACHER_ROW = "teacher"
METRICS = "metrics.json"


def row_label(T: float | None) -> str:
    """The row of a run in a projection figure: ``teacher`` (T None) or ``T = <T>``."""
    return TEACHER_ROW if T is None else f"T = {path_token(T)}"


def arrange(
    projections: Sequence[Path], rows: Sequence[str], alphas: Sequence[float]
) -> list[list[Path]]:
    """``grid[r][a]``: the projection whose run has row label ``rows[r]`` and alpha
    ``alphas[a]``, from the ``metrics.json`` beside each projection."""
    cells: dict[tuple[str, float], Path] = {}
    runs = []
    for path in map(Path, projections):
        metrics = path.parent / METRICS
        if not metrics.is_file():
            raise DataError(
                f"{path}: no {METRICS} beside it (a projection lies in its run's "
                "directory)"
            )
        run = parse_run(read_metrics(metrics), str(metrics))
        key = (row_label(run.T), run.alpha)
        if key in cells:
            raise DataError(
                f"{path}: a second projection of {key[0]}, alpha {run.alpha:g} "
                f"(the first: {cells[key]})"
            )
        if key[0] not in rows or run.alpha not in alphas:
            raise DataError(
                f"{path}: its run ({key[0]}, alpha {run.alpha:g}) is in no row "
                f"({', '.join(rows)}) or column (alphas "
                f"{', '.join(format(a, 'g') for a in alphas)}) of the figure"
            )
        cells[key] = path
        runs.append(run)
    check_same([(f, runs) for f in ("task", "teacher_arch", "arch", "seed")])
    missing = [
        f"{row}, alpha {a:g}" for row in rows for a in alphas if (row, a) not in cells
    ]
    if missing:
        raise DataError(f"figure: no projection of {'; '.join(missing)}")
    return [[cells[(row, a)] for a in alphas] for row in rows]
