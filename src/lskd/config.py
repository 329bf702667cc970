"""Configuration: schema validation of the workflow config and the training recipe
dataclass.

The JSON schema (workflow/schemas/config.schema.yaml) is the single source of truth for
keys, types, ranges and defaults; `validate_config` applies it and turns the first
violation into one line that names the key, then checks what one key alone cannot say:
the spelling of alphas and temperatures in paths and the references between keys
(`lskd.config_checks`). `Recipe.from_dict` repeats the type check on the
Python side, so the CLI rejects a bad `--hp` string the same way.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lskd.config_checks import check_grid, check_references
from lskd.data.transfer import size_tokens
from lskd.errors import ConfigError


def _key(path: Any) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return "".join(parts).lstrip(".") or "<config>"


def _fill_defaults(instance: Any, schema: dict[str, Any], root: dict[str, Any]) -> None:
    """Insert schema defaults for missing properties, recursively (objects only).

    Local references (`$ref: "#/$defs/name"`) are followed.
    """
    if "$ref" in schema:  # the referencing schema's own properties extend the ref's
        base = root["$defs"][schema["$ref"].rpartition("/")[2]]
        own = schema.get("properties", {})
        schema = {**base, **schema, "properties": {**base.get("properties", {}), **own}}
    if not isinstance(instance, dict):
        return
    for name, sub in schema.get("properties", {}).items():
        if name not in instance and "default" in sub:
            instance[name] = json.loads(json.dumps(sub["default"]))
        if name in instance:
            _fill_defaults(instance[name], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for name, value in instance.items():
            if name not in schema.get("properties", {}):
                _fill_defaults(value, extra, root)


def validate_config(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Validate `config` in place against the schema, fill defaults, check cross-key
    rules.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(f"{_key(error.absolute_path)}: {error.message}")
    _fill_defaults(config, schema, schema)
    run = config["run"]
    for i, task in enumerate(run["tasks"]):
        if task not in config["tasks"]:
            raise ConfigError(
                f"run.tasks[{i}]: task {task!r} is not defined under tasks"
            )
        rows = config["tasks"][task]["penultimate"]["temperatures"]
        for j, T in enumerate(rows or []):
            if T not in run["temperatures"]:
                raise ConfigError(
                    f"tasks.{task}.penultimate.temperatures[{j}]: {T} is not "
                    "in run.temperatures"
                )
    for name, task in config["tasks"].items():
        transfer = task["student"]["transfer"]
        size_tokens(transfer, f"tasks.{name}.student.transfer")
    _check_nmt(config["nmt"])
    check_grid(run)
    check_references(config)
    return config


def _check_nmt(nmt: dict[str, Any]) -> None:
    """Cross-key rules of the `nmt` section (the schema checks each key alone)."""
    if not nmt["pairs"]:
        return
    for role in ("teacher", "student"):
        if role not in nmt:
            raise ConfigError(f"nmt.{role}: required when nmt.pairs is not empty")
    for i, pair in enumerate(nmt["student_pairs"] or []):
        if pair not in nmt["pairs"]:
            raise ConfigError(f"nmt.student_pairs[{i}]: {pair!r} is not in nmt.pairs")
    if nmt["corpus"]["kind"] == "files":
        for pair in nmt["pairs"]:
            if pair not in nmt["corpus"]["files"]:
                raise ConfigError(f"nmt.corpus.files: no entry for pair {pair!r}")


def check_data_roots(config: dict[str, Any]) -> None:
    """Every task that runs must point at an existing data directory."""
    for task in config["run"]["tasks"]:
        root = Path(config["tasks"][task]["data"]["root"])
        _check_directory(root, f"tasks.{task}.data.root")
    corpus = config.get("nmt", {}).get("corpus", {})
    if config.get("nmt", {}).get("pairs") and corpus["kind"] == "libreoffice":
        _check_directory(
            Path(corpus["root"]),
            "nmt.corpus.root",
            " (run scripts/setup.sh: it extracts Debian's libreoffice-l10n packages)",
        )


def _check_directory(root: Path, key: str, hint: str = "") -> None:
    if root.is_file():
        raise ConfigError(f"{key}: {root} is a file, not a directory")
    if not root.is_dir():
        raise ConfigError(f"{key}: directory {root} not found{hint}")


@dataclass(frozen=True)
class Recipe:
    """Optimisation recipe of one training job (teacher or student).

    The learning rate follows `schedule` per iteration after `warmup_epochs` of linear
    warm-up; `max_steps` caps the epochs by the run's steps per epoch (`capped`).
    `selection` says which epoch's weights and test accuracy are reported: `last`, or
    `best_val` (the epoch with the best top-1 on the held-out validation split, among
    the validated epochs: every `val_every`-th and the last).
    """

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    step_epochs: int = 30
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    selection: str = "last"
    eval_batch_size: int = 1000
    val_every: int = 1
    processes: int = 1
    max_steps: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "recipe") -> Recipe:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in d.items():
            if key not in fields:
                raise ConfigError(f"{where}.{key}: unknown key")
            want = {"int": int, "float": (int, float), "bool": bool, "str": str}[
                fields[key].type
            ]
            if (
                isinstance(value, bool)
                and fields[key].type != "bool"
                or not isinstance(value, want)
            ):
                raise ConfigError(
                    f"{where}.{key}: expected {fields[key].type}, got {value!r}"
                )
        missing = [
            n
            for n, f in fields.items()
            if n not in d and f.default is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{where}.{missing[0]}: required key missing")
        recipe = cls(**d)
        if recipe.schedule not in ("cosine", "step"):
            raise ConfigError(
                f"{where}.schedule: expected cosine or step, got {recipe.schedule!r}"
            )
        if recipe.selection not in ("last", "best_val"):
            raise ConfigError(
                f"{where}.selection: expected last or best_val, "
                f"got {recipe.selection!r}"
            )
        for name in (
            "epochs",
            "batch_size",
            "eval_batch_size",
            "step_epochs",
            "val_every",
            "processes",
        ):
            if getattr(recipe, name) < 1:
                raise ConfigError(f"{where}.{name}: must be >= 1")
        if recipe.max_steps < 0:
            raise ConfigError(f"{where}.max_steps: must be >= 0 (0: no cap)")
        return recipe

    def capped(self, steps_per_epoch: int) -> Recipe:
        """The recipe a run with `steps_per_epoch` trains: with `max_steps`, only
        min(epochs, ceil(max_steps / steps_per_epoch)) whole epochs (at least one)."""
        if not self.max_steps:
            return self
        epochs = max(1, -(-self.max_steps // steps_per_epoch))
        return dataclasses.replace(self, epochs=min(self.epochs, epochs))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
