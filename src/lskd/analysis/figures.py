"""Grids of penultimate-layer projections (step 9 of
docs/visualisation.md#the-official-script).

One row per row label (e.g. teacher, or one student temperature); columns are ``[train
reg_0, train reg_1, ..., test reg_0, test reg_1, ...]`` for the teachers' regularizers
(labelled, e.g. ``CE``, ``LS α = 0.1``; `lskd.analysis.panels` places the files).
Each panel shows one model's 2-D projection (``projection.project_file`` output):
points coloured by class and the class centroids as large black-edged stars. The
train and test panels of one model share their axis limits, since one PCA maps both;
panels of different models use different PCAs and are not comparable. A model at
chance level has its panels marked with the tables' † (`lskd.analysis.tables`).

Drawn with ``lskd.analysis.plots`` (no pyplot; PNG by Agg).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lskd.analysis.plots import save_pdf, save_png
from lskd.analysis.projection import OUTPUT_KEYS, load_npz
from lskd.analysis.tables import CHANCE_MARK
from lskd.errors import DataError

log = logging.getLogger(__name__)

COLOURS = ("tab:red", "tab:green", "tab:blue")
SPLITS = ("train", "test")
PANEL_INCHES = 2.4


def _limits(proj: dict[str, np.ndarray]) -> tuple[tuple[float, float], ...]:
    """Square x and y limits covering train, test and centroids, 5 % margin."""
    points = np.vstack(
        [proj[f"{split}_2d"] for split in SPLITS]
        + [proj[f"{split}_centroids_2d"] for split in SPLITS]
    )
    low, high = points.min(axis=0), points.max(axis=0)
    half = 0.55 * max(float(np.max(high - low)), 1e-9)
    return tuple((float(c - half), float(c + half)) for c in (low + high) / 2)


def _draw_panel(ax: Axes, proj: dict[str, np.ndarray], split: str) -> None:
    """Scatter one split of one projection, with its class centroids as stars."""
    points, labels = proj[f"{split}_2d"], proj[f"{split}_labels"]
    centroids = proj[f"{split}_centroids_2d"]
    for k, colour in enumerate(COLOURS):
        ax.scatter(*points[labels == k].T, s=6, c=colour, alpha=0.5, linewidths=0)
    ax.scatter(
        *centroids.T,
        s=220,
        marker="*",
        c=list(COLOURS),
        edgecolors="black",
        linewidths=1.0,
        zorder=3,
    )
    xlim, ylim = _limits(proj)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_aspect("equal", adjustable="box")
    ax.tick_params(labelsize=6, length=2, pad=1)


def _load_grid(
    projections: Sequence[Sequence[Path]], n_rows: int, n_columns: int
) -> list[list[dict[str, np.ndarray]]]:
    """Load every projection; check the grid shape and that classes agree."""
    if n_rows == 0 or n_columns == 0:
        raise DataError("projection grid is empty")
    if len(projections) != n_rows or any(len(row) != n_columns for row in projections):
        raise DataError(
            f"projections must be {n_rows} rows x {n_columns} columns "
            "(one row per row label, one file per column)"
        )
    grid = [[load_npz(Path(p), OUTPUT_KEYS) for p in row] for row in projections]
    names = grid[0][0]["class_names"]
    for row, paths in zip(grid, projections, strict=True):
        for proj, path in zip(row, paths, strict=True):
            if proj["class_names"].shape != (3,):
                raise DataError(f"{path}: key 'class_names' must have shape (3,)")
            if not np.array_equal(proj["class_names"], names):
                raise DataError(
                    f"{path}: key 'class_names' {proj['class_names'].tolist()} "
                    f"differs from {names.tolist()} in {projections[0][0]}"
                )
    return grid


def _build_figure(
    grid: list[list[dict[str, np.ndarray]]],
    row_labels: Sequence[str],
    columns: Sequence[str],
    title: str,
    chance: Sequence[Sequence[bool]],
) -> Figure:
    """Lay out the panels, column titles, row labels, legend and title; the panels
    of a model at chance level (``chance[r][c]``) carry the mark in a corner."""
    n_rows, n_cols = len(row_labels), 2 * len(columns)
    fig = Figure(
        figsize=(PANEL_INCHES * n_cols + 0.6, PANEL_INCHES * n_rows + 0.9),
        layout="constrained",
    )
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, row_label in enumerate(row_labels):
        for s, split in enumerate(SPLITS):
            for c, column in enumerate(columns):
                ax = axes[r, s * len(columns) + c]
                _draw_panel(ax, grid[r][c], split)
                if chance[r][c]:
                    ax.text(
                        0.03,
                        0.97,
                        f"{CHANCE_MARK} at chance",
                        transform=ax.transAxes,
                        ha="left",
                        va="top",
                        fontsize=8,
                        color="black",
                    )
                if r == 0:
                    ax.set_title(f"{split}, {column}", fontsize=9)
        axes[r, 0].set_ylabel(row_label, fontsize=9)
    handles = [
        Line2D([], [], ls="", marker="o", color=colour, label=str(name))
        for colour, name in zip(COLOURS, grid[0][0]["class_names"], strict=True)
    ]
    centroid = Line2D([], [], ls="", marker="*", ms=11, mfc="white", mec="black")
    centroid.set_label("class centroid")
    handles.append(centroid)
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8)
    if any(any(row) for row in chance):
        title += f" ({CHANCE_MARK}: a model at chance level, it did not learn)"
    fig.suptitle(title, fontsize=10)
    return fig


def plot_projection_grid(
    projections: Sequence[Sequence[Path]],
    row_labels: Sequence[str],
    columns: Sequence[str],
    title: str,
    out_png: Path,
    out_pdf: Path,
    chance: Sequence[Sequence[bool]] | None = None,
) -> None:
    """Draw ``projections[r][c]`` (row r, column c: a teacher regularizer's label)
    as train and test panels; ``chance[r][c]`` marks a model at chance level."""
    grid = _load_grid(projections, len(row_labels), len(columns))
    if chance is None:
        chance = [[False] * len(columns) for _ in row_labels]
    fig = _build_figure(grid, row_labels, columns, title, chance)
    save_png(fig, out_png)
    save_pdf(fig, out_pdf)
    log.info("wrote %s and %s", out_png, out_pdf)
