"""Configuration: schema validation of the workflow config and the training recipe
dataclass.

The JSON schema (workflow/schemas/config.schema.yaml) is the single source of truth for
keys, types, ranges and defaults; `validate_config` applies it and turns the first
violation into one line that names the key, then checks what one key alone cannot say:
the spelling of alphas and temperatures in paths (`path_token`) and the references
between keys (`check_references`). `Recipe.from_dict` repeats the type check on the
Python side, so the CLI rejects a bad `--hp` string the same way.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lskd.data.transfer import size_tokens
from lskd.errors import ConfigError

# Significant digits of an alpha or a T in paths (`path_token`).
PATH_DIGITS = 6


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


def path_token(value: float) -> str:
    """How an alpha or a temperature is spelled in paths (`a<token>`, `T<token>`) and
    wildcards: a plain decimal rounded to `PATH_DIGITS` significant digits, without
    exponent or trailing zeros (0 -> `0`, 0.10 -> `0.1`, 64.0 -> `64`, 1e-05 ->
    `0.00001`, 1e8 -> `100000000`). The workflow names runs with it and
    `check_grid` makes sure that every configured value is exactly its token."""
    if value == 0:
        return "0"  # also -0.0
    return format(Decimal(format(float(value), f".{PATH_DIGITS}g")), "f")


def check_grid(run: dict[str, Any]) -> None:
    """No two of `run.alphas` (or of `run.temperatures`) share a path token, and each
    value is exactly its token (so a run's path names the value it was trained with)."""
    for key, prefix in (("alphas", "a"), ("temperatures", "T")):
        seen: dict[str, float] = {}
        for i, value in enumerate(run[key]):
            token = path_token(value)
            if token in seen:
                raise ConfigError(
                    f"run.{key}[{i}]: {value!r} and {seen[token]!r} both map to path "
                    f"token {prefix}{token}"
                )
            seen[token] = value
        for i, value in enumerate(run[key]):
            token = path_token(value)
            if float(token) != value:
                raise ConfigError(
                    f"run.{key}[{i}]: {value!r} has more than {PATH_DIGITS} "
                    f"significant digits; paths spell it {prefix}{token}, so write "
                    f"{token}"
                )


def class_count(data: dict[str, Any]) -> int | None:
    """Classes of a task's dataset where the config says: Fashion-MNIST's 10, or
    `data.expect_classes` (None: not known before `prepare_data` reads the data)."""
    if data["dataset"] == "fashion_mnist":
        from lskd.data.fashion_mnist import CLASS_NAMES

        return len(CLASS_NAMES)
    return data["expect_classes"]


def check_references(config: dict[str, Any]) -> None:
    """Cross-key rules of the tasks that run: `teacher_weights` keys (normalised to
    path tokens, in every task) are alphas of `run.alphas`; `teacher_init: task:<name>`
    names another defined task with the same teacher archs, without a cycle;
    `weights:<source>` and `teacher_weights` sources exist in `weights` for every arch
    that needs them; `penultimate.classes` are below the dataset's class count where it
    is known; `augment` passes `ImageAugment` (e.g. `eval_resize >= image_size`)."""
    from lskd.data.augment import ImageAugment

    tasks, run = config["tasks"], config["run"]
    alphas = [path_token(a) for a in run["alphas"]]
    for name, task in tasks.items():
        known = alphas if name in run["tasks"] else None
        task["teacher_weights"] = _teacher_weights(name, task["teacher_weights"], known)
    for name in run["tasks"]:
        task = tasks[name]
        _check_teacher_init(tasks, name)
        _check_weights(config, name)
        pen, count = task["penultimate"], class_count(task["data"])
        for j, c in enumerate(pen["classes"]):
            if pen["enabled"] and count is not None and c >= count:
                where = (
                    "fashion_mnist has"
                    if task["data"]["dataset"] == "fashion_mnist"
                    else "data.expect_classes says"
                )
                raise ConfigError(
                    f"tasks.{name}.penultimate.classes[{j}]: class {c} is outside "
                    f"0..{count - 1} ({where} {count} classes)"
                )
        try:
            ImageAugment.from_dict(task["augment"])
        except ConfigError as err:
            raise ConfigError(f"tasks.{name}.{err}") from None


def _teacher_weights(
    name: str, weights: dict[str, str], alphas: list[str] | None
) -> dict[str, str]:
    """`teacher_weights` with its alpha keys spelled as path tokens (`0.0` -> `0`);
    each must be one of `alphas` (the tokens of run.alphas) unless that is None."""
    out: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for key, source in weights.items():
        token = path_token(float(key))
        if token in out:
            raise ConfigError(
                f"tasks.{name}.teacher_weights: keys {spelled[token]!r} and {key!r} "
                f"are the same alpha {token}"
            )
        if alphas is not None and token not in alphas:
            raise ConfigError(
                f"tasks.{name}.teacher_weights: key {key!r} is not an alpha of "
                f"run.alphas ({', '.join(alphas)})"
            )
        out[token], spelled[token] = source, key
    return out


def _check_teacher_init(tasks: dict[str, Any], name: str) -> None:
    """`teacher_init: task:<ref>`: ref is defined, not `name`, has `name`'s teacher
    archs, and its own chain of `task:` inits does not lead back to `name`."""
    spec, key = tasks[name]["teacher_init"], f"tasks.{name}.teacher_init"
    chain = [name]
    while spec is not None and spec.startswith("task:"):
        ref = spec.partition(":")[2]
        if ref not in tasks:
            raise ConfigError(f"{key}: {spec}: task {ref!r} is not defined under tasks")
        if ref in chain:
            path = " -> ".join([*chain, ref])
            raise ConfigError(
                f"{key}: {spec}: teachers would start from themselves ({path})"
            )
        if len(chain) == 1:
            have = tasks[ref]["teacher_archs"]
            for arch in tasks[name]["teacher_archs"]:
                if arch not in have:
                    raise ConfigError(
                        f"{key}: {spec}: task {ref!r} has no {arch} teacher "
                        f"(its teacher_archs: {', '.join(have)})"
                    )
        chain.append(ref)
        spec = tasks[ref]["teacher_init"]


def _check_weights(config: dict[str, Any], name: str) -> None:
    """Every `resources/weights/<arch>-<source>.pt` that task `name` starts from or
    imports as a finished teacher has its `weights.<arch>-<source>` entry."""
    task, where = config["tasks"][name], f"tasks.{name}"
    needs = []
    for role in ("teacher", "student"):
        spec = task[f"{role}_init"]
        if spec is not None and spec.startswith("weights:"):
            source = spec.partition(":")[2]
            needs += [
                (f"{role}_init: {spec}", f"{arch}-{source}")
                for arch in task[f"{role}_archs"]
            ]
    for alpha, source in task["teacher_weights"].items():
        needs += [
            (f"teacher_weights: alpha {alpha} -> {source}", f"{arch}-{source}")
            for arch in task["teacher_archs"]
        ]
    for what, entry in needs:
        if entry not in config["weights"]:
            raise ConfigError(
                f"{where}.{what} needs weights.{entry}, which is not in the "
                "config's weights"
            )


def check_init_teachers(config: dict[str, Any], teacher: str) -> None:
    """A `teacher_init: task:<ref>` whose task does not run (not in `run.tasks`) uses
    teachers trained earlier: each must exist at `teacher` (the run-path pattern,
    relative to the working directory) before any job starts."""
    run = config["run"]
    for name in run["tasks"]:
        task = config["tasks"][name]
        spec = task["teacher_init"]
        if spec is None or not spec.startswith("task:"):
            continue
        ref = spec.partition(":")[2]
        if ref in run["tasks"]:
            continue
        for arch in task["teacher_archs"]:
            for alpha in map(path_token, run["alphas"]):
                if alpha in task["teacher_weights"]:
                    continue  # an imported teacher, not started from ref's
                for seed in run["seeds"]:
                    w = dict(task=ref, tarch=arch, alpha=alpha, tseed=seed)
                    path = Path(teacher.format(**w)) / "model.pt"
                    if not path.is_file():
                        raise ConfigError(
                            f"tasks.{name}.teacher_init: {spec}: task {ref!r} is not "
                            f"in run.tasks, so its teachers must exist already, but "
                            f"{path} does not (add {ref!r} to run.tasks to train them)"
                        )


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


def exit_on_config_error(check: Callable[..., Any], *args: Any) -> Any:
    """`check(*args)`, for the workflow's parse-time checks: a `ConfigError` stops
    Snakemake with its one line `lskd: config error: ...` (no traceback)."""
    try:
        return check(*args)
    except ConfigError as err:
        sys.exit(f"lskd: config error: {err}")


def check_config_file(path: str | Path) -> None:
    """A config file that exists must hold a mapping of keys (`run:`, `tasks:`, ...).

    For the Snakefile's own `configfile:` (config/config.yaml). Files given with
    `--configfile` are read by Snakemake's command line before any workflow code runs,
    which refuses a non-mapping without naming the file (README, "bad inputs")."""
    path = Path(path)
    if not path.is_file():
        return
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return  # not YAML or JSON: Snakemake's own message says so
    if not isinstance(data, dict):
        kind = "nothing" if data is None else f"a {type(data).__name__}"
        raise ConfigError(
            f"{path}: a config file holds a mapping of keys (run:, tasks:, ...); "
            f"this one holds {kind}"
        )


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
    warm-up. `selection` says which epoch's weights and test accuracy are reported:
    `last`, or `best_val` (the epoch with the best top-1 on the held-out validation
    split, among the validated epochs: every `val_every`-th and the last).
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
        return recipe

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
