"""Every matplotlib helper of the analysis figures: saving, the log-2 temperature axis,
series spread apart beside their T, and error bars of 95 % intervals.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot, so no global
state or GUI backend); PNGs are rendered by Agg, each file written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lskd.analysis.labels import t_text
from lskd.analysis.stats import Estimate
from lskd.atomic import atomic_path

PNG_DPI = 110  # report-sized PNGs (the PDFs are vector)


def save_png(fig: Figure, out_png: Path) -> None:
    with atomic_path(Path(out_png)) as tmp:
        fig.savefig(tmp, format="png", dpi=PNG_DPI)


def save_pdf(fig: Figure, out_pdf: Path) -> None:
    """A PDF without a creation date (identical runs give identical files)."""
    with atomic_path(Path(out_pdf)) as tmp:
        fig.savefig(tmp, format="pdf", metadata={"CreationDate": None})


def jitter(temps: Sequence[float], i: int, k: int) -> np.ndarray:
    """Spread k series apart on a log2 T axis so their error bars do not overlap."""
    return np.asarray(temps, dtype=float) * 2.0 ** (0.05 * (i - (k - 1) / 2))


def yerr(ests: Sequence[Estimate]) -> np.ndarray:
    """``errorbar``'s (2, n) lengths below and above each mean (0 without an
    interval)."""
    low = [e.mean - e.low if e.has_interval else 0.0 for e in ests]
    high = [e.high - e.mean if e.has_interval else 0.0 for e in ests]
    return np.array([low, high], dtype=float).reshape(2, len(ests))


def errorbars(ax, xs, ests: Sequence[Estimate], colour: str, label: str, **style):
    """Means with their 95 % intervals as error bars (``style``: further
    ``errorbar`` options, default ``fmt="o-"``, ``capsize=3``)."""
    style = {"fmt": "o-", "capsize": 3} | style
    ax.errorbar(
        xs, [e.mean for e in ests], yerr=yerr(ests), color=colour, label=label, **style
    )


def temperature_axis(ax, temps: Sequence[float], zero_line: bool = True) -> None:
    """A log-2 axis of KD temperatures ticked at ``temps``; the zero line of a Δ."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(temps), [t_text(T) for T in temps])
    ax.minorticks_off()
    ax.set_xlabel("KD temperature T (log scale)")
    if zero_line:
        ax.axhline(0.0, color="black", lw=0.8)
