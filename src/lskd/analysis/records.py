"""Records of finished runs: a run's ``metrics.json`` read, checked key by key and
kept as a `Run`, with the labels every table gives runs (rows, alpha columns).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lskd.errors import DataError

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


def get(metrics: dict[str, Any], key: str, kind: type | tuple, source: str) -> Any:
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
    role = get(metrics, "role", str, source)
    if role not in ("teacher", "student"):
        raise DataError(f"{source}: key 'role' must be 'teacher' or 'student'")
    selection = get(metrics, "selection", str, source)
    if selection not in EPOCH_TEXT:
        raise DataError(f"{source}: key 'selection' must be one of {list(EPOCH_TEXT)}")
    arch = get(metrics, "arch", str, source)
    alpha = float(get(metrics, "alpha", num, source))
    T, teacher_arch, teacher_seed = None, arch, None
    if role == "student":
        T = float(get(metrics, "T", num, source))
        teacher = get(metrics, "teacher", dict, source)
        teacher_arch = get(teacher, "arch", str, f"{source}: key 'teacher'")
        teacher_seed = teacher.get("seed")
        if teacher.get("alpha") is not None and teacher["alpha"] != alpha:
            raise DataError(f"{source}: key 'alpha' differs from 'teacher.alpha'")
    return Run(
        source=source,
        role=role,
        task=get(metrics, "task", str, source),
        arch=arch,
        teacher_arch=teacher_arch,
        alpha=alpha,
        T=T,
        seed=get(metrics, "seed", int, source),
        teacher_seed=teacher_seed,
        selection=selection,
        eval_split=get(metrics, "eval_split", str, source),
        top1=float(get(metrics, "top1", num, source)),
        top5=float(get(metrics, "top5", num, source)),
        at_chance=_at_chance(metrics, source),
    )


def _at_chance(metrics: dict[str, Any], source: str) -> bool:
    """``chance.at_chance`` of a metrics.json (False where a file predates it)."""
    if "chance" not in metrics:
        return False
    chance = get(metrics, "chance", dict, source)
    return get(chance, "at_chance", bool, f"{source}: key 'chance'")


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
