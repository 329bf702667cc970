"""Where a run starts: the task's `teacher_init` / `student_init` spec and its
`teacher_weights`, resolved to the model file the job reads
(docs/recipes.md#cub-teachers).

A spec is null (random init), ``task:<name>`` (teachers only: the teacher of task
<name> with the same arch, regularizer and seed) or ``weights:<source>`` (the imported
model file ``resources/weights/<arch>-<source>.pt``, see the config's `weights`). A
`teacher_weights` entry for the alpha of a `ce` or `ls` teacher replaces training
altogether: the job evaluates that imported teacher.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lskd.plan.paths import MODEL, TEACHER, WEIGHTS

KINDS = ("task", "weights")


@dataclass(frozen=True)
class InitSpec:
    """A parsed `*_init` spec: `kind` `task` or `weights`, and the task or source."""

    kind: str
    name: str

    @classmethod
    def parse(cls, spec: str | None) -> InitSpec | None:
        """``task:<name>`` or ``weights:<source>`` (the schema's pattern); None for
        null."""
        if spec is None:
            return None
        kind, _, name = spec.partition(":")
        if kind not in KINDS or not name:
            raise ValueError(f"{spec!r}: not task:<name> or weights:<source>")
        return cls(kind, name)


def weights_file(arch: str, source: str) -> str:
    """The imported model file of `arch` from `source` (rule `import_weights`)."""
    return WEIGHTS.format(name=f"{arch}-{source}")


def pretrained_teacher(
    task: Mapping[str, Any], tarch: str, alpha: str | None
) -> str | None:
    """The imported finished teacher of `task` (its config) for the alpha token
    `alpha` of a `ce`/`ls` teacher (`teacher_weights`), or None when that teacher is
    trained (always for other regularizers: `alpha` None)."""
    source = task["teacher_weights"].get(alpha) if alpha is not None else None
    return None if source is None else weights_file(tarch, source)


def init_path(
    config: Mapping[str, Any],
    role: str,
    wildcards: Mapping[str, str],
    alpha: str | None = None,
) -> str | None:
    """The model file a run of `role` (`teacher` or `student`) starts from, or None:
    the imported teacher (`teacher_weights` of the teacher's alpha token `alpha`, for
    `ce`/`ls` teachers), else the `<role>_init` spec resolved for the run's wildcards
    (task, tarch, sarch, reg, tseed)."""
    w = dict(wildcards.items())
    task = config["tasks"][w["task"]]
    arch = w["tarch"] if role == "teacher" else w["sarch"]
    if role == "teacher":
        imported = pretrained_teacher(task, arch, alpha)
        if imported is not None:
            return imported
    spec = InitSpec.parse(task[f"{role}_init"])
    if spec is None:
        return None
    if spec.kind == "weights":
        return weights_file(arch, spec.name)
    return f"{TEACHER.format(**(w | {'task': spec.name, 'tarch': arch}))}/{MODEL}"
