"""Our diffusion metrics and Shen et al.'s stability across the teachers' regularizers,
the students' objectives and T for one teacher -> student pair: a table and a figure
(metric vs T, one line per teacher regularizer and student objective with error bars;
the teachers as dashed levels with their interval as a band).

Every row is identified by the files themselves, never by the order they are given in:
a ``diffusion.json`` is joined to the ``metrics.json`` of the same run directory (and
must name a projection of that directory as its ``source``); the run's identity (role,
regularizer, objective, T, seed: `lskd.identity.RunId`) comes from that
``metrics.json``, and all runs must be of one pair (task, teacher and student
architectures). The diffusion metrics (``lskd.analysis.diffusion``, on the projected
training points) are lskd's own numbers, not the paper's. The stability is Shen et
al. 2021, Eq. (2), computed at evaluation time over all classes and every test image
(``lskd.train.stability_sums``) and read from ``metrics.json``; the table shows
``1 − S``, as their Table 1 does.

Per cell (``RunId.method_key``: role, regularizer, objective, T) and metric: the mean
over seeds and its 95 % Student-t interval (``lskd.analysis.stats.interval``). A cell
with a run at chance level (``chance.at_chance`` of its metrics.json) carries the
tables' mark (`lskd.analysis.tables`), in the table and beside its point in the figure.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from lskd.analysis.diffusion import flat_metrics
from lskd.analysis.formats import to_html
from lskd.analysis.labels import (
    objective_order,
    regularizer_order,
    students_text,
    t_text,
    teacher_text,
)
from lskd.analysis.plots import errorbars, jitter, save_png, temperature_axis
from lskd.analysis.records import check_same, check_unique, parse_run, read_metrics
from lskd.analysis.stats import INTERVAL_TEXT, Estimate, format_estimate, interval
from lskd.analysis.tables import CHANCE_MARK, CHANCE_NOTE
from lskd.atomic import atomic_path
from lskd.errors import DataError

log = logging.getLogger(__name__)
# Per run: its cell (`RunId.method_key`), readable columns of it, its seed and
# whether it is at chance level.
IDENTITY = (
    "key",
    "role",
    "regularizer",
    "alpha",
    "objective",
    "T",
    "seed",
    "at_chance",
)
DIFFUSION = ("separation", "anisotropy_0", "anisotropy_1", "spread_0", "spread_1")
STABILITY = "one_minus_stability"  # 1 - S on the test split, from metrics.json
COLUMNS = (*DIFFUSION, STABILITY)
PLOTTED = {  # column -> panel title
    "separation": "separation (classes 0, 1)",
    "anisotropy_0": "anisotropy (class 0)",
    "anisotropy_1": "anisotropy (class 1)",
    STABILITY: "1 − S, Shen et al. 2021 Eq. (2) (test)",
}


def one_minus_stability(metrics: dict, source: str) -> float:
    """``1 - stability`` of a metrics.json (NaN when the run predates the metric)."""
    value = metrics.get("stability")
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(f"{source}: key 'stability' has bad value {value!r}")
    return 1.0 - float(value)


def _diffusion_of(dpath: Path) -> dict[str, float]:
    """The flat diffusion metrics of one diffusion.json, checked to belong to the run
    directory it lies in (its ``source`` projection is in that directory)."""
    try:
        data = json.loads(dpath.read_text(encoding="utf-8"))
        flat = flat_metrics(data)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{dpath}: not a diffusion.json ({err})") from None
    source = data.get("source")
    if source is not None:
        run = Path(source).parent
        if run.parts[-2:] != dpath.parent.parts[-2:]:
            raise DataError(
                f"{dpath}: key 'source' names {source}, a projection of another run"
            )
    return {k: flat[k] for k in DIFFUSION}


def read_runs(
    metrics_paths: Sequence[Path], diffusion_paths: Sequence[Path] = ()
) -> pd.DataFrame:
    """One row per metrics.json: its identity (``IDENTITY``), ``one_minus_stability``
    and the diffusion metrics of the diffusion.json in the same run directory (NaN for
    a run without one). Every diffusion.json needs a metrics.json beside it."""
    rows: dict[Path, dict] = {}
    runs = []
    for mpath in map(Path, metrics_paths):
        m = read_metrics(mpath)
        run = parse_run(m, str(mpath))
        runs.append(run)
        row = {
            "key": run.key,
            "role": run.role,
            "regularizer": run.regularizer.label,
            "alpha": run.regularizer.alpha,
            "objective": None if run.objective is None else run.objective.label,
            "T": run.T,
            "seed": run.seed,
            "at_chance": run.at_chance,
        }
        row[STABILITY] = one_minus_stability(m, str(mpath))
        rows[mpath.parent.resolve()] = row | dict.fromkeys(DIFFUSION, math.nan)
    check_unique(runs, lambda r: (*r.key, r.seed))
    students = [r for r in runs if r.role == "student"]  # one pair: the title says so
    check_same([("task", runs), ("teacher_arch", runs), ("arch", students)])
    seen: set[Path] = set()
    for dpath in map(Path, diffusion_paths):
        run_dir = dpath.parent.resolve()
        if run_dir not in rows:
            raise DataError(f"{dpath}: no metrics.json of its run directory was given")
        if run_dir in seen:
            raise DataError(f"{dpath}: a second diffusion.json for the same run")
        seen.add(run_dir)
        rows[run_dir].update(_diffusion_of(dpath))
    return pd.DataFrame(list(rows.values()), columns=[*IDENTITY, *COLUMNS])


def estimates(
    frame: pd.DataFrame, columns: Sequence[str] = COLUMNS
) -> dict[tuple, dict[str, Estimate]]:
    """``{cell: {column: Estimate over seeds}}`` (cell: ``RunId.method_key``); NaN
    values (a run without that metric) are left out of their column's estimate."""
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(frame["key"]):
        groups.setdefault(key, []).append(i)
    return {
        key: {
            c: interval(v for v in frame[c].iloc[rows] if not pd.isna(v))
            for c in columns
        }
        for key, rows in groups.items()
    }


def cell_order(key: tuple) -> tuple:
    """Teachers first, then students by T; within, the base regularizer first, then
    the default objective first."""
    role, reg, objective, T = key
    return (
        role != "teacher",
        T or -1.0,
        regularizer_order(reg),
        objective_order(objective),
    )


def _ordered(ests: dict[tuple, dict[str, Estimate]]) -> list[tuple]:
    return sorted(ests, key=cell_order)


def chance_cells(frame: pd.DataFrame) -> set[tuple]:
    """The cells (``RunId.method_key``) with a run at chance level."""
    return set(frame["key"][frame["at_chance"].astype(bool)])


def build_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell (role, regularizer, objective, T; ``alpha`` for `ce`/`ls` teachers):
    for each metric its mean, ``_low`` and ``_high`` (the Student-t interval over
    seeds), ``n`` seeds and ``at_chance`` (a run of the cell is at chance level);
    teachers first, then T."""
    ests = estimates(frame)
    chance = chance_cells(frame)
    rows = []
    for key in _ordered(ests):
        role, reg, objective, T = key
        row = {
            "role": role,
            "regularizer": reg.label,
            "alpha": reg.alpha,
            "objective": None if objective is None else objective.label,
            "T": T,
        }
        for column, est in ests[key].items():
            row |= {column: est.mean, f"{column}_low": est.low}
            row[f"{column}_high"] = est.high
        row["n"] = max(e.n for e in ests[key].values())
        row["at_chance"] = key in chance
        rows.append(row)
    return pd.DataFrame(rows)


def shown(frame: pd.DataFrame) -> pd.DataFrame:
    """The table for reading: index (role, teacher, students, T) by label, one
    ``mean [low, high]`` cell per metric, and n seeds; a cell with a run at chance
    has the mark after its T (teachers: after their label)."""
    ests = estimates(frame)
    keys = _ordered(ests)
    chance = chance_cells(frame)

    def index_of(key: tuple) -> tuple[str, str, str, str]:
        role, reg, obj, T = key
        mark = f" {CHANCE_MARK}" if key in chance else ""
        students = "–" if obj is None else obj.label
        if T is None:  # a teacher: the mark after its label
            return (role, reg.label + mark, students, "–")
        return (role, reg.label, students, t_text(T) + mark)

    index = pd.MultiIndex.from_tuples(
        [index_of(key) for key in keys],
        names=["role", "teacher", "students", "T"],
    )
    out = pd.DataFrame(index=index)
    for column in COLUMNS:
        label = "1 − S (test)" if column == STABILITY else column
        out[label] = [format_estimate(ests[k][column], 3, signed=False) for k in keys]
    out["n"] = [max(e.n for e in ests[k].values()) for k in keys]
    return out


def plot(frame: pd.DataFrame, title: str, out_png: Path) -> None:
    """One panel per ``PLOTTED`` metric against T: students per (teacher
    regularizer, objective) with error bars (95 % interval over seeds), teachers as
    dashed levels with a shaded interval, in their regularizer's colour."""
    ests = estimates(frame, list(PLOTTED))
    chance = chance_cells(frame)
    regs = sorted({k[1] for k in ests}, key=regularizer_order)
    objectives = sorted({k[2] for k in ests if k[0] == "student"}, key=objective_order)
    series = [(r, o) for r in regs for o in objectives]
    temps = sorted({k[3] for k in ests if k[0] == "student"})
    fig = Figure(figsize=(4.2 * len(PLOTTED), 3.4), layout="constrained")
    axes = fig.subplots(1, len(PLOTTED))
    markers = "osD^v<>"
    for ax, name in zip(axes, PLOTTED, strict=True):
        for i, (reg, obj) in enumerate(series):
            colour = f"C{regs.index(reg)}"
            xs = [T for T in temps if ("student", reg, obj, T) in ests]
            cells = [ests[("student", reg, obj, T)][name] for T in xs]
            label = teacher_text(reg)
            if len(objectives) > 1:
                label += f", {students_text(obj)}"
            fmt = f"{markers[objectives.index(obj) % len(markers)]}-"
            if xs:
                at = jitter(xs, i, len(series))
                errorbars(ax, at, cells, colour, label, fmt=fmt)
                for x, T, cell in zip(at, xs, cells, strict=True):
                    if ("student", reg, obj, T) in chance and cell.n:
                        ax.annotate(
                            CHANCE_MARK,
                            (x, cell.mean),
                            xytext=(4, 4),
                            textcoords="offset points",
                            fontsize=9,
                            color=colour,
                        )
        for j, reg in enumerate(regs):
            teacher = ests.get(("teacher", reg, None, None), {}).get(name)
            if teacher is not None and teacher.n:
                ax.axhline(teacher.mean, color=f"C{j}", ls="--", lw=1)
                if teacher.has_interval:
                    ax.axhspan(
                        teacher.low, teacher.high, color=f"C{j}", alpha=0.12, lw=0
                    )
        if temps:
            temperature_axis(ax, temps, zero_line=False)
        ax.set_title(PLOTTED[name], fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(  # below the panels: with several objectives it would cover one
        handles,
        labels,
        title="students; teacher dashed",
        loc="outside lower center",
        ncols=min(3, max(1, len(labels))),
        fontsize=8,
    )
    note = f"; {CHANCE_MARK}: a run at chance level" if chance else ""
    fig.suptitle(f"{title} (error bars: 95 % interval over seeds{note})", fontsize=10)
    save_png(fig, out_png)


def pair_title(runs: Sequence[dict]) -> str:
    student = next((r["arch"] for r in runs if r["role"] == "student"), "-")
    teacher = next((r["arch"] for r in runs if r["role"] == "teacher"), "-")
    return f"{runs[0]['task']}: {teacher} teachers → {student} students"


def write_diffusion_table(
    metrics_paths: Sequence[Path],
    diffusion_paths: Sequence[Path],
    out_csv: Path,
    out_html: Path,
    out_png: Path,
) -> pd.DataFrame:
    """Read the runs (``read_runs``), write the table (CSV: numbers; HTML: cells
    ``mean [low, high]``) and the figure; each file atomically."""
    frame = read_runs(metrics_paths, diffusion_paths)
    table = build_table(frame)
    runs = [read_metrics(Path(p)) for p in metrics_paths]
    title = pair_title(runs)
    caption = (
        f"{title}: per teacher regularizer, student objective and T, mean over "
        f"seeds with its {INTERVAL_TEXT}, "
        "n seeds. separation of the two similar classes (centroid distance / pooled "
        "std), per-class anisotropy and spread: lskd's own diffusion metrics of the "
        "projected training features (not the paper's). 1 − S: Shen et al. 2021, "
        "Eq. (2), over every class and every test image (lower = more of the "
        "intra-class variation erased)."
    ) + (CHANCE_NOTE if bool(frame["at_chance"].any()) else "")
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_html) as tmp:
        tmp.write_text(to_html(shown(frame), caption), encoding="utf-8")
    plot(frame, title, out_png)
    log.info("wrote %s, %s, %s", out_csv, out_html, out_png)
    return table
