"""The generated summary of the LS benefit Δ(T) of one pair, and ``write_delta``, which
writes the Δ table, figure and summary: every number from the run (the Δ rows, the
per-run diffusion and stability, the claims of ``lskd.analysis.claims``)."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lskd.analysis.claims import evaluate_claims
from lskd.analysis.delta import (
    BASE_ALPHA,
    DEFINITION,
    NEXT_TO_DELTA,
    DeltaRow,
    PairRuns,
    delta_caption,
    delta_rows,
    describe,
    metric_digits,
    numbers,
    parse_pair,
    reading,
    shown,
    side_estimates,
    side_metrics,
)
from lskd.analysis.delta_figure import plot_delta
from lskd.analysis.formats import write_table_files
from lskd.analysis.records import format_alpha, read_metrics
from lskd.analysis.stats import Estimate, format_estimate, paired
from lskd.atomic import atomic_path

log = logging.getLogger(__name__)


def _trend(
    frame: pd.DataFrame, alpha: float, metric: str, lo: float, hi: float
) -> Estimate:
    """Paired by seed: ``metric`` of the alpha teacher's students at T = hi minus at
    T = lo."""
    students = frame[(frame["role"] == "student") & (frame["alpha"] == alpha)]

    def at(T: float) -> dict[int, float]:
        rows = students[(students["T"] == T) & students[metric].notna()]
        return dict(zip(rows["seed"].astype(int), rows[metric], strict=True))

    return paired(at(hi), at(lo))


def summary_blocks(
    pair: PairRuns,
    rows: Sequence[DeltaRow],
    frame: pd.DataFrame | None = None,
) -> list[tuple[str, Any]]:
    """The generated summary as blocks ``("title" | "p", text)`` and
    ``("ul", [items])``: every number from the run (``rows``, the per-run ``frame``
    of ``side_estimates`` and the claims of ``lskd.analysis.claims``)."""
    blocks: list[tuple[str, Any]] = [
        (
            "title",
            f"What this run found: the LS benefit Δ(T), {describe(pair)}",
        ),
        ("p", f"{DEFINITION}."),
    ]
    temps = sorted({r.T for r in rows})
    for alpha in sorted({r.alpha for r in rows}):
        items = [
            f"T = {r.T:g}: Δ = {format_estimate(r.delta)} (n = {r.delta.n}): "
            f"{reading(r.delta, alpha)}"
            for r in rows
            if r.alpha == alpha
        ]
        head = f"{format_alpha(alpha)} teacher against the alpha = 0 teacher:"
        blocks += [("p", head), ("ul", items)]
        if frame is not None and len(temps) > 1:
            lo, hi = temps[0], temps[-1]
            trends = []
            for metric in side_metrics(rows):
                parts = []
                for a in (alpha, BASE_ALPHA):
                    est = _trend(frame, a, metric, lo, hi)
                    if est.n:
                        parts.append(
                            f"{format_estimate(est, metric_digits(metric))} with the "
                            f"{format_alpha(a)} teacher (n = {est.n})"
                        )
                if parts:
                    trends.append(f"{NEXT_TO_DELTA[metric]}: " + "; ".join(parts))
            if trends:
                blocks.append(
                    (
                        "p",
                        f"Change from T = {lo:g} to T = {hi:g} in the students' "
                        "diffusion, paired by seed (the paper expects the LS "
                        "teacher's students to diffuse more as T rises: 1 − S up, "
                        "separation down):",
                    )
                )
                blocks.append(("ul", trends))
    claims = evaluate_claims(pair.metrics, pair.sources)
    for alpha, block in claims.groupby("alpha", dropna=False, sort=True):
        verdicts = ", ".join(
            f"{c} {v}" for c, v in zip(block["claim_id"], block["verdict"], strict=True)
        )
        blocks.append(
            (
                "p",
                f"Claims with the {format_alpha(alpha)} teacher (judged by 95 % "
                f"intervals of paired seed differences; the Claims table has the "
                f"margins): {verdicts}.",
            )
        )
    return blocks


def summary_markdown(blocks: Sequence[tuple[str, Any]]) -> str:
    parts = []
    for kind, content in blocks:
        if kind == "title":
            parts.append(f"**{content}**")
        elif kind == "ul":
            parts.append("\n".join(f"- {item}" for item in content))
        else:
            parts.append(content)
    return "\n\n".join(parts) + "\n"


def summary_html(blocks: Sequence[tuple[str, Any]]) -> str:
    """An HTML fragment (no ``<html>``/``<body>``: the report's landing page embeds
    it; opened alone it renders as well)."""
    parts = ['<meta charset="utf-8">', '<div class="lskd-summary">']
    for kind, content in blocks:
        if kind == "title":
            parts.append(f"<p><strong>{html.escape(content)}</strong></p>")
        elif kind == "ul":
            items = "".join(f"<li>{html.escape(i)}</li>" for i in content)
            parts.append(f"<ul>{items}</ul>")
        else:
            parts.append(f"<p>{html.escape(content)}</p>")
    parts.append("</div>")
    return "\n".join(parts) + "\n"


def pair_label(pair: PairRuns, suffix: str) -> str:
    name = f"{pair.first.task}-{pair.first.teacher_arch}-{pair.student_arch}-{suffix}"
    return "tab:" + re.sub(r"[^A-Za-z0-9]+", "-", name)


def write_delta(
    metrics_paths: Sequence[Path],
    out_csv: Path,
    out_md: Path,
    out_tex: Path,
    out_html: Path,
    out_png: Path,
    summary_md: Path | None = None,
    summary_html_path: Path | None = None,
    diffusion_paths: Sequence[Path] = (),
) -> pd.DataFrame:
    """Δ(T) of one pair from its metrics.json files (and, for the side metrics, the
    diffusion.json files of some of those runs): table, figure and summary."""
    paths = [Path(p) for p in metrics_paths]
    pair = parse_pair([read_metrics(p) for p in paths], [str(p) for p in paths])
    sides, frame = side_estimates(paths, [Path(p) for p in diffusion_paths])
    rows = delta_rows(pair, sides)
    table = numbers(rows)
    write_table_files(
        shown(rows),
        delta_caption(pair, rows),
        pair_label(pair, "delta"),
        out_csv,
        out_md,
        out_tex,
        out_html,
        csv_table=table,
    )
    plot_delta(rows, describe(pair), Path(out_png))
    blocks = summary_blocks(pair, rows, frame)
    for dest, text in (
        (summary_md, summary_markdown(blocks)),
        (summary_html_path, summary_html(blocks)),
    ):
        if dest is not None:
            with atomic_path(Path(dest)) as tmp:
                tmp.write_text(text, encoding="utf-8")
    log.info("wrote %s and more from %d runs", out_csv, len(paths))
    return table
