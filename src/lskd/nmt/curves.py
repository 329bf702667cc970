"""Validation loss per update of the NMT runs of Table 5 (teachers and students), one
figure, drawn from the ``valid_history`` that `lskd.nmt.fairseq_run.record_validation`
writes into every run's ``train.json`` (and hence ``metrics.json``, key ``train``).

One row per pair, two panels, both on log scales: the validation NLL of the references
(bits per token: the one loss every run has, comparable across teachers and
temperatures) and the validation loss of the run's own criterion (label-smoothed CE for
teachers, the T²-scaled KD mixture for students, which grows with T²). Teachers are
black, students one colour per T; α = 0 solid, α > 0 dashed. With several seeds a line
is the mean over seeds and a band their range. A run is flagged **diverged** (red × at
its last point, ``‡ diverged`` in the legend, the image curves' mark) when a
validation loss of its criterion is not finite, or the last one is above the first:
it did not fall.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from lskd.analysis.labels import format_alpha
from lskd.analysis.plots import save_png
from lskd.analysis.records import read_metrics
from lskd.errors import DataError

DIVERGED_MARK = "‡"  # as lskd.analysis.curves marks a diverged image run
PANELS = (
    ("nll_loss", "validation NLL of the references (bits/token, log)"),
    ("loss", "validation loss of the run's criterion (bits/token, log)"),
)


@dataclass(frozen=True)
class Curve:
    source: str
    task: str
    role: str
    alpha: float
    T: float | None
    seed: int
    history: tuple[dict[str, Any], ...]

    @property
    def key(self) -> tuple:
        return (self.task, self.role, self.alpha, self.T)


def diverged(history: Sequence[dict[str, Any]], key: str = "loss") -> bool:
    """A validation loss (``key``) that is missing or not finite, or a last one above
    the first."""
    values = [h.get(key) for h in history]
    if any(v is None or not math.isfinite(v) for v in values):
        return True
    return len(values) >= 2 and values[-1] > values[0]


def parse_curve(metrics: dict[str, Any], source: str) -> Curve:
    """One NMT run's history from its ``metrics.json`` (or ``train.json``)."""
    train = metrics.get("train", metrics)
    history = train.get("valid_history")
    if not isinstance(history, list) or not history:
        raise DataError(
            f"{source}: no 'valid_history' (runs trained before lskd recorded it: "
            "retrain them)"
        )
    role = metrics.get("role")
    T = metrics.get("T") if role == "student" else None
    return Curve(
        source=source,
        task=str(metrics.get("task")),
        role=str(role),
        alpha=float(metrics.get("alpha")),
        T=float(T) if T is not None else None,
        seed=int(metrics.get("seed")),
        history=tuple(history),
    )


def _label(curve: Curve) -> str:
    who = "teacher" if curve.role == "teacher" else f"student T={curve.T:g}"
    return f"{who}, {format_alpha(curve.alpha)}"


def _series(runs: Sequence[Curve], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Updates validated by every seed and the (seeds, updates) values there (NaN
    where missing or not finite)."""
    common = sorted(set.intersection(*({h["update"] for h in r.history} for r in runs)))
    values = np.full((len(runs), len(common)), np.nan)
    for i, run in enumerate(runs):
        at = {h["update"]: h.get(key) for h in run.history}
        for j, u in enumerate(common):
            v = at[u]
            values[i, j] = v if v is not None and math.isfinite(v) else np.nan
    return np.asarray(common, dtype=float), values


def _band(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over seeds (rows) of the finite values; NaN where none."""
    finite = np.isfinite(y)
    count = finite.sum(axis=0)
    none = count == 0
    mean = np.where(finite, y, 0.0).sum(axis=0) / np.maximum(count, 1)
    low = np.where(finite, y, np.inf).min(axis=0)
    high = np.where(finite, y, -np.inf).max(axis=0)
    return tuple(np.where(none, np.nan, v) for v in (mean, low, high))


def plot_nmt_curves(metric_paths: Sequence[Path], out_png: Path) -> list[str]:
    """Draw the figure of the module docstring into ``out_png``; returns the labels
    (pair: run) of the runs flagged diverged."""
    curves = [parse_curve(read_metrics(Path(p)), str(p)) for p in metric_paths]
    if not curves:
        raise DataError("no NMT metrics.json given")
    from lskd.nmt.table import pair_label

    tasks = sorted({c.task for c in curves})
    temps = sorted({c.T for c in curves if c.T is not None})
    cmap = __import__("matplotlib").colormaps["viridis"]
    colour = {T: cmap(0.85 * i / max(1, len(temps) - 1)) for i, T in enumerate(temps)}
    fig = Figure(figsize=(11, 3.6 * len(tasks)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(tasks), len(PANELS), squeeze=False))
    flagged = []
    for row, task in zip(axes, tasks, strict=True):
        groups: dict[tuple, list[Curve]] = {}
        for c in curves:
            if c.task == task:
                groups.setdefault(c.key, []).append(c)
        order = sorted(groups, key=lambda k: (k[1] != "teacher", k[3] or 0, k[2]))
        for key in order:
            runs = groups[key]
            bad = any(diverged(r.history) for r in runs)
            label = _label(runs[0]) + (f" {DIVERGED_MARK} diverged" if bad else "")
            if len(runs) > 1:
                label += f" (n={len(runs)})"
            if bad:
                flagged.append(f"{pair_label(task)}: {label}")
            style = {
                "color": "black" if key[1] == "teacher" else colour[key[3]],
                "ls": "-" if key[2] == 0 else "--",
                "lw": 2.0 if key[1] == "teacher" else 1.3,
            }
            for ax, (name, _) in zip(row, PANELS, strict=True):
                x, y = _series(runs, name)
                if not len(x):
                    continue
                mean, low, high = _band(y)
                ax.plot(x, mean, label=label, marker=".", ms=4, **style)
                if len(runs) > 1:
                    ax.fill_between(x, low, high, color=style["color"], alpha=0.15)
                if bad:
                    finite = np.flatnonzero(np.isfinite(mean))
                    if len(finite):
                        last = finite[-1]
                        ax.plot(x[last], mean[last], "x", color="red", ms=10, mew=2)
        for ax, (_, title) in zip(row, PANELS, strict=True):
            ax.set_title(f"{pair_label(task)}: {title}", fontsize=9)
            ax.set_xlabel("update")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
        row[-1].legend(fontsize=7, loc="upper right")
    save_png(fig, out_png)
    return flagged
