"""Table 5 (docs/results.md#blocks, block 4.6): BLEU of Transformer teachers and KD
students.

Rows: ``Teacher transformer``, then ``Student transformer, T=<T>`` by T ascending.
Columns: one per (pair, alpha), e.g. ``EN→DE alpha = 0.0``. A cell is sacrebleu's
BLEU, or ``mean ± std (n=k)`` over seeds; an empty cell is ``–``. After each column of
an alpha > 0 whose pair has alpha = 0 runs: ``Δ`` of that row, BLEU(alpha) −
BLEU(alpha = 0) paired by seed with its 95 % Student-t interval over the seeds
(`lskd.analysis.stats.paired`, the images' Δ(T) intervals; none for one seed). The
caption names the sacrebleu signature(s), the split, the selected checkpoint and the
number of seeds. Rendering (LaTeX, HTML, alpha labels) is the image tables' code,
lskd.analysis.tables.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lskd.analysis.formats import write_table_files
from lskd.analysis.labels import format_alpha, row_label
from lskd.analysis.records import check_same, check_unique, get, read_metrics
from lskd.analysis.stats import PAIRED_TEXT, format_estimate, paired
from lskd.analysis.tables import MISSING, format_values
from lskd.atomic import atomic_path
from lskd.errors import DataError
from lskd.identity import METRICS
from lskd.nmt import ARCH

log = logging.getLogger(__name__)
SELECTION = {"last": "last update", "best_val": "lowest validation loss"}


@dataclass(frozen=True)
class BleuRun:
    source: str
    role: str
    task: str
    alpha: float
    T: float | None
    seed: int
    bleu: float
    signature: str
    selection: str
    eval_split: str


def parse_bleu_run(metrics: dict[str, Any], source: str) -> BleuRun:
    """Validate one NMT ``metrics.json``; errors name the file and key."""
    role = get(metrics, "role", str, source)
    if role not in ("teacher", "student"):
        raise DataError(f"{source}: key 'role' must be 'teacher' or 'student'")
    task = get(metrics, "task", str, source)
    if not task.startswith("nmt_") or task.count("_") != 2:
        raise DataError(f"{source}: key 'task' must look like nmt_en_de, got {task!r}")
    selection = get(metrics, "selection", str, source)
    if selection not in SELECTION:
        raise DataError(f"{source}: key 'selection' must be one of {list(SELECTION)}")
    num = (int, float)
    return BleuRun(
        source=source,
        role=role,
        task=task,
        alpha=float(get(metrics, "alpha", num, source)),
        T=float(get(metrics, "T", num, source)) if role == "student" else None,
        seed=get(metrics, "seed", int, source),
        bleu=float(get(metrics, "bleu", num, source)),
        signature=get(metrics, "sacrebleu_signature", str, source),
        selection=selection,
        eval_split=get(metrics, "eval_split", str, source),
    )


def pair_label(task: str) -> str:
    """``nmt_en_de`` -> ``EN→DE``."""
    _, src, tgt = task.split("_")
    return f"{src.upper()}→{tgt.upper()}"


def _cell(runs: Sequence[BleuRun]) -> str:
    return format_values([r.bleu for r in runs])


def _check(runs: Sequence[BleuRun]) -> None:
    check_unique(runs, lambda r: (r.task, r.role, r.alpha, r.T, r.seed))
    check_same([("eval_split", runs)])


def build_nmt_table(runs: Sequence[BleuRun]) -> pd.DataFrame:
    """Paper-layout Table 5 from parsed runs."""
    if not runs:
        raise DataError(f"no {METRICS} given")
    _check(runs)
    columns = sorted({(r.task, r.alpha) for r in runs})
    temps = sorted({r.T for r in runs if r.role == "student"})
    rows = [(row_label("teacher", ARCH), "teacher", None)]
    rows += [(row_label("student", ARCH, t), "student", t) for t in temps]
    cells = {
        label: [
            _cell([r for r in runs if (r.task, r.alpha, r.role, r.T) == (*c, role, t)])
            for c in columns
        ]
        for label, role, t in rows
    }
    names = [f"{pair_label(task)} {format_alpha(alpha)}" for task, alpha in columns]
    table = pd.DataFrame.from_dict(cells, orient="index", columns=names)
    for task, alpha in reversed(columns):  # insert from the right: positions hold
        if alpha == 0 or (task, 0.0) not in columns:
            continue
        deltas = [_delta(runs, task, alpha, role, t) for _, role, t in rows]
        at = table.columns.get_loc(f"{pair_label(task)} {format_alpha(alpha)}") + 1
        table.insert(at, delta_column(task, alpha), deltas)
    table.index.name = "model"
    return table


def delta_column(task: str, alpha: float) -> str:
    """``EN→DE Δ(alpha = 0.1 − 0)``: the paired difference column of `alpha`."""
    return f"{pair_label(task)} Δ({format_alpha(alpha)} − 0)"


def _delta(
    runs: Sequence[BleuRun], task: str, alpha: float, role: str, T: float | None
) -> str:
    def by_seed(a: float) -> dict[int, float]:
        return {
            r.seed: r.bleu
            for r in runs
            if (r.task, r.alpha, r.role, r.T) == (task, a, role, T)
        }

    return format_estimate(paired(by_seed(alpha), by_seed(0.0)))


def _students(
    runs: Sequence[BleuRun], task: str, alpha: float, T: float
) -> dict[int, float]:
    """BLEU by seed of the students of (task, alpha) at T."""
    return {
        r.seed: r.bleu
        for r in runs
        if (r.task, r.alpha, r.role, r.T) == (task, alpha, "student", T)
    }


def nmt_headline(runs: Sequence[BleuRun]) -> list[str]:
    """One plain sentence per pair and alpha > 0 (the report's opening answer, as for
    the images): what the smoothed teacher did to its students' BLEU at the lowest and
    the highest T against the alpha = 0 teacher, paired by seed, and whether that
    supports the paper's advice (LS teacher, T = 1)."""
    from lskd.analysis.delta import advice_verdict, effect

    sentences = []
    temps = sorted({r.T for r in runs if r.role == "student"})
    for task, alpha in sorted({(r.task, r.alpha) for r in runs if r.alpha > 0}):
        if not temps or not any(r.task == task and r.alpha == 0 for r in runs):
            continue

        low, high = (
            paired(_students(runs, task, alpha, T), _students(runs, task, 0.0, T))
            for T in (temps[0], temps[-1])
        )
        text = f"Table 5, {pair_label(task)}: against the {format_alpha(0.0)} teacher, "
        text += f"the {format_alpha(alpha)} teacher's students "
        text += effect(low, temps[0], "BLEU", "BLEU")
        if temps[-1] != temps[0]:
            text += " and " + effect(high, temps[-1], "BLEU", "BLEU")
        sentences.append(f"{text}: {advice_verdict(low)}.")
    return sentences


def seed_counts(runs: Sequence[BleuRun]) -> list[int]:
    """The distinct numbers of seeds per cell (sorted)."""
    cells: dict[tuple, set[int]] = {}
    for r in runs:
        cells.setdefault((r.task, r.alpha, r.role, r.T), set()).add(r.seed)
    return sorted({len(seeds) for seeds in cells.values()})


def nmt_caption(runs: Sequence[BleuRun]) -> str:
    signatures = sorted({r.signature for r in runs})
    selections = " or ".join(sorted({SELECTION[r.selection] for r in runs}))
    counts = seed_counts(runs)
    low, high = counts[0], counts[-1]
    seeds = str(low) if low == high else f"{low} to {high}"
    one = low == 1
    return (
        "Table 5 (docs/results.md#blocks, block 4.6), Transformer teachers and "
        "word-level KD students: "
        f"cells are sacreBLEU on the detokenised {runs[0].eval_split} split of each "
        f"pair (signature {'; '.join(signatures)}), checkpoint at the {selections}, "
        "mean ± sample std with the number of seeds n when there are several; "
        f"{seeds} seed{'s' if seeds != '1' else ''} per cell. Δ: BLEU of the row "
        f"with the column's alpha minus alpha = 0, {PAIRED_TEXT}"
        + (": one seed gives no interval, so no Δ here is judged" if one else "")
        + ". alpha "
        "is the teacher's label-smoothing factor, students mix T²-scaled KD at "
        "temperature T with a label-smoothed hard-label term "
        "(docs/recipes.md#nmt-word-level-kd-loss) and start from their own "
        "initialisation (seed stream of students, not the teacher's)."
    )


def with_paper_bleu(
    table: pd.DataFrame, caption: str, runs: Sequence[BleuRun]
) -> tuple[pd.DataFrame, str]:
    """After each column of ``build_nmt_table``: the paper's BLEU (docs/results.md,
    ``paper_numbers.csv``) and ``delta = ours - paper`` (mean over seeds), ✓ where
    ``|delta| <= 0.3`` BLEU points; the caption counts those cells."""
    from lskd.analysis.paper import TOLERANCE, load_paper_numbers

    paper = load_paper_numbers().dropna(subset=["bleu"])
    out, within, compared = table.copy(), 0, 0
    for task, alpha in sorted({(r.task, r.alpha) for r in runs}):
        column = f"{pair_label(task)} {format_alpha(alpha)}"
        theirs, deltas = {}, {}
        for row in paper[
            (paper["task"] == task) & (paper["alpha"] == alpha)
        ].itertuples():
            T = None if row.role == "teacher" else float(row.T)
            ours = [
                r.bleu
                for r in runs
                if (r.task, r.alpha, r.role, r.T) == (task, alpha, row.role, T)
            ]
            label = row_label(row.role, ARCH, T)
            theirs[label] = f"{row.bleu:.2f}"
            if ours:
                delta = float(np.mean(ours)) - row.bleu
                ok = abs(delta) <= TOLERANCE + 1e-9
                within, compared = within + ok, compared + 1
                deltas[label] = f"{delta:+.2f}" + (" ✓" if ok else "")
        at = out.columns.get_loc(column) + 1
        out.insert(
            at, f"{column} paper", pd.Series(theirs).reindex(out.index).fillna(MISSING)
        )
        out.insert(
            at + 1, f"{column} Δ", pd.Series(deltas).reindex(out.index).fillna(MISSING)
        )
    note = (
        " Beside each column: the paper's BLEU (Table 5, docs/results.md#blocks, "
        "block 4.6) and delta = ours - "
        "paper; "
        f"✓ marks the {within} of {compared} compared cells within ±{TOLERANCE:g} BLEU."
    )
    return out, caption + note


def write_nmt_table(
    metric_paths: Sequence[Path],
    out_csv: Path,
    out_md: Path,
    out_tex: Path,
    out_html: Path | None = None,
    paper: bool = False,
    out_headline: Path | None = None,
) -> pd.DataFrame:
    """Build Table 5 from ``metric_paths``; write CSV, Markdown, LaTeX (and HTML).
    ``paper``: add the paper's BLEU and the delta per cell (paper-scale corpora)."""
    runs = [parse_bleu_run(read_metrics(Path(p)), str(p)) for p in metric_paths]
    table = build_nmt_table(runs)
    caption = nmt_caption(runs)
    if paper:
        table, caption = with_paper_bleu(table, caption, runs)
    write_table_files(
        table, caption, "tab:table5-nmt", out_csv, out_md, out_tex, out_html
    )
    if out_headline is not None:
        from lskd.analysis.delta import headline_html

        with atomic_path(Path(out_headline)) as tmp:
            tmp.write_text(headline_html(nmt_headline(runs)), encoding="utf-8")
    log.info("wrote %s and more from %d runs", out_csv, len(runs))
    return table
