"""Configuration: schema validation of the workflow config and the training recipe
dataclass.

The JSON schema (workflow/schemas/config.schema.yaml) is the single source of truth for
keys, types, ranges and defaults; `validate_config` applies it and turns the first
violation into one line that names the key, then checks what one key alone cannot say:
the spelling of alphas and temperatures in paths and the references between keys
(`lskd.plan.checks`). `Recipe.from_dict` repeats the type check on the
Python side, so the CLI rejects a bad `--hp` string the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lskd.data.transfer import size_tokens
from lskd.errors import ConfigError
from lskd.plan.checks import check_grid, check_references


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
