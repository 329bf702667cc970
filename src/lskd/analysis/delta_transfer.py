"""The LS benefit Δ(T) across KD transfer-set sizes of one pair: Δ(T) per size and,
per (alpha, T), the paired-by-seed difference Δ_size(T) - Δ_ref(T) against the whole
split (``all``) or, without it, the largest size (``transfer_interaction``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lskd.analysis.delta import (
    DEFINITION,
    DeltaRow,
    PairRuns,
    Transfer,
    delta_rows,
    parse_pair,
    row_name,
    source_names,
    transfer_of,
)
from lskd.analysis.delta_figure import plot_series, save_png, temperature_axis
from lskd.analysis.delta_summary import pair_label
from lskd.analysis.formats import write_table_files
from lskd.analysis.records import format_alpha, read_metrics
from lskd.analysis.stats import Estimate, format_estimate, paired
from lskd.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SizeRow:
    """Δ(T) at one transfer-set size and its paired difference from the reference
    size's Δ(T) (None at the reference itself)."""

    transfer: Transfer
    row: DeltaRow
    vs_ref: Estimate | None


@dataclass(frozen=True)
class Interaction:
    pairs: dict[str, PairRuns]  # size -> its runs (teachers shared)
    reference: Transfer
    rows: list[SizeRow]


def transfer_interaction(
    metrics: Sequence[dict[str, Any]], sources: Sequence[str] | None = None
) -> Interaction:
    """Δ(T) per transfer-set size of one pair, and per (alpha, T) the paired-by-seed
    ``Δ_size(T) - Δ_ref(T)`` (per seed: that seed's Δ at this size minus its Δ at the
    reference), the reference being ``all`` (the whole split) or else the largest
    size. Teachers (no ``transfer`` record) are shared by every size; every student
    needs a ``transfer`` record."""
    sources = source_names(metrics, sources)
    teachers, by_size = [], {}
    transfers: dict[str, Transfer] = {}
    for m, s in zip(metrics, sources, strict=True):
        if m.get("role") == "teacher":
            teachers.append((m, s))
            continue
        t = transfer_of(m, s)
        if t is None:
            raise DataError(f"{s}: missing key 'transfer' (a student's transfer set)")
        if t.size in transfers and transfers[t.size] != t:
            raise DataError(
                f"{s}: transfer set {t.size!r} has {t.images} images, another run "
                f"of it {transfers[t.size].images}"
            )
        transfers[t.size] = t
        by_size.setdefault(t.size, []).append((m, s))
    if not by_size:
        raise DataError(f"{sources[0]} and the others: no student")
    pairs = {
        size: parse_pair(*map(list, zip(*(teachers + runs), strict=True)))
        for size, runs in by_size.items()
    }
    order = sorted(transfers.values(), key=lambda t: (t.images, t.size))
    reference = transfers.get("all") or order[-1]
    deltas = {size: delta_rows(pair) for size, pair in pairs.items()}
    ref_rows = {(r.alpha, r.T): r for r in deltas[reference.size]}
    rows = []
    for t in order:
        for r in deltas[t.size]:
            ref = ref_rows.get((r.alpha, r.T))
            vs = None
            if t != reference:
                vs = paired(r.per_seed(), ref.per_seed() if ref else {})
            rows.append(SizeRow(t, r, vs))
    rows.sort(key=lambda s: (s.row.alpha, s.row.T, s.transfer.images))
    return Interaction(pairs, reference, rows)


def interaction_numbers(result: Interaction) -> pd.DataFrame:
    """The CSV: per (alpha, T, size) Δ with its interval and n, and ``minus_ref``
    (Δ_size - Δ_ref, paired by seed) with ``_low``, ``_high``, ``_n``."""
    records = []
    nan = math.nan
    for s in result.rows:
        d, v = s.row.delta, s.vs_ref
        records.append(
            {
                "alpha": s.row.alpha,
                "T": s.row.T,
                "transfer": s.transfer.size,
                "images": s.transfer.images,
                "delta": d.mean,
                "ci_low": d.low,
                "ci_high": d.high,
                "n": d.n,
                "reference": result.reference.size,
                "minus_ref": v.mean if v else nan,
                "minus_ref_low": v.low if v else nan,
                "minus_ref_high": v.high if v else nan,
                "minus_ref_n": v.n if v else 0,
            }
        )
    return pd.DataFrame(records)


def interaction_shown(result: Interaction) -> pd.DataFrame:
    index = pd.Index(
        [row_name(s.row.alpha, s.row.T, f", {s.transfer.text}") for s in result.rows],
        name="LS teacher, T, transfer set",
    )
    out = pd.DataFrame(index=index)
    out["Δ top-1 [95 % CI]"] = [format_estimate(s.row.delta) for s in result.rows]
    out["n"] = [s.row.delta.n for s in result.rows]
    ref = result.reference.size
    out[f"Δ − Δ({ref}) [95 % CI]"] = [
        "reference" if s.vs_ref is None else format_estimate(s.vs_ref)
        for s in result.rows
    ]
    out["n pairs"] = [0 if s.vs_ref is None else s.vs_ref.n for s in result.rows]
    return out


def interaction_caption(result: Interaction) -> str:
    pair = next(iter(result.pairs.values()))
    sizes = ", ".join(
        s.text
        for s in sorted(
            {r.transfer for r in result.rows}, key=lambda t: (t.images, t.size)
        )
    )
    return (
        f"LS benefit Δ(T) against the KD transfer-set size: {pair.title}; transfer "
        f"sets {sizes}; the teachers are shared by every size. {DEFINITION}. "
        f"Δ − Δ({result.reference.size}): per seed, that seed's Δ(T) at this size "
        f"minus its Δ(T) with the reference transfer set {result.reference.text}, "
        "then mean and 95 % Student-t interval over those seeds: the interaction of "
        "the teacher's label smoothing with the amount of transfer data."
    )


def plot_interaction(result: Interaction, out_png: Path) -> None:
    """One panel per alpha > 0: Δ(T) with error bars, one line per transfer size."""
    alphas = sorted({s.row.alpha for s in result.rows})
    sizes = sorted({s.transfer for s in result.rows}, key=lambda t: (t.images, t.size))
    fig = Figure(figsize=(5.4 * len(alphas) + 2.0, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(alphas), sharey=True))
    temps = sorted({s.row.T for s in result.rows})
    for ax, alpha in zip(axes, alphas, strict=True):
        for i, t in enumerate(sizes):
            mine = [
                s.row for s in result.rows if s.transfer == t and s.row.alpha == alpha
            ]
            plot_series(ax, mine, i, len(sizes), f"transfer {t.text}", capsize=3)
        temperature_axis(ax, temps)
        ax.set_title(f"{format_alpha(alpha)} vs alpha = 0", fontsize=10)
    axes[0].set_ylabel("Δ top-1 (points)")
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    pair = next(iter(result.pairs.values()))
    fig.suptitle(
        f"{pair.title}: Δ(T) per transfer-set size\n(error bars: 95 % interval of "
        "paired seed differences)",
        fontsize=9,
    )
    save_png(fig, out_png)


def write_transfer_interaction(
    metrics_paths: Sequence[Path],
    out_csv: Path,
    out_md: Path,
    out_tex: Path,
    out_html: Path,
    out_png: Path,
) -> pd.DataFrame:
    """``transfer_interaction`` of the given metrics.json files: table and figure."""
    paths = [Path(p) for p in metrics_paths]
    result = transfer_interaction(
        [read_metrics(p) for p in paths], [str(p) for p in paths]
    )
    table = interaction_numbers(result)
    pair = next(iter(result.pairs.values()))
    write_table_files(
        interaction_shown(result),
        interaction_caption(result),
        pair_label(pair, "delta-transfer"),
        out_csv,
        out_md,
        out_tex,
        out_html,
        csv_table=table,
    )
    plot_interaction(result, Path(out_png))
    log.info("wrote %s and more from %d runs", out_csv, len(paths))
    return table
