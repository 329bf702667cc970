"""The benefit Δ(T) of a teacher's regularizer over a plain cross-entropy (`ce`)
teacher, for one teacher → student pair, per student objective: the question of
Chandrasegaran et al. 2022 ("to smooth the teacher or not, and at which
temperature?") answered on the user's runs and asked of every regularizer and objective
they trained.

For every regularizer r other than `ce` (`lskd.identity.BASE_REGULARIZER`), every
student objective o and every temperature T::

    Δ_{r,o}(T) = top-1 of the r teacher's student distilled with o at T
                 - top-1 of the ce teacher's student distilled with o at T,

paired by the student's seed (the two students of one seed share initialisation, data
order and, when it is a subset, the transfer set), as the mean of the per-seed
differences with the 95 % Student-t interval over them (``lskd.analysis.stats``). For
`ls` teachers and `kd` students this is the paper's LS benefit. Every identity (the
runs' `RunId`: role, regularizer, objective, T, seed, transfer set) comes from the
``metrics.json`` contents, never from the order of the files or their paths.

Outputs (``write_delta``): the table (CSV with the numbers; Markdown, LaTeX, HTML), a
figure with one panel per student objective of Δ against T, one series per regularizer
(the `kd` panel with the paper's own Δ(T) of its Tables 2 and 4, from
``paper_numbers.csv``, as labelled reference lines), and a summary written from the
numbers of the run (Markdown and an HTML fragment the report shows first). Beside Δ the
table puts the students' 1 − S (Shen et al. 2021, Eq. (2)) and, where the penultimate
figures were drawn, lskd's diffusion metrics, each as mean [interval] over seeds for
both teachers' students: the paper explains the falling Δ(T) by the LS teacher's
students diffusing more as T rises.

``transfer_interaction`` compares Δ(T) across transfer-set sizes (runs that differ only
in their students' ``transfer`` record): Δ per size and, per (regularizer, objective,
T), the paired-by-seed difference Δ_size(T) - Δ_ref(T) against the whole split
(``all``) or, without it, the largest size (``write_transfer_interaction``).
"""

from __future__ import annotations

import base64
import html
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lskd.analysis.claims import PAPER_REGULARIZER, evaluate_claims
from lskd.analysis.diffusion_table import STABILITY, estimates, read_runs
from lskd.analysis.formats import write_table_files
from lskd.analysis.labels import (
    delta_row_label,
    latex_label,
    method_text,
    objective_order,
    regularizer_order,
    short_arch,
    students_text,
    t_text,
    task_name,
    teacher_text,
    versus_text,
)
from lskd.analysis.paper import load_paper_numbers
from lskd.analysis.plots import errorbars, jitter, save_png, temperature_axis
from lskd.analysis.records import BASE, Run, check_consistent, parse_run, read_metrics
from lskd.analysis.stats import (
    PAIRED_TEXT,
    Estimate,
    format_estimate,
    half_width,
    interval,
    paired,
    seed_cells,
    seeds_for,
)
from lskd.analysis.tables import CHANCE_MARK
from lskd.atomic import atomic_path
from lskd.errors import DataError
from lskd.identity import DEFAULT_OBJECTIVE, Choice

log = logging.getLogger(__name__)

# Beside Δ: the students' 1 - S (always) and these diffusion metrics (when given).
NEXT_TO_DELTA = {
    STABILITY: "1 − S",
    "separation": "separation",
    "anisotropy_0": "anisotropy_0",
}

# ---------------------------------------------------------------- runs of one pair


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

    def label(self, suffix: str) -> str:
        """The LaTeX label of one of its tables."""
        r = self.first
        return latex_label(r.task, r.teacher_arch, self.student_arch, suffix)


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


def describe(pair: PairRuns) -> str:
    seeds = sorted({r.seed for r in pair.runs if r.role == "student"})
    text = pair.title
    if pair.transfer is not None:
        text += f", transfer set {pair.transfer.text}"
    return text + f", seeds {', '.join(map(str, seeds))}"


# ---------------------------------------------------------------- Δ(T)


@dataclass(frozen=True)
class DeltaRow:
    """Δ(T) of one regularizer over `ce` for one student objective at one T, the two
    students' mean top-1 and, per side metric, the (regularizer, `ce`) students'
    estimates over seeds."""

    regularizer: Choice
    objective: Choice
    T: float
    delta: Estimate
    top1_reg: float
    top1_base: float
    sides: dict[str, tuple[Estimate, Estimate]]
    at_chance: bool = False  # a student of either side is at chance level (†)

    @property
    def series(self) -> tuple[Choice, Choice]:
        return (self.regularizer, self.objective)

    def per_seed(self) -> dict[int, float]:
        """``{seed: Δ of that seed}``."""
        return dict(zip(self.delta.seeds, self.delta.values, strict=True))


Sides = dict[tuple, dict[str, Estimate]]


def side_estimates(
    metrics_paths: Sequence[Path], diffusion_paths: Sequence[Path] = ()
) -> tuple[Sides, pd.DataFrame]:
    """Per cell (``RunId.method_key``) the estimates over seeds of ``NEXT_TO_DELTA``,
    and the per-run frame they come from (files paired by run directory:
    ``diffusion_table.read_runs``)."""
    frame = read_runs(metrics_paths, diffusion_paths)
    return estimates(frame, list(NEXT_TO_DELTA)), frame


def _series(pair: PairRuns) -> list[tuple[Choice, Choice, list[float]]]:
    """(regularizer, objective, temperatures) of every Δ series: each regularizer
    other than `ce` with students of an objective that `ce` students share."""
    students = [r for r in pair.runs if r.role == "student"]
    where = f"{pair.sources[0]} and the others"
    base = {r.objective for r in students if r.regularizer == BASE}
    if not base:
        raise DataError(
            f"{where}: no student of a {teacher_text(BASE)}, which Δ(T) compares "
            "against"
        )
    others = {(r.regularizer, r.objective) for r in students if r.regularizer != BASE}
    if not others:
        raise DataError(f"{where}: no student of a teacher other than {BASE.label}")
    out = []
    for reg, obj in sorted(
        others, key=lambda s: (objective_order(s[1]), regularizer_order(s[0]))
    ):
        if obj not in base:
            log.warning(
                "no student of a %s distilled with %s: no Δ for the %s",
                teacher_text(BASE),
                obj.label,
                teacher_text(reg),
            )
            continue
        temps = {r.T for r in students if r.objective == obj and r.T is not None}
        out.append((reg, obj, sorted(temps)))
    if not out:
        raise DataError(
            f"{where}: no objective has students of both a {teacher_text(BASE)} and "
            "another teacher"
        )
    return out


def delta_rows(pair: PairRuns, sides: Sides | None = None) -> list[DeltaRow]:
    """One ``DeltaRow`` per (objective, regularizer other than `ce`, T), in that
    order, each ascending (module docstring); ``sides`` (``side_estimates``) adds
    the metrics beside Δ."""
    cells = seed_cells(pair.runs)
    chance = {r.key for r in pair.runs if r.at_chance}
    empty = interval([])
    rows = []
    for reg, obj, temps in _series(pair):
        for T in temps:
            mine, base = ("student", reg, obj, T), ("student", BASE, obj, T)
            left, right = cells.get(mine, {}), cells.get(base, {})
            side = {
                metric: tuple(
                    (sides or {}).get(key, {}).get(metric, empty)
                    for key in (mine, base)
                )
                for metric in NEXT_TO_DELTA
            }
            rows.append(
                DeltaRow(
                    reg,
                    obj,
                    T,
                    paired(left, right),
                    float(np.mean(list(left.values()))) if left else math.nan,
                    float(np.mean(list(right.values()))) if right else math.nan,
                    {m: e for m, e in side.items() if any(x.n for x in e)},
                    mine in chance or base in chance,
                )
            )
    return rows


def side_metrics(rows: Sequence[DeltaRow]) -> list[str]:
    return [m for m in NEXT_TO_DELTA if any(m in r.sides for r in rows)]


def metric_digits(metric: str) -> int:
    return 4 if metric == STABILITY else 2


def _several_objectives(rows: Sequence[DeltaRow]) -> bool:
    return len({r.objective for r in rows}) > 1


def benefit_name(rows: Sequence[DeltaRow]) -> str:
    """`LS benefit Δ(T)` when every series is an `ls` teacher's `kd` students (the
    paper's question), else `benefit Δ(T) of the teacher's regularizer`."""
    paper = [(r.regularizer.name, r.objective) for r in rows]
    if all(p == ("ls", DEFAULT_OBJECTIVE) for p in paper):
        return "LS benefit Δ(T)"
    return "benefit Δ(T) of the teacher's regularizer"


DEFINITION = (
    f"Δ(T) = top-1 of the student of a regularized teacher minus top-1 of the "
    f"student of a {teacher_text(BASE)} (plain cross-entropy), both distilled with "
    f"the same objective at the same T (points), {PAIRED_TEXT}"
)


def numbers(rows: Sequence[DeltaRow]) -> pd.DataFrame:
    """The CSV: ``regularizer``, ``alpha`` (its label-smoothing factor; `ls` only),
    ``objective`` (labels), ``T``, ``delta``, ``ci_low``, ``ci_high``, ``n`` (paired
    seeds), ``seeds``, ``unpaired_seeds``, ``top1_reg``, ``top1_base`` and per side
    metric ``reg_<m>``, ``base_<m>`` with ``_low`` / ``_high``."""
    metrics = side_metrics(rows)
    records = []
    for r in rows:
        d = r.delta
        record = {
            "regularizer": r.regularizer.label,
            "alpha": r.regularizer.alpha,
            "objective": r.objective.label,
            "T": r.T,
            "delta": d.mean,
            "ci_low": d.low,
            "ci_high": d.high,
            "n": d.n,
            "seeds": " ".join(map(str, d.seeds)),
            "unpaired_seeds": " ".join(map(str, d.unpaired)),
            "top1_reg": r.top1_reg,
            "top1_base": r.top1_base,
            "at_chance": r.at_chance,
        }
        for metric in metrics:
            empty = interval([])
            ests = r.sides.get(metric, (empty, empty))
            for side, e in zip(("reg", "base"), ests, strict=True):
                record[f"{side}_{metric}"] = e.mean
                record[f"{side}_{metric}_low"] = e.low
                record[f"{side}_{metric}_high"] = e.high
        records.append(record)
    return pd.DataFrame(records)


def shown(rows: Sequence[DeltaRow]) -> pd.DataFrame:
    """The table for reading: rows ``LS α = 0.1, T = 1`` (the objective before T when
    there are several); Δ as ``+0.42 [-0.10, +0.94]``, n, the two students' mean
    top-1 and each side metric as ``mean [low, high]``."""
    several = _several_objectives(rows)
    name = "teacher, students, T" if several else "teacher, T"
    index = pd.Index(
        [delta_row_label(r.regularizer, r.objective, r.T, several) for r in rows],
        name=name,
    )
    out = pd.DataFrame(index=index)
    base = teacher_text(BASE)
    out["Δ top-1 [95 % CI]"] = [
        format_estimate(r.delta) + (f" {CHANCE_MARK}" if r.at_chance else "")
        for r in rows
    ]
    out["n"] = [r.delta.n for r in rows]
    out["top-1, its student"] = [f"{r.top1_reg:.2f}" for r in rows]
    out[f"top-1, {base}'s student"] = [f"{r.top1_base:.2f}" for r in rows]
    empty = interval([])
    for metric in side_metrics(rows):
        label = NEXT_TO_DELTA[metric]
        for i, who in enumerate(("its", f"{base}'s")):
            out[f"{label}, {who} student"] = [
                format_estimate(
                    r.sides.get(metric, (empty, empty))[i], metric_digits(metric), False
                )
                for r in rows
            ]
    return out


def reading(est: Estimate, reg: Choice, at_chance: bool = False) -> str:
    """What one Δ estimate says, in words (nothing when a student is at chance)."""
    if at_chance:
        return f"not judged: a student at chance level {CHANCE_MARK}"
    if est.n == 0:
        return "no seed has both students"
    if not est.has_interval:
        return "one seed, so no interval"
    if est.low > 0:
        return f"the {teacher_text(reg)}'s students are better"
    if est.high < 0:
        return f"the {teacher_text(BASE)}'s students are better"
    return "inconclusive (the interval contains 0)"


def delta_caption(pair: PairRuns, rows: Sequence[DeltaRow]) -> str:
    caption = f"{benefit_name(rows)[0].upper()}{benefit_name(rows)[1:]}: "
    caption += f"{describe(pair)}. {DEFINITION}."
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
    caption += "."
    if any(r.at_chance for r in rows):
        caption += (
            f" {CHANCE_MARK} marks a Δ with a student at chance level (key chance of "
            "its metrics.json): it has not learned, so that Δ is not judged."
        )
    return caption


# ---------------------------------------------------------------- the figure


@dataclass(frozen=True)
class PaperDelta:
    """The paper's Δ(T) of one setting, from ``paper_numbers.csv``."""

    label: str
    temps: tuple[float, ...]
    deltas: tuple[float, ...]


def paper_deltas() -> list[PaperDelta]:
    """Student top-1 with the alpha = 0.1 (LS) teacher minus with the alpha = 0 (CE)
    teacher, per T, for every image setting of the shipped paper numbers
    (Chandrasegaran et al. 2022, Tables 2 and 4; KD students), labelled ``paper
    <table>, <task> <teacher>→<student>``."""
    numbers_ = load_paper_numbers()
    students = numbers_[(numbers_["role"] == "student") & numbers_["top1"].notna()]
    out = []
    keys = ["section", "task", "teacher_arch", "student_arch"]
    for (_, task, tarch, sarch), group in students.groupby(keys, sort=True):
        by = group.pivot_table(index="T", columns="alpha", values="top1")
        ls = [a for a in by.columns if a > BASE.alpha]
        if BASE.alpha not in by.columns or len(ls) != 1:
            continue
        delta = (by[ls[0]] - by[BASE.alpha]).dropna()
        table = group["paper_table"].iloc[0].split(" / ")[0]
        label = (
            f"paper {table}, {task_name(task)} {short_arch(tarch)}→{short_arch(sarch)}"
        )
        out.append(
            PaperDelta(label, tuple(map(float, delta.index)), tuple(delta.to_numpy()))
        )
    return out


def plot_series(
    ax, rows: Sequence[DeltaRow], i: int, k: int, label: str, **style
) -> None:
    """One series of Δ(T) (its rows with paired seeds) in colour ``C{i}``, at slot i
    of k beside T, with 95 % error bars; ``style``: further ``errorbar`` options."""
    mine = [r for r in rows if r.delta.n]
    errorbars(
        ax,
        jitter([r.T for r in mine], i, k),
        [r.delta for r in mine],
        f"C{i}",
        label,
        **style,
    )


def _mark_chance(ax, rows: Sequence[DeltaRow], i: int, k: int) -> None:
    """`†` beside each point of a series whose students include a run at chance."""
    marked = [r for r in rows if r.delta.n and r.at_chance]
    for x, r in zip(jitter([r.T for r in marked], i, k), marked, strict=True):
        ax.annotate(
            f"{CHANCE_MARK} at chance",
            (x, r.delta.mean),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=8,
            color=f"C{i}",
        )


def _legend(ax, first: int) -> None:
    """This run's series first, then the ``first`` reference lines drawn before."""
    handles, labels = ax.get_legend_handles_labels()
    where = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if first else {}
    ax.legend(
        handles[first:] + handles[:first],
        labels[first:] + labels[:first],
        fontsize=8,
        **where,  # reference lines: beside the panel; this run's series alone: inside
    )


def plot_delta(
    rows: Sequence[DeltaRow], title: str, out_png: Path, paper: bool = True
) -> None:
    """One panel per student objective: Δ against T per regularizer with error bars
    (95 % interval), the zero line and, in the `kd` panel when it has an `ls`
    teacher, the paper's Δ(T) as labelled dashed reference lines."""
    objectives = sorted({r.objective for r in rows}, key=objective_order)
    regs = sorted({r.regularizer for r in rows}, key=regularizer_order)
    # Two panels a row; each its own y range (a collapsed objective must not flatten
    # the others' differences of a few tenths).
    ncols = min(2, len(objectives))
    nrows = -(-len(objectives) // ncols)
    fig = Figure(figsize=(8.4 * ncols, 4.4 * nrows), layout="constrained")
    grid = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    axes = grid[: len(objectives)]
    for spare in grid[len(objectives) :]:
        spare.set_visible(False)
    references = paper_deltas() if paper else []
    for ax, obj in zip(axes, objectives, strict=True):
        mine = [r for r in rows if r.objective == obj]
        has_ls = any(r.regularizer.name == "ls" for r in mine)
        refs = references if obj == DEFAULT_OBJECTIVE and has_ls else []
        for j, ref in enumerate(refs):
            ax.plot(
                ref.temps,
                ref.deltas,
                ls="--",
                marker=".",
                lw=1,
                color=f"C{j + len(regs) + 1}",
                alpha=0.75,
                label=ref.label,
            )
        for i, reg in enumerate(regs):
            series = [r for r in mine if r.regularizer == reg]
            if series:
                label = f"this run, {versus_text(reg, BASE)}"
                plot_series(ax, series, i, len(regs), label, lw=2, capsize=4)
                _mark_chance(ax, series, i, len(regs))
        temps = sorted({r.T for r in mine} | {T for ref in refs for T in ref.temps})
        temperature_axis(ax, temps)
        if len(objectives) > 1:
            ax.set_title(students_text(obj), fontsize=10)
        _legend(ax, len(refs))
        ax.set_ylabel("Δ top-1 (points)")
    fig.suptitle(
        f"{title}\nΔ(T) = student top-1 with the regularized teacher − with the "
        f"{teacher_text(BASE)} (same objective and T)\nerror bars: 95 % interval of "
        "paired seed differences",
        fontsize=9,
    )
    save_png(fig, out_png)


# ---------------------------------------------------------------- the summary


def _trend(
    frame: pd.DataFrame, reg: Choice, obj: Choice, metric: str, lo: float, hi: float
) -> Estimate:
    """Paired by seed: ``metric`` of the (reg, obj) students at T = hi minus at T =
    lo."""

    def at(T: float) -> dict[int, float]:
        mask = frame["key"].map(lambda k: k == ("student", reg, obj, T))
        rows = frame[mask & frame[metric].notna()]
        return dict(zip(rows["seed"].astype(int), rows[metric], strict=True))

    return paired(at(hi), at(lo))


def _trend_blocks(
    frame: pd.DataFrame, rows: Sequence[DeltaRow], reg: Choice, obj: Choice
) -> list[tuple[str, Any]]:
    temps = sorted({r.T for r in rows})
    if len(temps) < 2:
        return []
    lo, hi = temps[0], temps[-1]
    trends = []
    for metric in side_metrics(rows):
        parts = []
        for r in (reg, BASE):
            est = _trend(frame, r, obj, metric, lo, hi)
            if est.n:
                parts.append(
                    f"{format_estimate(est, metric_digits(metric))} with the "
                    f"{teacher_text(r)} (n = {est.n})"
                )
        if parts:
            trends.append(f"{NEXT_TO_DELTA[metric]}: " + "; ".join(parts))
    if not trends:
        return []
    expects = (
        "the paper expects the LS teacher's students to diffuse more as T rises"
        if reg.name == "ls"
        else "the paper's explanation, for LS teachers: their students diffuse "
        "more as T rises"
    )
    head = (
        f"Change from T = {t_text(lo)} to T = {t_text(hi)} in the students' "
        f"diffusion, paired by seed ({expects}: 1 − S up, separation down):"
    )
    return [("p", head), ("ul", trends)]


def summary_blocks(
    pair: PairRuns,
    rows: Sequence[DeltaRow],
    frame: pd.DataFrame | None = None,
) -> list[tuple[str, Any]]:
    """The generated summary as blocks ``("title" | "p", text)`` and
    ``("ul", [items])``: per (regularizer, objective) what Δ says at each T, the
    students' diffusion trend and the claims' verdicts; every number from the run
    (``rows``, the per-run ``frame`` of ``side_estimates`` and
    ``lskd.analysis.claims``)."""
    blocks: list[tuple[str, Any]] = [
        ("title", f"What this run found: the {benefit_name(rows)}, {describe(pair)}"),
        ("p", f"{DEFINITION}."),
    ]
    claims = evaluate_claims(pair.metrics, pair.sources)
    several = _several_objectives(rows)
    for reg, obj in dict.fromkeys(r.series for r in rows):
        mine = [r for r in rows if r.series == (reg, obj)]
        items = [
            f"T = {t_text(r.T)}: Δ = {format_estimate(r.delta)}"
            f"{f' {CHANCE_MARK}' if r.at_chance else ''} (n = {r.delta.n}): "
            f"{reading(r.delta, reg, r.at_chance)}"
            for r in mine
        ]
        who = f", {students_text(obj)}" if several else ""
        head = f"{teacher_text(reg)} against the {teacher_text(BASE)}{who}:"
        blocks += [("p", head), ("ul", items)]
        if frame is not None:
            blocks += _trend_blocks(frame, mine, reg, obj)
        block = claims[
            (claims["regularizer"] == reg.label) & (claims["objective"] == obj.label)
        ]
        if len(block):
            verdicts = ", ".join(
                f"{c} {v}"
                for c, v in zip(block["claim_id"], block["verdict"], strict=True)
            )
            blocks.append(
                (
                    "p",
                    f"Claims for the {method_text(reg, obj)} (judged by 95 % "
                    "intervals of paired seed differences; the Claims table has the "
                    f"wording and margins): {verdicts}.",
                )
            )
    return blocks


def effect(est: Estimate, T: float, unit: str = "points", score: str = "top-1") -> str:
    """`helped at T = 1 (+0.63 points, 95 % interval +0.32 to +0.94)`: what a paired
    difference of ``score`` in ``unit`` says (the answers the report opens with)."""
    if est.n == 0:
        return f"could not be compared at T = {t_text(T)} (no seed has both students)"
    if not est.has_interval:
        amount = f"{est.mean:+.2f}" + ("" if unit == score else f" {unit}")
        return f"changed {score} by {amount} at T = {t_text(T)} (one seed, no interval)"
    numbers = f"{est.mean:+.2f} {unit}, 95 % interval {est.low:+.2f} to {est.high:+.2f}"
    if est.low > 0:
        word = "helped"
    elif est.high < 0:
        word = "hurt"
    else:
        word = "made no clear difference"
    return f"{word} at T = {t_text(T)} ({numbers})"


def advice_verdict(low: Estimate, advice: str = "the paper's advice") -> str:
    """Whether ``advice`` (a regularized teacher, distilled at the lowest T) holds on
    a run, from the benefit ``low`` at that T: holds when its interval lies above 0,
    fails when below, cannot be told otherwise."""
    if low.has_interval and low.low > 0:
        return f"{advice} holds on this run"
    if low.has_interval and low.high < 0:
        return f"{advice} fails on this run"
    return f"this run cannot tell whether {advice} holds"


def headline(rows: Sequence[DeltaRow]) -> list[str]:
    """One plain sentence per (regularizer, objective): what the regularized teacher
    did to its students at the lowest and the highest T against the CE teacher, and
    whether the paper's advice (a regularized teacher, distilled at T = 1) holds on
    these runs (it does when the lowest T's interval lies above 0, fails when below,
    and cannot be told otherwise)."""
    sentences = []
    series: dict[tuple[Choice, Choice], list[DeltaRow]] = {}
    for r in rows:
        series.setdefault((r.regularizer, r.objective), []).append(r)
    order = sorted(
        series, key=lambda k: (objective_order(k[1]), regularizer_order(k[0]))
    )
    for reg, obj in order:
        ordered = sorted(series[(reg, obj)], key=lambda r: r.T)
        low, high = ordered[0], ordered[-1]
        text = f"Against a {teacher_text(BASE)}, the {teacher_text(reg)} "
        text += f"({students_text(obj)}) {effect(low.delta, low.T)}"
        if high is not low:
            text += f" and {effect(high.delta, high.T)}"
        advice = "the paper's advice"
        if reg.name != PAPER_REGULARIZER or obj != DEFAULT_OBJECTIVE:
            advice += " (carried over to these methods)"
        if any(r.at_chance for r in (low, high)):
            verdict = f"not judged: a student is at chance level {CHANCE_MARK}"
        else:
            verdict = advice_verdict(low.delta, advice)
        sentences.append(f"{text}: {verdict}.")
    return sentences


def headline_html(
    sentences: Sequence[str], title: str | None = None, png: Path | None = None
) -> str:
    """A fragment of the report's first screen: a title, the sentences and a figure
    (embedded, so the fragment stands alone); the Δ answers of a pair
    (`write_delta`) and Table 5's (`lskd.nmt.table`)."""
    items = "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
    text = '<meta charset="utf-8">\n<div class="lskd-headline">\n'
    if title is not None:
        text += f"<p><strong>{html.escape(title)}</strong></p>\n"
    text += f"<ul>{items}</ul>\n"
    if png is not None:
        data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
        alt = f"Δ(T) of {title}" if title else "figure"
        text += (
            f'<img src="data:image/png;base64,{data}" style="max-width:100%" '
            f'alt="{html.escape(alt)}">\n'
        )
    return text + "</div>\n"


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


def _write_text(dest: Path | None, text: str) -> None:
    if dest is not None:
        with atomic_path(Path(dest)) as tmp:
            tmp.write_text(text, encoding="utf-8")


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
    headline_path: Path | None = None,
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
        pair.label("delta"),
        out_csv,
        out_md,
        out_tex,
        out_html,
        csv_table=table,
    )
    plot_delta(rows, describe(pair), Path(out_png))
    blocks = summary_blocks(pair, rows, frame)
    _write_text(summary_md, summary_markdown(blocks))
    _write_text(summary_html_path, summary_html(blocks))
    sentences = headline(rows)
    _write_text(headline_path, headline_html(sentences, pair.title, Path(out_png)))
    for sentence in sentences:
        log.info("%s", sentence)
    log.info("wrote %s and more from %d runs", out_csv, len(paths))
    return table


# ---------------------------------------------------------------- transfer-set sizes


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
    """Δ(T) per transfer-set size of one pair, and per (regularizer, objective, T)
    the paired-by-seed ``Δ_size(T) - Δ_ref(T)`` (per seed: that seed's Δ at this size
    minus its Δ at the reference), the reference being ``all`` (the whole split) or
    else the largest size. Teachers (no ``transfer`` record) are shared by every
    size; every student needs a ``transfer`` record."""
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
    ref_rows = {(*r.series, r.T): r for r in deltas[reference.size]}
    rows = []
    for t in order:
        for r in deltas[t.size]:
            ref = ref_rows.get((*r.series, r.T))
            vs = None
            if t != reference:
                vs = paired(r.per_seed(), ref.per_seed() if ref else {})
            rows.append(SizeRow(t, r, vs))
    rows.sort(
        key=lambda s: (
            objective_order(s.row.objective),
            regularizer_order(s.row.regularizer),
            s.row.T,
            s.transfer.images,
        )
    )
    return Interaction(pairs, reference, rows)


def interaction_numbers(result: Interaction) -> pd.DataFrame:
    """The CSV: per (regularizer, objective, T, size) Δ with its interval and n, and
    ``minus_ref`` (Δ_size - Δ_ref, paired by seed) with ``_low``, ``_high``,
    ``_n``."""
    records = []
    nan = math.nan
    for s in result.rows:
        d, v = s.row.delta, s.vs_ref
        records.append(
            {
                "regularizer": s.row.regularizer.label,
                "alpha": s.row.regularizer.alpha,
                "objective": s.row.objective.label,
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
    several = _several_objectives([s.row for s in result.rows])
    index = pd.Index(
        [
            delta_row_label(
                s.row.regularizer,
                s.row.objective,
                s.row.T,
                several,
                f", {s.transfer.text}",
            )
            for s in result.rows
        ],
        name="teacher, T, transfer set",
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
    name = benefit_name([s.row for s in result.rows])
    return (
        f"{name[0].upper()}{name[1:]} against the KD transfer-set size: {pair.title}; "
        f"transfer sets {sizes}; the teachers are shared by every size. "
        f"{DEFINITION}. Δ − Δ({result.reference.size}): per seed, that seed's Δ(T) "
        f"at this size minus its Δ(T) with the reference transfer set "
        f"{result.reference.text}, then mean and 95 % Student-t interval over those "
        "seeds: the interaction of the teacher's regularizer with the amount of "
        "transfer data."
    )


def plot_interaction(result: Interaction, out_png: Path) -> None:
    """One panel per (regularizer, objective): Δ(T) with error bars, one line per
    transfer size."""
    series = list(dict.fromkeys(s.row.series for s in result.rows))
    several = len({obj for _, obj in series}) > 1
    sizes = sorted({s.transfer for s in result.rows}, key=lambda t: (t.images, t.size))
    fig = Figure(figsize=(5.4 * len(series) + 2.0, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(series), sharey=True))
    temps = sorted({s.row.T for s in result.rows})
    for ax, (reg, obj) in zip(axes, series, strict=True):
        for i, t in enumerate(sizes):
            mine = [
                s.row
                for s in result.rows
                if s.transfer == t and s.row.series == (reg, obj)
            ]
            plot_series(ax, mine, i, len(sizes), f"transfer {t.text}", capsize=3)
        temperature_axis(ax, temps)
        title = versus_text(reg, BASE)
        if several:
            title += f", {students_text(obj)}"
        ax.set_title(title, fontsize=10)
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
        pair.label("delta-transfer"),
        out_csv,
        out_md,
        out_tex,
        out_html,
        csv_table=table,
    )
    plot_interaction(result, Path(out_png))
    log.info("wrote %s and more from %d runs", out_csv, len(paths))
    return table


# ---------------------------------------------------------------- power


def seed_power(table: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per row of a Δ CSV (`numbers`): the standard deviation of its paired seed
    differences, recovered exactly from its interval (sd = half-width · √n /
    t_{0.975, n-1}), and the paired seeds (`stats.seeds_for`) whose 95 % half-width
    would be at most ``target`` points: the power computation of a study from a pilot
    (config/README.md#seeds). A transfer-set CSV (`interaction_numbers`) keeps its
    ``transfer`` column."""
    rows = []
    sizes = "transfer" in table.columns
    for r in table.itertuples():
        n = int(r.n)
        if n < 2 or pd.isna(r.ci_low):
            sd, need = math.nan, None
        else:
            sd = (r.ci_high - r.ci_low) / 2 / half_width(1.0, n)
            try:
                need = seeds_for(sd, target)
            except ValueError:  # more than any study could run
                need = None
        rows.append(
            {
                "regularizer": r.regularizer,
                "objective": r.objective,
                **({"transfer": r.transfer} if sizes else {}),
                "T": r.T,
                "n": n,
                "sd": sd,
                "half_width": (r.ci_high - r.ci_low) / 2,
                "seeds_needed": need,
            }
        )
    out = pd.DataFrame(rows)
    out["seeds_needed"] = out["seeds_needed"].astype("Int64")
    return out
