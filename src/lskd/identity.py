"""What a run is and how it is spelled: the typed run identity shared by the plan (which
spells it into paths), the CLI (which receives it), a training job (which records it in
metrics.json) and the analysis (which groups runs by it), and the names of a run's
files.

A teacher is (task, arch, regularizer, seed); a student is its teacher plus (arch,
objective, T, transfer set, seed). A regularizer or an objective is a `Choice`: a
registered method (`lskd.objectives`) with every parameter's value, checked against the
method's declared parameters. Paths spell a choice with its method's `token`; the
analysis never reads a path back: each run's identity is in its metrics.json
(`RunId.from_metrics`). metrics.json written before methods were choices hold only the
teacher's `alpha`: they read as `ce` (alpha 0) or `ls` and the objective `kd`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lskd.errors import ConfigError, DataError
from lskd.objectives import OBJECTIVES, REGULARIZERS
from lskd.objectives.method import Method, Registry

# Files of one run directory: training writes MODEL and METRICS (and, while it runs, the
# rolling checkpoint), `lskd analyse` the analysis files.
MODEL, METRICS = "model.pt", "metrics.json"
ROLLING, ROLLING_SWEEP = "last.pt", "last_sweep.pt"  # a fused sweep's, in its first run
SEGMENTS = "segments.json"  # the SLURM segment ledger (lskd.train.segments)
PENULTIMATE, PROJECTION, DIFFUSION = (
    "penultimate.npz",
    "projection.npz",
    "diffusion.json",
)
ANALYSIS_FILES = (PENULTIMATE, PROJECTION, DIFFUSION)

BASE_REGULARIZER = "ce"  # what a regularizer's benefit is measured against


@dataclass(frozen=True)
class Choice:
    """A registered method with a value for each of its parameters (in declared
    order). Equal choices are the same method run the same way."""

    role: str  # "regularizer" or "objective"
    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, entry: Any, role: str, where: str) -> Choice:
        """A config entry or CLI value: a method name (`ce`) or a mapping with `name`
        and parameters (`{name: ls, alpha: 0.1}`); defaults filled in. Errors name
        `where` and the bad key."""
        registry = _registry(role)
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ConfigError(
                f"{where}: expected a {role} name or a mapping with 'name', got "
                f"{entry!r}"
            )
        name = entry["name"]
        if name not in registry:
            raise ConfigError(
                f"{where}.name: unknown {role} {name!r} (registered: "
                f"{', '.join(registry)})"
            )
        method = registry[name]
        declared = {p.name: p for p in method.params}
        for key in entry:
            if key != "name" and key not in declared:
                known = ", ".join(declared) or "none"
                raise ConfigError(
                    f"{where}.{key}: unknown parameter of {role} {name} (its "
                    f"parameters: {known})"
                )
        values = tuple(
            (p.name, p.check(entry.get(p.name, p.default), f"{where}.{p.name}"))
            for p in method.params
        )
        choice = cls(role, name, values)
        choice.method.check(choice.values, where)
        return choice

    @classmethod
    def from_alpha(cls, alpha: float) -> Choice:
        """The teacher regularizer of smoothing `alpha`: `ce` for 0, else `ls`."""
        if alpha == 0:
            return cls.parse("ce", "regularizer", "alpha")
        return cls.parse({"name": "ls", "alpha": alpha}, "regularizer", "alpha")

    @property
    def method(self) -> type[Method]:
        return _registry(self.role)[self.name]

    @property
    def values(self) -> dict[str, Any]:
        return dict(self.params)

    def build(self) -> Method:
        """An instance of the method with these values (its `loss` trains)."""
        return self.method(**self.values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form in metrics.json and on the command line."""
        return {"name": self.name, **self.values}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def token(self) -> str:
        """The path spelling (no underscore): `a0.1` for `ls` alpha 0.1 (the spelling
        of runs made before regularizers were choices), `maxsup-l0.1`; an objective's
        is empty for the default `kd`."""
        return self.method.token(self.values)

    @property
    def label(self) -> str:
        """How tables and captions name it: `LS α = 0.1`, `MaxSup λ = 0.1`."""
        return self.method.label(self.values)

    @property
    def alpha(self) -> float | None:
        """The label-smoothing factor of a `ce` (0) or `ls` teacher, None otherwise
        (NMT teachers and metrics.json's `alpha` key need it)."""
        if self.name == "ce":
            return 0.0
        return self.values["alpha"] if self.name == "ls" else None

    @property
    def is_base(self) -> bool:
        return self.role == "regularizer" and self.name == BASE_REGULARIZER


def _registry(role: str) -> Registry:
    return {"regularizer": REGULARIZERS, "objective": OBJECTIVES}[role]


DEFAULT_OBJECTIVE = Choice.parse("kd", "objective", "objective")


def objective_token(objective: Choice) -> str:
    """The part of a student's path before its temperature: `T` for the default `kd`
    (`..._T3_s0`), `<token>-T` otherwise (`..._dkd-a1-b8-w5-T3_s0`)."""
    token = objective.token
    return f"{token}-T" if token else "T"


@dataclass(frozen=True)
class RunId:
    """One run's identity. Students carry their teacher's regularizer, arch and seed;
    teachers have no objective, T, transfer set or teacher seed."""

    role: str
    task: str
    arch: str
    regularizer: Choice
    seed: int
    teacher_arch: str
    objective: Choice | None = None
    T: float | None = None
    transfer: str | None = None
    teacher_seed: int | None = None

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any], source: str) -> RunId:
        """The identity a metrics.json records; errors name the file and key."""

        def get(m: Mapping[str, Any], key: str, kind: Any, where: str) -> Any:
            value = m.get(key)
            if (isinstance(value, bool) and kind is not bool) or not isinstance(
                value, kind
            ):
                raise DataError(f"{where}: key '{key}' has bad value {value!r}")
            return value

        role = get(metrics, "role", str, source)
        if role not in ("teacher", "student"):
            raise DataError(f"{source}: key 'role' must be 'teacher' or 'student'")
        teacher = metrics if role == "teacher" else metrics.get("teacher")
        if not isinstance(teacher, Mapping):
            raise DataError(f"{source}: key 'teacher' has bad value {teacher!r}")
        where = source if role == "teacher" else f"{source}: key 'teacher'"
        regularizer = _recorded(metrics, teacher, source)
        arch = get(metrics, "arch", str, source)
        common = dict(
            role=role,
            task=get(metrics, "task", str, source),
            arch=arch,
            regularizer=regularizer,
            seed=get(metrics, "seed", int, source),
        )
        if role == "teacher":
            return cls(**common, teacher_arch=arch)
        record = metrics.get("objective")
        try:
            objective = (
                DEFAULT_OBJECTIVE
                if record is None
                else Choice.parse(record, "objective", "objective")
            )
        except ConfigError as err:
            raise DataError(f"{source}: key {err}") from None
        T = get(metrics, "T", int | float, source)
        transfer = metrics.get("transfer")
        size = transfer.get("size") if isinstance(transfer, Mapping) else None
        tseed = teacher.get("seed")
        return cls(
            **common,
            teacher_arch=get(teacher, "arch", str, where),
            objective=objective,
            T=float(T),
            transfer=size if isinstance(size, str) else None,
            teacher_seed=tseed if isinstance(tseed, int) else None,
        )

    def to_metrics(self) -> dict[str, Any]:
        """The identity keys of metrics.json (and of model.pt's metadata): `alpha` is
        kept for `ce`/`ls` teachers (None otherwise), as files before choices had it."""
        return {
            "role": self.role,
            "task": self.task,
            "arch": self.arch,
            "alpha": self.regularizer.alpha,
            "regularizer": self.regularizer.to_dict(),
            "objective": None if self.objective is None else self.objective.to_dict(),
            "T": self.T,
            "seed": self.seed,
        }

    @property
    def method_key(self) -> tuple[str, Choice, Choice | None, float | None]:
        """(role, regularizer, objective, T): a cell of the tables, over seeds."""
        return (self.role, self.regularizer, self.objective, self.T)


def _recorded(
    metrics: Mapping[str, Any], teacher: Mapping[str, Any], source: str
) -> Choice:
    """The teacher's regularizer: its `regularizer` record, else (files written before
    choices) its `alpha`; a student's own `alpha` must agree with its teacher's."""
    record = metrics.get("regularizer", teacher.get("regularizer"))
    if record is not None:
        try:
            return Choice.parse(record, "regularizer", "regularizer")
        except ConfigError as err:
            raise DataError(f"{source}: key {err}") from None
    alpha = metrics.get("alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float):
        raise DataError(f"{source}: key 'alpha' has bad value {alpha!r}")
    if teacher.get("alpha") is not None and teacher["alpha"] != alpha:
        raise DataError(f"{source}: key 'alpha' differs from 'teacher.alpha'")
    try:
        return Choice.from_alpha(float(alpha))
    except ConfigError as err:
        raise DataError(f"{source}: key {err}") from None
