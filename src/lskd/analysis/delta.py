"""The LS benefit Δ(T) of one teacher → student pair: the question of Chandrasegaran et
al. 2022 ("to smooth the teacher or not, and at which temperature?") answered on the
user's runs.

For every alpha > 0 in the runs and every KD temperature T::

    Δ(T) = top-1 of the alpha teacher's student - top-1 of the alpha = 0 teacher's
           student,

paired by the student's seed (the two students of one seed share initialisation, data
order and, when it is a subset, the transfer set), as the mean of the per-seed
differences with the 95 % Student-t interval over them (``lskd.analysis.stats``). Every
identity (role, alpha, T, seed, transfer set) comes from the ``metrics.json`` contents,
never from the order of the files.

Outputs (``delta_summary.write_delta``): the table (CSV with the numbers; Markdown,
LaTeX, HTML), a figure of Δ against T (``delta_figure``) with the paper's own Δ(T)
(its Tables 2 and 4, computed from ``paper_numbers.csv``: student top-1 with the alpha
= 0.1 teacher minus with the alpha = 0 teacher) as labelled reference lines, and a
summary written from the numbers of the run (Markdown and an HTML fragment the report
shows first). Beside Δ the table puts the students' 1 − S (Shen et al. 2021, Eq. (2))
and, where the penultimate figures were drawn, lskd's diffusion metrics, each as mean
[interval] over seeds for both teachers' students: the paper explains the falling
Δ(T) by the LS teacher's students diffusing more as T rises.

``delta_transfer.transfer_interaction`` compares Δ(T) across transfer-set sizes (runs
that differ only in their students' ``transfer`` record): Δ per size and, per T, the
paired-by-seed difference Δ_size(T) - Δ_ref(T) against the whole split (``all``) or,
without it, the largest size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lskd.analysis.diffusion_table import STABILITY, estimates, read_runs
from lskd.analysis.records import Run, check_consistent, format_alpha, parse_run
from lskd.analysis.stats import (
    PAIRED_TEXT,
    Estimate,
    format_estimate,
    interval,
    paired,
    seed_cells,
)
from lskd.errors import DataError

log = logging.getLogger(__name__)

BASE_ALPHA = 0.0
# Beside Δ: the students' 1 - S (always) and these diffusion metrics (when given).
NEXT_TO_DELTA = {
    STABILITY: "1 − S",
    "separation": "separation",
    "anisotropy_0": "anisotropy_0",
}


@dataclass(frozen=True)
class Transfer:
    """A student's KD transfer set, from its metrics.json ``transfer`` record."""

    size: str
    images: int

    @property
    def text(self) -> str:
        return f"{self.size} ({self.images} images)"


@dataclass(frozen=True)
class PairRuns:
    """The validated runs of one teacher → student pair (one transfer set)."""

    runs: list[Run]
    metrics: list[dict[str, Any]]
    sources: list[str]
    transfer: Transfer | None

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def student_arch(self) -> str:
        return next((r.arch for r in self.runs if r.role == "student"), "-")

    @property
    def title(self) -> str:
        r = self.first
        return f"{r.task}, {r.teacher_arch} teachers → {self.student_arch} students"


def transfer_of(metrics: dict[str, Any], source: str) -> Transfer | None:
    """The ``transfer`` record of a metrics.json (None for teachers and for runs
    without one); a malformed record is an error naming the file and key."""
    record = metrics.get("transfer")
    if record is None:
        return None
    if not isinstance(record, dict):
        raise DataError(f"{source}: key 'transfer' must be an object, got {record!r}")
    size, images = record.get("size"), record.get("images")
    if not isinstance(size, str) or not size:
        raise DataError(f"{source}: key 'transfer.size' has bad value {size!r}")
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise DataError(f"{source}: key 'transfer.images' has bad value {images!r}")
    return Transfer(size, images)


def source_names(metrics: Sequence[dict], sources: Sequence[str] | None) -> list[str]:
    if not metrics:
        raise DataError("no metrics.json given")
    if sources is None:
        return [f"metrics[{i}]" for i in range(len(metrics))]
    if len(sources) != len(metrics):
        raise DataError("sources and metrics differ in length")
    return list(sources)


def parse_pair(
    metrics: Sequence[dict[str, Any]], sources: Sequence[str] | None = None
) -> PairRuns:
    """Validate one pair's runs (``records.check_consistent``): its students must share
    one transfer set (the error names two files that differ)."""
    sources = source_names(metrics, sources)
    runs = [parse_run(m, s) for m, s in zip(metrics, sources, strict=True)]
    check_consistent(runs)
    transfer: Transfer | None = None
    first: str | None = None
    for m, run in zip(metrics, runs, strict=True):
        if run.role != "student":
            continue
        this = transfer_of(m, run.source)
        if first is None:
            transfer, first = this, run.source
        elif this != transfer:
            raise DataError(
                f"{run.source}: transfer set {this.size if this else None!r} differs "
                f"from {transfer.size if transfer else None!r} in {first} "
                "(one Δ table per transfer-set size; see `lskd delta-transfer`)"
            )
    return PairRuns(runs, list(metrics), sources, transfer)


def _alphas_and_temps(pair: PairRuns) -> tuple[list[float], list[float]]:
    students = [r for r in pair.runs if r.role == "student"]
    alphas = sorted({r.alpha for r in students})
    if BASE_ALPHA not in alphas:
        raise DataError(
            f"{pair.sources[0]} and the others: no student of an alpha = 0 teacher, "
            "which Δ(T) compares against"
        )
    ls = [a for a in alphas if a > BASE_ALPHA]
    if not ls:
        raise DataError(
            f"{pair.sources[0]} and the others: no student of an alpha > 0 teacher"
        )
    return ls, sorted({r.T for r in students if r.T is not None})


@dataclass(frozen=True)
class DeltaRow:
    """Δ(T) of one alpha > 0 at one T, the two students' mean top-1 and, per side
    metric, the (alpha, alpha = 0) students' estimates over seeds."""

    alpha: float
    T: float
    delta: Estimate
    top1_ls: float
    top1_base: float
    sides: dict[str, tuple[Estimate, Estimate]]

    def per_seed(self) -> dict[int, float]:
        """``{seed: Δ of that seed}``."""
        return dict(zip(self.delta.seeds, self.delta.values, strict=True))


Sides = dict[tuple, dict[str, Estimate]]


def side_estimates(
    metrics_paths: Sequence[Path], diffusion_paths: Sequence[Path] = ()
) -> tuple[Sides, pd.DataFrame]:
    """Per (role, alpha, T) the estimates over seeds of ``NEXT_TO_DELTA``, and the
    per-run frame they come from (files paired by run directory:
    ``diffusion_table.read_runs``)."""
    frame = read_runs(metrics_paths, diffusion_paths)
    return estimates(frame, list(NEXT_TO_DELTA)), frame


def delta_rows(pair: PairRuns, sides: Sides | None = None) -> list[DeltaRow]:
    """One ``DeltaRow`` per alpha > 0 and T, alpha then T ascending (module
    docstring); ``sides`` (``side_estimates``) adds the metrics beside Δ."""
    cells = seed_cells(pair.runs)
    alphas, temps = _alphas_and_temps(pair)
    empty = interval([])
    rows = []
    for alpha in alphas:
        for T in temps:
            ls = cells.get(("student", alpha, T), {})
            base = cells.get(("student", BASE_ALPHA, T), {})
            side = {
                metric: tuple(
                    (sides or {}).get(("student", a, T), {}).get(metric, empty)
                    for a in (alpha, BASE_ALPHA)
                )
                for metric in NEXT_TO_DELTA
            }
            rows.append(
                DeltaRow(
                    alpha,
                    T,
                    paired(ls, base),
                    float(np.mean(list(ls.values()))) if ls else math.nan,
                    float(np.mean(list(base.values()))) if base else math.nan,
                    {m: e for m, e in side.items() if any(x.n for x in e)},
                )
            )
    return rows


def side_metrics(rows: Sequence[DeltaRow]) -> list[str]:
    return [m for m in NEXT_TO_DELTA if any(m in r.sides for r in rows)]


def numbers(rows: Sequence[DeltaRow]) -> pd.DataFrame:
    """The CSV: ``alpha``, ``T``, ``delta``, ``ci_low``, ``ci_high``, ``n`` (paired
    seeds), ``seeds``, ``unpaired_seeds``, ``top1_ls``, ``top1_base`` and per side
    metric ``ls_<m>``, ``base_<m>`` with ``_low`` / ``_high``."""
    metrics = side_metrics(rows)
    records = []
    for r in rows:
        d = r.delta
        record = {"alpha": r.alpha, "T": r.T, "delta": d.mean, "ci_low": d.low}
        record |= {"ci_high": d.high, "n": d.n}
        record["seeds"] = " ".join(map(str, d.seeds))
        record["unpaired_seeds"] = " ".join(map(str, d.unpaired))
        record |= {"top1_ls": r.top1_ls, "top1_base": r.top1_base}
        for metric in metrics:
            empty = interval([])
            ests = r.sides.get(metric, (empty, empty))
            for side, e in zip(("ls", "base"), ests, strict=True):
                record[f"{side}_{metric}"] = e.mean
                record[f"{side}_{metric}_low"] = e.low
                record[f"{side}_{metric}_high"] = e.high
        records.append(record)
    return pd.DataFrame(records)


def metric_digits(metric: str) -> int:
    return 4 if metric == STABILITY else 2


def shown(rows: Sequence[DeltaRow]) -> pd.DataFrame:
    """The table for reading: rows ``alpha = a, T = t``; Δ as ``+0.42 [-0.10,
    +0.94]``, n, the two students' mean top-1 and each side metric as ``mean [low,
    high]``."""
    index = pd.Index([row_name(r.alpha, r.T) for r in rows], name="LS teacher, T")
    out = pd.DataFrame(index=index)
    out["Δ top-1 [95 % CI]"] = [format_estimate(r.delta) for r in rows]
    out["n"] = [r.delta.n for r in rows]
    out["top-1, alpha student"] = [f"{r.top1_ls:.2f}" for r in rows]
    out["top-1, alpha = 0 student"] = [f"{r.top1_base:.2f}" for r in rows]
    empty = interval([])
    for metric in side_metrics(rows):
        label = NEXT_TO_DELTA[metric]
        for i, who in enumerate(("alpha", "alpha = 0")):
            out[f"{label}, {who} student"] = [
                format_estimate(
                    r.sides.get(metric, (empty, empty))[i], metric_digits(metric), False
                )
                for r in rows
            ]
    return out


def row_name(alpha: float, T: float, extra: str = "") -> str:
    return f"{format_alpha(alpha)}, T = {T:g}{extra}"


def reading(est: Estimate, alpha: float) -> str:
    """What one Δ estimate says, in words."""
    if est.n == 0:
        return "no seed has both students"
    if not est.has_interval:
        return "one seed, so no interval"
    if est.low > 0:
        return f"the {format_alpha(alpha)} teacher's students are better"
    if est.high < 0:
        return "the alpha = 0 teacher's students are better"
    return "inconclusive (the interval contains 0)"


def describe(pair: PairRuns) -> str:
    seeds = sorted({r.seed for r in pair.runs if r.role == "student"})
    text = pair.title
    if pair.transfer is not None:
        text += f", transfer set {pair.transfer.text}"
    return text + f", seeds {', '.join(map(str, seeds))}"


DEFINITION = (
    "Δ(T) = top-1 of the alpha > 0 teacher's student minus top-1 of the alpha = 0 "
    f"teacher's student (points), {PAIRED_TEXT}"
)


def delta_caption(pair: PairRuns, rows: Sequence[DeltaRow]) -> str:
    caption = f"LS benefit Δ(T): {describe(pair)}. {DEFINITION}."
    caption += " Beside it, each teacher's students' mean top-1"
    metrics = side_metrics(rows)
    if metrics:
        caption += (
            " and their "
            + ", ".join(NEXT_TO_DELTA[m] for m in metrics)
            + " as mean [95 % Student-t interval over seeds]: 1 − S is Shen et al. "
            "2021, Eq. (2), on every test image; separation and anisotropy are "
            "lskd's own diffusion metrics of the projected training features (the "
            "paper explains a falling Δ(T) by the LS teacher's students diffusing "
            "more as T rises)"
        )
    return caption + "."
