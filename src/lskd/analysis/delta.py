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

Outputs: the table (CSV with the numbers; Markdown, LaTeX, HTML), a figure of Δ against
T with the paper's own Δ(T) (its Tables 2 and 4, computed from
``paper_numbers.csv``: student top-1 with the alpha = 0.1 teacher minus with the alpha
= 0 teacher) as labelled reference lines, and a summary written from the numbers of
the run (Markdown and an HTML fragment the report shows first). Beside Δ the table
puts the students' 1 − S (Shen et al. 2021, Eq. (2)) and, where the penultimate
figures were drawn, lskd's diffusion metrics, each as mean [interval] over seeds for
both teachers' students: the paper explains the falling Δ(T) by the LS teacher's
students diffusing more as T rises.

``transfer_interaction`` compares Δ(T) across transfer-set sizes (runs that differ
only in their students' ``transfer`` record): Δ per size and, per T, the paired-by-seed
difference Δ_size(T) - Δ_ref(T) against the whole split (``all``) or, without it, the
largest size.
"""

from __future__ import annotations

import html
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lskd.analysis.claims import evaluate_claims
from lskd.analysis.diffusion_table import STABILITY, estimates, read_runs
from lskd.analysis.paper import load_paper_numbers
from lskd.analysis.stats import (
    PAIRED_TEXT,
    Estimate,
    format_estimate,
    interval,
    paired,
    seed_cells,
)
from lskd.analysis.tables import (
    Run,
    check_consistent,
    format_alpha,
    parse_run,
    read_metrics,
    write_table_files,
)
from lskd.atomic import atomic_path
from lskd.errors import DataError

log = logging.getLogger(__name__)

BASE_ALPHA = 0.0
# Beside Δ: the students' 1 - S (always) and these diffusion metrics (when given).
NEXT_TO_DELTA = {
    STABILITY: "1 − S",
    "separation": "separation",
    "anisotropy_0": "anisotropy_0",
}
TASK_NAMES = {"imagenet": "ImageNet", "cub200": "CUB"}
ARCH_NAMES = {
    "resnet18": "R18",
    "resnet50": "R50",
    "mobilenet_v2": "MBv2",
    "efficientnet_b0": "EffB0",
}
PNG_DPI = 110


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


def _sources(metrics: Sequence[dict], sources: Sequence[str] | None) -> list[str]:
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
    """Validate one pair's runs (``tables.check_consistent``): its students must share
    one transfer set (the error names two files that differ)."""
    sources = _sources(metrics, sources)
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


def _side_metrics(rows: Sequence[DeltaRow]) -> list[str]:
    return [m for m in NEXT_TO_DELTA if any(m in r.sides for r in rows)]


def numbers(rows: Sequence[DeltaRow]) -> pd.DataFrame:
    """The CSV: ``alpha``, ``T``, ``delta``, ``ci_low``, ``ci_high``, ``n`` (paired
    seeds), ``seeds``, ``unpaired_seeds``, ``top1_ls``, ``top1_base`` and per side
    metric ``ls_<m>``, ``base_<m>`` with ``_low`` / ``_high``."""
    metrics = _side_metrics(rows)
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


def _digits(metric: str) -> int:
    return 4 if metric == STABILITY else 2


def shown(rows: Sequence[DeltaRow]) -> pd.DataFrame:
    """The table for reading: rows ``alpha = a, T = t``; Δ as ``+0.42 [-0.10,
    +0.94]``, n, the two students' mean top-1 and each side metric as ``mean [low,
    high]``."""
    index = pd.Index([_row_name(r.alpha, r.T) for r in rows], name="LS teacher, T")
    out = pd.DataFrame(index=index)
    out["Δ top-1 [95 % CI]"] = [format_estimate(r.delta) for r in rows]
    out["n"] = [r.delta.n for r in rows]
    out["top-1, alpha student"] = [f"{r.top1_ls:.2f}" for r in rows]
    out["top-1, alpha = 0 student"] = [f"{r.top1_base:.2f}" for r in rows]
    empty = interval([])
    for metric in _side_metrics(rows):
        label = NEXT_TO_DELTA[metric]
        for i, who in enumerate(("alpha", "alpha = 0")):
            out[f"{label}, {who} student"] = [
                format_estimate(
                    r.sides.get(metric, (empty, empty))[i], _digits(metric), False
                )
                for r in rows
            ]
    return out


def _row_name(alpha: float, T: float, extra: str = "") -> str:
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


def _what(pair: PairRuns) -> str:
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
    caption = f"LS benefit Δ(T): {_what(pair)}. {DEFINITION}."
    caption += " Beside it, each teacher's students' mean top-1"
    metrics = _side_metrics(rows)
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
        ("title", f"What this run found: the LS benefit Δ(T), {_what(pair)}"),
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
            for metric in _side_metrics(rows):
                parts = []
                for a in (alpha, BASE_ALPHA):
                    est = _trend(frame, a, metric, lo, hi)
                    if est.n:
                        parts.append(
                            f"{format_estimate(est, _digits(metric))} with the "
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


@dataclass(frozen=True)
class PaperDelta:
    """The paper's Δ(T) of one setting, from ``paper_numbers.csv``."""

    label: str
    temps: tuple[float, ...]
    deltas: tuple[float, ...]


def _short(arch: str) -> str:
    return ARCH_NAMES.get(arch, arch)


def paper_deltas() -> list[PaperDelta]:
    """Student top-1 with the alpha = 0.1 teacher minus with the alpha = 0 teacher,
    per T, for every image setting of the shipped paper numbers (Chandrasegaran et
    al. 2022, Tables 2 and 4), labelled ``paper <table>, <task> <teacher>→<student>``.
    """
    numbers = load_paper_numbers()
    students = numbers[(numbers["role"] == "student") & numbers["top1"].notna()]
    out = []
    keys = ["section", "task", "teacher_arch", "student_arch"]
    for (_, task, tarch, sarch), group in students.groupby(keys, sort=True):
        by = group.pivot_table(index="T", columns="alpha", values="top1")
        ls = [a for a in by.columns if a > BASE_ALPHA]
        if BASE_ALPHA not in by.columns or len(ls) != 1:
            continue
        delta = (by[ls[0]] - by[BASE_ALPHA]).dropna()
        table = group["paper_table"].iloc[0].split(" / ")[0]
        label = (
            f"paper {table}, {TASK_NAMES.get(task, task)} "
            f"{_short(tarch)}→{_short(sarch)}"
        )
        out.append(
            PaperDelta(label, tuple(map(float, delta.index)), tuple(delta.to_numpy()))
        )
    return out


def _yerr(ests: Sequence[Estimate]) -> np.ndarray:
    low = [e.mean - e.low if e.has_interval else 0.0 for e in ests]
    high = [e.high - e.mean if e.has_interval else 0.0 for e in ests]
    return np.array([low, high])


def _jitter(temps: Sequence[float], i: int, k: int) -> np.ndarray:
    """Spread k series apart on the log2 axis so their error bars do not overlap."""
    return np.asarray(temps) * 2.0 ** (0.05 * (i - (k - 1) / 2))


def _t_axis(ax, temps: Sequence[float]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(temps), [f"{T:g}" for T in temps])
    ax.minorticks_off()
    ax.set_xlabel("KD temperature T (log scale)")
    ax.axhline(0.0, color="black", lw=0.8)


def plot_delta(
    rows: Sequence[DeltaRow], title: str, out_png: Path, paper: bool = True
) -> None:
    """Δ against T with error bars (95 % interval), the zero line and the paper's Δ(T)
    as labelled dashed reference lines."""
    fig = Figure(figsize=(8.4, 4.4), layout="constrained")
    ax = fig.subplots()
    references = paper_deltas() if paper else []
    for j, ref in enumerate(references):
        ax.plot(
            ref.temps,
            ref.deltas,
            ls="--",
            marker=".",
            lw=1,
            color=f"C{j + 3}",
            alpha=0.75,
            label=ref.label,
        )
    alphas = sorted({r.alpha for r in rows})
    for i, alpha in enumerate(alphas):
        mine = [r for r in rows if r.alpha == alpha and r.delta.n]
        ests = [r.delta for r in mine]
        ax.errorbar(
            _jitter([r.T for r in mine], i, len(alphas)),
            [e.mean for e in ests],
            yerr=_yerr(ests),
            fmt="o-",
            lw=2,
            capsize=4,
            color=f"C{i}",
            label=f"this run, {format_alpha(alpha)} vs 0",
        )
    temps = sorted({r.T for r in rows} | {T for ref in references for T in ref.temps})
    _t_axis(ax, temps)
    ax.set_ylabel("Δ top-1 (points)")
    handles, labels = ax.get_legend_handles_labels()
    first = len(references)  # this run's series first, then the paper's lines
    ax.legend(
        handles[first:] + handles[:first],
        labels[first:] + labels[:first],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    fig.suptitle(
        f"{title}\nΔ(T) = student top-1 with the LS teacher − with the alpha = 0 "
        "teacher; error bars: 95 % interval of paired seed differences",
        fontsize=9,
    )
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=PNG_DPI)


def _label(pair: PairRuns, suffix: str) -> str:
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
        _label(pair, "delta"),
        out_csv,
        out_md,
        out_tex,
        out_html,
        csv_table=table,
    )
    plot_delta(rows, _what(pair), Path(out_png))
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


# ---- the interaction with the transfer-set size ----


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
    sources = _sources(metrics, sources)
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
        [_row_name(s.row.alpha, s.row.T, f", {s.transfer.text}") for s in result.rows],
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
                s.row
                for s in result.rows
                if s.transfer == t and s.row.alpha == alpha and s.row.delta.n
            ]
            ests = [r.delta for r in mine]
            ax.errorbar(
                _jitter([r.T for r in mine], i, len(sizes)),
                [e.mean for e in ests],
                yerr=_yerr(ests),
                fmt="o-",
                capsize=3,
                color=f"C{i}",
                label=f"transfer {t.text}",
            )
        _t_axis(ax, temps)
        ax.set_title(f"{format_alpha(alpha)} vs alpha = 0", fontsize=10)
    axes[0].set_ylabel("Δ top-1 (points)")
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    pair = next(iter(result.pairs.values()))
    fig.suptitle(
        f"{pair.title}: Δ(T) per transfer-set size (error bars: 95 % interval of "
        "paired seed differences)",
        fontsize=9,
    )
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=PNG_DPI)


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
        _label(pair, "delta-transfer"),
        out_csv,
        out_md,
        out_tex,
        out_html,
        csv_table=table,
    )
    plot_interaction(result, Path(out_png))
    log.info("wrote %s and more from %d runs", out_csv, len(paths))
    return table
