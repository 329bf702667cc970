"""Records of finished runs: a run's ``metrics.json`` read, checked key by key and
kept as a `Run`: its identity (`lskd.identity.RunId`: role, regularizer, objective, T,
seed, ...) and the numbers the tables use. Labels live in `lskd.analysis.labels`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lskd.errors import DataError
from lskd.identity import BASE_REGULARIZER, Choice, RunId

# The regularizer every other one is measured against (`ce`).
BASE = Choice.parse(BASE_REGULARIZER, "regularizer", "BASE_REGULARIZER")

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
    """The fields of one ``metrics.json`` that the tables use; its identity is
    ``id`` (`RunId.from_metrics`), whose fields are also readable on the run."""

    source: str
    id: RunId
    selection: str
    eval_split: str
    top1: float
    top5: float
    at_chance: bool = False

    role = property(lambda self: self.id.role)
    task = property(lambda self: self.id.task)
    arch = property(lambda self: self.id.arch)
    teacher_arch = property(lambda self: self.id.teacher_arch)
    seed = property(lambda self: self.id.seed)
    T = property(lambda self: self.id.T)
    teacher_seed = property(lambda self: self.id.teacher_seed)

    @property
    def regularizer(self) -> Choice:
        """The teacher's regularizer (a student's: its teacher's)."""
        return self.id.regularizer

    @property
    def objective(self) -> Choice | None:
        """A student's objective (None for a teacher)."""
        return self.id.objective

    @property
    def key(self) -> tuple:
        """The cell of the tables: ``RunId.method_key`` (role, regularizer,
        objective, T)."""
        return self.id.method_key


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
    """Validate one ``metrics.json`` dict and keep the fields the tables use."""
    num = (int, float)
    run_id = RunId.from_metrics(metrics, source)
    selection = get(metrics, "selection", str, source)
    if selection not in EPOCH_TEXT:
        raise DataError(f"{source}: key 'selection' must be one of {list(EPOCH_TEXT)}")
    return Run(
        source=source,
        id=run_id,
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
    `selection`; teachers may differ (e.g. an imported `ce` teacher): the caption
    names every selection. No run twice (its cell and seeds)."""
    students = [r for r in runs if r.role == "student"]
    checks = [
        ("task", runs),
        ("teacher_arch", runs),
        ("arch", students),
        ("selection", students),
        ("eval_split", runs),
    ]
    check_same(checks)
    check_unique(runs, lambda r: (*r.key, r.seed, r.teacher_seed))


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
