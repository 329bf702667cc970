"""Paper-layout result table (Tables 2 and 4) from the runs' ``metrics.json`` files.

Rows: ``Teacher <arch>``, then ``Student <arch>, T=<T>`` by T ascending. Columns:
``alpha = <a>`` (the teacher's label-smoothing factor) by alpha ascending. A cell is
``top1 / top5`` (%) or, with several seeds, ``mean ± std`` (sample std) and ``(n=k)``;
an empty cell is ``–``. A cell ends in ``†`` when one of its runs is at chance level
(``chance.at_chance`` of its metrics.json, ``lskd.chance.chance_level``); the caption
then says what the mark means.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lskd.analysis.formats import write_table_files
from lskd.chance import CHANCE_POINTS, CHANCE_SIGMAS
from lskd.errors import DataError

log = logging.getLogger(__name__)

MISSING = "–"
CHANCE_MARK = "†"
CHANCE_NOTE = (
    f" {CHANCE_MARK} marks a cell with a run at chance level: its test top-1 is below "
    "100/K (K classes) plus the margin in its metrics.json (key chance: the larger of "
    f"{CHANCE_POINTS:g} points and {CHANCE_SIGMAS:g} binomial standard deviations of "
    "guessing on the test split), so that run did not learn."
)
EPOCH_TEXT = {
    "last": "last epoch",
    "best_val": (
        "epoch with the best held-out validation top-1 "
        "(never selected on the reported split)"
    ),
    "imported": "imported checkpoint (evaluated here, not trained by lskd)",
}


@dataclass(frozen=True)
class Run:
    """The fields of one ``metrics.json`` that the table uses."""

    source: str
    role: str
    task: str
    arch: str
    teacher_arch: str
    alpha: float
    T: float | None
    seed: int
    teacher_seed: int | None
    selection: str
    eval_split: str
    top1: float
    top5: float
    at_chance: bool = False


def _get(metrics: dict[str, Any], key: str, kind: type | tuple, source: str) -> Any:
    """``metrics[key]`` checked against ``kind``; errors name the file and key."""
    if key not in metrics:
        raise DataError(f"{source}: missing key '{key}'")
    value = metrics[key]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise DataError(f"{source}: key '{key}' has bad value {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"{source}: key '{key}' is not finite: {value!r}")
    return value


def parse_run(metrics: dict[str, Any], source: str) -> Run:
    """Validate one ``metrics.json`` dict and keep the fields the table uses."""
    num = (int, float)
    role = _get(metrics, "role", str, source)
    if role not in ("teacher", "student"):
        raise DataError(f"{source}: key 'role' must be 'teacher' or 'student'")
    selection = _get(metrics, "selection", str, source)
    if selection not in EPOCH_TEXT:
        raise DataError(f"{source}: key 'selection' must be one of {list(EPOCH_TEXT)}")
    arch = _get(metrics, "arch", str, source)
    alpha = float(_get(metrics, "alpha", num, source))
    T, teacher_arch, teacher_seed = None, arch, None
    if role == "student":
        T = float(_get(metrics, "T", num, source))
        teacher = _get(metrics, "teacher", dict, source)
        teacher_arch = _get(teacher, "arch", str, f"{source}: key 'teacher'")
        teacher_seed = teacher.get("seed")
        if teacher.get("alpha") is not None and teacher["alpha"] != alpha:
            raise DataError(f"{source}: key 'alpha' differs from 'teacher.alpha'")
    return Run(
        source=source,
        role=role,
        task=_get(metrics, "task", str, source),
        arch=arch,
        teacher_arch=teacher_arch,
        alpha=alpha,
        T=T,
        seed=_get(metrics, "seed", int, source),
        teacher_seed=teacher_seed,
        selection=selection,
        eval_split=_get(metrics, "eval_split", str, source),
        top1=float(_get(metrics, "top1", num, source)),
        top5=float(_get(metrics, "top5", num, source)),
        at_chance=_at_chance(metrics, source),
    )


def _at_chance(metrics: dict[str, Any], source: str) -> bool:
    """``chance.at_chance`` of a metrics.json (False where a file predates it)."""
    if "chance" not in metrics:
        return False
    chance = _get(metrics, "chance", dict, source)
    return _get(chance, "at_chance", bool, f"{source}: key 'chance'")


def check_consistent(runs: Sequence[Run]) -> None:
    """All runs share task, teacher arch and split; students share their arch and one
    `selection`; teachers may differ (e.g. an imported alpha = 0 teacher): the caption
    names every selection."""
    students = [r for r in runs if r.role == "student"]
    checks = [
        ("task", runs),
        ("teacher_arch", runs),
        ("arch", students),
        ("selection", students),
        ("eval_split", runs),
    ]
    check_same(checks)
    check_unique(runs, lambda r: (r.role, r.alpha, r.T, r.seed, r.teacher_seed))


def check_same(checks: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """For each ``(field, runs)``: every run's ``field`` equals the first run's; the
    error names both files (runs have a ``source``)."""
    for field, group in checks:
        if not group:
            continue
        for run in group[1:]:
            ref, value = getattr(group[0], field), getattr(run, field)
            if value != ref:
                what = "student arch" if field == "arch" else field.replace("_", " ")
                raise DataError(
                    f"{run.source}: {what} {value!r} differs from {ref!r} "
                    f"in {group[0].source}"
                )


def check_unique(runs: Sequence[Any], key: Callable[[Any], tuple]) -> None:
    """No two runs share ``key(run)``; the error names both files."""
    seen: dict[tuple, str] = {}
    for run in runs:
        if key(run) in seen:
            raise DataError(f"{run.source}: duplicate of run {seen[key(run)]}")
        seen[key(run)] = run.source


def row_label(role: str, arch: str, T: float | None = None) -> str:
    """Row name: ``Teacher resnet50`` or ``Student resnet18, T=2``."""
    if role == "teacher":
        return f"Teacher {arch}"
    return f"Student {arch}, T={format(T, 'g')}"


def format_alpha(alpha: float) -> str:
    """Column label, at least one decimal: ``alpha = 0.0``, ``alpha = 0.05``."""
    text = format(alpha, "g")
    if not re.search(r"[.e]", text):
        text += ".0"
    return f"alpha = {text}"


def format_values(*columns: Sequence[float]) -> str:
    """One cell from per-run values of one or more metrics: ``a / b`` for one run;
    ``mean ± std / mean ± std (n=k)`` (sample std) for several; ``–`` for none."""
    n = len(columns[0])
    if n == 0:
        return MISSING
    if n == 1:
        return " / ".join(f"{c[0]:.2f}" for c in columns)
    parts = (np.asarray(c, dtype=float) for c in columns)
    text = " / ".join(f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" for v in parts)
    return f"{text} (n={n})"


def format_cell(runs: Sequence[Run]) -> str:
    """``top1 / top5`` for one run; ``mean ± std / mean ± std (n=k)`` for several;
    `` †`` appended when a run is at chance level."""
    text = format_values([r.top1 for r in runs], [r.top5 for r in runs])
    return f"{text} {CHANCE_MARK}" if any(r.at_chance for r in runs) else text


def _parse_all(
    metrics: Sequence[dict[str, Any]], sources: Sequence[str] | None
) -> list[Run]:
    if not metrics:
        raise DataError("no metrics.json given")
    if sources is None:
        sources = [f"metrics[{i}]" for i in range(len(metrics))]
    if len(sources) != len(metrics):
        raise DataError("sources and metrics differ in length")
    runs = [parse_run(m, s) for m, s in zip(metrics, sources, strict=True)]
    check_consistent(runs)
    return runs


def build_table(
    metrics: Sequence[dict[str, Any]], sources: Sequence[str] | None = None
) -> pd.DataFrame:
    """Paper-layout table; ``sources`` (e.g. file names) are named in errors."""
    runs = _parse_all(metrics, sources)
    teacher_arch = runs[0].teacher_arch
    students = [r for r in runs if r.role == "student"]
    alphas = sorted({r.alpha for r in runs})
    temps = sorted({r.T for r in students if r.T is not None})
    rows: list[tuple[str, str, float | None]] = [
        (row_label("teacher", teacher_arch), "teacher", None)
    ]
    if students:
        arch = students[0].arch
        rows += [(row_label("student", arch, t), "student", t) for t in temps]
    cells = {
        label: [
            format_cell([r for r in runs if (r.role, r.T, r.alpha) == (role, t, alpha)])
            for alpha in alphas
        ]
        for label, role, t in rows
    }
    table = pd.DataFrame.from_dict(
        cells, orient="index", columns=[format_alpha(a) for a in alphas]
    )
    table.index.name = "model"
    return table


def table_caption(
    metrics: Sequence[dict[str, Any]], sources: Sequence[str] | None = None
) -> str:
    """One sentence: task, teacher→student, split, selected epoch, KD loss."""
    runs = _parse_all(metrics, sources)
    first = runs[0]
    students = [r for r in runs if r.role == "student"]
    pair = f"teacher {first.teacher_arch}"
    kd = ""
    if students:
        pair += f" → student {students[0].arch}"
        kd = (
            " and students are trained with KD at temperature T as in "
            "docs/recipes.md#kd-loss (T²·KL, no hard-label term)"
        )
    teacher_epochs, student_epochs = (
        " or ".join(sorted({EPOCH_TEXT[r.selection] for r in runs if r.role == role}))
        for role in ("teacher", "student")
    )
    if not student_epochs or teacher_epochs in ("", student_epochs):
        epoch = f"at the {teacher_epochs or student_epochs}"
    else:
        epoch = (
            f"at the {teacher_epochs} (teachers) and the {student_epochs} (students)"
        )
    return (
        f"{first.task}, {pair}: cells are top-1 / top-5 accuracy (%) on the "
        f"{first.eval_split} split {epoch}, "
        "as mean ± sample std with the number of seeds n when there are several; "
        f"alpha is the teacher's label-smoothing factor{kd}."
        + (CHANCE_NOTE if any(r.at_chance for r in runs) else "")
    )


def read_metrics(path: Path) -> dict[str, Any]:
    """Read one ``metrics.json``; a missing or invalid file is a ValueError."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path}: invalid JSON ({err.msg}, line {err.lineno})"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def write_table(
    metric_paths: Sequence[Path],
    out_csv: Path,
    out_md: Path,
    out_tex: Path,
    out_html: Path | None = None,
) -> pd.DataFrame:
    """Build the table from ``metric_paths``; write CSV, Markdown, LaTeX (and HTML).

    When the paper has numbers for this task and teacher -> student pair, each alpha
    column is followed by the paper's cell and the top-1 delta (``with_paper_columns``).
    """
    paths = [Path(p) for p in metric_paths]
    metrics = [read_metrics(p) for p in paths]
    sources = [str(p) for p in paths]
    from lskd.analysis.paper import with_paper_columns  # paper.py imports this module

    table = build_table(metrics, sources)
    caption = table_caption(metrics, sources)
    table, caption = with_paper_columns(table, caption, metrics, sources)
    first = next(parse_run(m, s) for m, s in zip(metrics, sources, strict=True))
    pair = f"{first.task}-{first.teacher_arch}-{_student_arch(metrics, sources)}"
    label = "tab:" + re.sub(r"[^A-Za-z0-9]+", "-", pair)
    write_table_files(table, caption, label, out_csv, out_md, out_tex, out_html)
    log.info("wrote %s and more from %d runs", out_csv, len(paths))
    return table


def _student_arch(metrics: Sequence[dict], sources: Sequence[str]) -> str:
    runs = [parse_run(m, s) for m, s in zip(metrics, sources, strict=True)]
    return next((r.arch for r in runs if r.role == "student"), "teacher")
