"""Validation of a workflow config, before any job is planned.

The schema (`lskd/config.schema.yaml`, read by `lskd.schema`) names every key with its
type, range and default; `validate_config` applies it, turns the first violation into
one line that names the key and fills the defaults in, then checks what one key alone
cannot say: the spelling of alphas and temperatures in paths and the references between
keys (`lskd.plan.checks`). The commands check their `--hp` and `--augment` sections
against the same definitions, so the CLI rejects a bad string the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lskd.data.transfer import size_tokens
from lskd.errors import ConfigError
from lskd.plan.checks import check_grid, check_references
from lskd.schema import fill_defaults, first_error, schema


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate `config` in place against the schema, fill defaults, check cross-key
    rules.
    """
    whole = schema()
    first_error(config, whole)
    fill_defaults(config, whole)
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
