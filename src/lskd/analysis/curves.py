"""Training curves of one teacher → student pair, from each run's own metrics.json
``history``: did every model converge, did any diverge?

One figure, two rows (training loss per epoch; validation top-1 at the validated
epochs) and one column for the teachers plus one per student objective. A line is one
cell of the tables (a teacher's regularizer; a student's regularizer and T): the mean
over seeds with its 95 % Student-t band (none with one seed). Students of the same T
share a colour, regularizers a line style; the training loss axis is logarithmic (the
KD loss grows with T²). A run at chance level is marked `†` in its line's label and a
run whose training loss is not finite `‡ diverged`: its finite epochs are drawn, the
rest are left out, and the legend says so.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from lskd.analysis.labels import (
    objective_order,
    regularizer_order,
    students_text,
    t_text,
)
from lskd.analysis.plots import save_png
from lskd.analysis.records import Run, parse_run, read_metrics
from lskd.analysis.stats import interval
from lskd.analysis.tables import CHANCE_MARK
from lskd.errors import DataError

log = logging.getLogger(__name__)

DIVERGED_MARK = "‡"
PANELS = (
    ("train_loss", "training loss (log scale)"),
    ("val_top1", "validation top-1 (%)"),
)
STYLES = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class Curve:
    """One line: the runs of one cell, their per-epoch values of one history key."""

    label: str
    epochs: list[int]
    means: list[float]
    lows: list[float]
    highs: list[float]
    colour: str
    style: str


def history_of(metrics: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """The ``history`` list of a metrics.json, each entry with an integer ``epoch``;
    errors name the file."""
    history = metrics.get("history")
    if not isinstance(history, list) or not all(
        isinstance(h, dict) and isinstance(h.get("epoch"), int) for h in history
    ):
        raise DataError(f"{source}: key 'history' is not a list of epoch entries")
    return history


def _values(history: list[dict[str, Any]], key: str) -> dict[int, float]:
    """``{epoch: value}`` of the epochs that have a number for ``key`` (validation is
    recorded only on validated epochs); non-finite values are kept (divergence)."""
    return {
        h["epoch"]: float(h[key])
        for h in history
        if isinstance(h.get(key), int | float) and not isinstance(h.get(key), bool)
    }


def diverged(history: list[dict[str, Any]]) -> bool:
    """Whether any epoch's training loss is not finite."""
    return any(not math.isfinite(v) for v in _values(history, "train_loss").values())


def _cell_curve(
    runs: Sequence[tuple[Run, list[dict[str, Any]]]],
    key: str,
    label: str,
    colour: str,
    style: str,
) -> Curve:
    """Mean and 95 % band over the seeds of one cell, epoch by epoch (finite values
    only)."""
    per_epoch: dict[int, list[float]] = {}
    for _, history in runs:
        for epoch, value in _values(history, key).items():
            if math.isfinite(value):
                per_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(per_epoch)
    ests = [interval(per_epoch[e]) for e in epochs]
    marks = ""
    if any(run.at_chance for run, _ in runs):
        marks += f" {CHANCE_MARK} at chance"
    if any(diverged(history) for _, history in runs):
        marks += f" {DIVERGED_MARK} diverged"
    return Curve(
        label + marks,
        epochs,
        [e.mean for e in ests],
        [e.low for e in ests],
        [e.high for e in ests],
        colour,
        style,
    )


def _cells(
    runs: Sequence[tuple[Run, list[dict[str, Any]]]],
) -> dict[tuple, list[tuple[Run, list[dict[str, Any]]]]]:
    cells: dict[tuple, list] = {}
    for run, history in runs:
        cells.setdefault(run.id.method_key, []).append((run, history))
    return cells


def curves(
    runs: Sequence[tuple[Run, list[dict[str, Any]]]], key: str
) -> dict[str, list[Curve]]:
    """The lines of each column (``teachers`` or a student objective's label) for
    one history ``key``."""
    cells = _cells(runs)
    regs = sorted({k[1] for k in cells}, key=regularizer_order)
    temps = sorted({k[3] for k in cells if k[3] is not None})
    columns: dict[str, list[Curve]] = {}
    for role, reg, objective, T in sorted(
        cells,
        key=lambda k: (
            k[0] != "teacher",
            objective_order(k[2]),
            k[3] or 0.0,
            regularizer_order(k[1]),
        ),
    ):
        group = cells[(role, reg, objective, T)]
        style = STYLES[regs.index(reg) % len(STYLES)]
        if role == "teacher":
            column = "teachers"
            colour, label = f"C{regs.index(reg)}", f"{reg.label} teacher"
        else:
            column = students_text(objective)
            colour = f"C{temps.index(T)}"
            label = f"{reg.label}, T = {t_text(T)}"
        columns.setdefault(column, []).append(
            _cell_curve(group, key, label, colour, style)
        )
    return columns


def _draw(ax, lines: Sequence[Curve], log_y: bool) -> None:
    for c in lines:
        if not c.epochs:
            continue
        ax.plot(c.epochs, c.means, c.style, color=c.colour, lw=1.5, label=c.label)
        band = [
            (e, lo, hi) for e, lo, hi in zip(c.epochs, c.lows, c.highs, strict=True)
        ]
        band = [b for b in band if math.isfinite(b[1]) and math.isfinite(b[2])]
        if band:
            e, lo, hi = (list(v) for v in zip(*band, strict=True))
            ax.fill_between(e, lo, hi, color=c.colour, alpha=0.15, lw=0)
    if log_y and any(v > 0 for c in lines for v in c.means):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")


def plot_curves(
    metrics_paths: Sequence[Path], out_png: Path, title: str | None = None
) -> dict[str, dict[str, list[Curve]]]:
    """The training-curve figure of one pair's runs (module docstring); returns the
    lines drawn, per history key and column."""
    runs = []
    for path in map(Path, metrics_paths):
        metrics = read_metrics(path)
        runs.append((parse_run(metrics, str(path)), history_of(metrics, str(path))))
    if not runs:
        raise DataError("no metrics.json given")
    drawn = {key: curves(runs, key) for key, _ in PANELS}
    columns = list(drawn[PANELS[0][0]])
    fig = Figure(figsize=(5.6 * len(columns) + 1.0, 7.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(PANELS), len(columns), squeeze=False))
    for row, (key, ylabel) in enumerate(PANELS):
        for col, column in enumerate(columns):
            ax = axes[row, col]
            _draw(ax, drawn[key].get(column, []), log_y=key == "train_loss")
            if row == 0:
                ax.set_title(column, fontsize=10)
            if col == 0:
                ax.set_ylabel(ylabel)
            if row == len(PANELS) - 1:
                ax.legend(fontsize=7, loc="lower right", ncol=1)
    first = runs[0][0]
    fig.suptitle(
        title
        or f"{first.task}: {first.teacher_arch} teachers and their students, training "
        "curves (mean and 95 % band over seeds; "
        f"{CHANCE_MARK} at chance, {DIVERGED_MARK} diverged)",
        fontsize=9,
    )
    save_png(fig, out_png)
    flagged = sorted(
        c.label
        for lines in drawn[PANELS[0][0]].values()
        for c in lines
        if DIVERGED_MARK in c.label or CHANCE_MARK in c.label
    )
    for label in flagged:
        log.warning("curves: %s", label)
    log.info("wrote %s from %d runs", out_png, len(runs))
    return drawn
