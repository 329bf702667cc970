"""How the analysis names what it shows: table rows and columns, teachers, students,
temperatures, figure panels and LaTeX labels. Every name comes from a run's identity
(`lskd.identity.RunId`); nothing here is parsed back into numbers.

A teacher is named by its regularizer's label (`Choice.label`: `CE`, `LS α = 0.1`,
`MaxSup λ = 0.1`), a student by its objective's (`KD`, `DKD α = 1, β = 8, ...`), a
temperature as its run paths spell it (`lskd.spelling.label_text`).
"""

from __future__ import annotations

import re
from typing import Any

from lskd.identity import DEFAULT_OBJECTIVE, Choice
from lskd.spelling import label_text

TASK_NAMES = {"imagenet": "ImageNet", "cub200": "CUB"}
ARCH_NAMES = {
    "resnet18": "R18",
    "resnet50": "R50",
    "mobilenet_v2": "MBv2",
    "efficientnet_b0": "EffB0",
}
TEACHER_ROW = "teacher"  # the teachers' row of a projection figure


def short_arch(arch: str) -> str:
    return ARCH_NAMES.get(arch, arch)


def task_name(task: str) -> str:
    return TASK_NAMES.get(task, task)


def t_text(T: float) -> str:
    """A temperature as run paths spell it: `1`, `64`, `0.5`."""
    return label_text(T)


def _numeric(params: tuple[tuple[str, Any], ...]) -> tuple:
    return tuple((v is None, 0.0 if v is None else float(v)) for _, v in params)


def regularizer_order(reg: Choice) -> tuple:
    """Sort key of teachers' regularizers: the base (`ce`) first, then by method name
    and parameter values (numerically). (`lskd.identity` has no order of choices.)"""
    return (not reg.is_base, reg.name, _numeric(reg.params))


def objective_order(objective: Choice | None) -> tuple:
    """Sort key of students' objectives: the default (`kd`) first, then by name and
    parameter values; None (a teacher) before all."""
    if objective is None:
        return (-1, "", ())
    return (
        int(objective != DEFAULT_OBJECTIVE),
        objective.name,
        _numeric(objective.params),
    )


def teacher_text(reg: Choice) -> str:
    """`CE teacher`, `LS α = 0.1 teacher`, `MaxSup λ = 0.1 teacher`."""
    return f"{reg.label} teacher"


def students_text(objective: Choice) -> str:
    """`KD students`, `DKD α = 1, β = 8, warm-up = 20, hard = 0 students`."""
    return f"{objective.label} students"


def method_text(reg: Choice, objective: Choice | None) -> str:
    """A cell's method: `LS α = 0.1 teacher` or `MaxSup λ = 0.1 teacher, DKD ...
    students`."""
    text = teacher_text(reg)
    return text if objective is None else f"{text}, {students_text(objective)}"


def versus_text(reg: Choice, base: Choice) -> str:
    """`LS α = 0.1 vs CE` (a Δ series)."""
    return f"{reg.label} vs {base.label}"


def row_label(
    role: str, arch: str, T: float | None = None, objective: Choice | None = None
) -> str:
    """Paper-layout table row: ``Teacher resnet50``, ``Student resnet18, T=2`` (the
    default objective `kd`) or ``Student resnet18, DKD α = 1, ..., T=2``."""
    if role == "teacher":
        return f"Teacher {arch}"
    if objective is not None and objective != DEFAULT_OBJECTIVE:
        return f"Student {arch}, {objective.label}, T={t_text(T)}"
    return f"Student {arch}, T={t_text(T)}"


def column_label(reg: Choice) -> str:
    """Paper-layout table column of a teacher regularizer: its label (`CE`, `LS α =
    0.1`, `MaxSup λ = 0.1`)."""
    return reg.label


def delta_row_label(
    reg: Choice, objective: Choice, T: float, show_objective: bool, extra: str = ""
) -> str:
    """A row of the Δ tables: `LS α = 0.1, T = 1` (with `, DKD ...` before T when
    the table has several objectives)."""
    middle = f", {objective.label}" if show_objective else ""
    return f"{reg.label}{middle}, T = {t_text(T)}{extra}"


def panel_row(
    role: str, objective: Choice | None, T: float | None, show_objective: bool
) -> str:
    """A row of a projection figure: `teacher`, `T = 1` or `DKD ..., T = 1`."""
    if role == "teacher":
        return TEACHER_ROW
    text = f"T = {t_text(T)}"
    return f"{objective.label}, {text}" if show_objective and objective else text


def latex_label(*parts: str) -> str:
    """A LaTeX label from its parts: ``tab:fmnist-mlp512-mlp128-delta``."""
    return "tab:" + re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts))


def format_alpha(alpha: float) -> str:
    """A label-smoothing factor with at least one decimal, ``alpha = 0.0``,
    ``alpha = 0.05`` (the NMT table's columns, `lskd.nmt.table`)."""
    text = format(alpha, "g")
    if not re.search(r"[.e]", text):
        text += ".0"
    return f"alpha = {text}"
