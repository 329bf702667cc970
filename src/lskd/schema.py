"""The config schema, `config.schema.yaml` beside this module: the one place that
names every key of a workflow config with its type, range and default.

The workflow validates a whole config against it (`lskd.plan.config`); the commands
validate the one section they are given (`--hp`, `--augment`) against the same
definition (`validated`), so the Python side never restates a default: a dataclass
such as `Recipe` is built from the filled-in section.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lskd.errors import ConfigError

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


@functools.cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def schema() -> dict[str, Any]:
    """The parsed schema (a fresh copy: callers may not change the cached one)."""
    return copy.deepcopy(_schema())


def key_name(path: Any, where: str = "") -> str:
    """`where.a.b[0]` for an error's path inside the checked instance."""
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return (where + "".join(parts)).lstrip(".") or where or "<config>"


def first_error(instance: Any, subschema: dict[str, Any], where: str = "") -> None:
    """Raise the most relevant violation of `subschema` as one line naming the key."""
    validator = jsonschema.Draft202012Validator({**subschema, "$defs": _defs()})
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is None:
        return
    path, message = list(error.absolute_path), error.message
    unknown = re.search(r"\('([^']+)' was unexpected\)", message)
    missing = re.fullmatch(r"'([^']+)' is a required property", message)
    if error.validator in ("additionalProperties", "unevaluatedProperties") and unknown:
        path, message = [*path, unknown.group(1)], "unknown key"
    elif error.validator == "required" and missing:
        path, message = [*path, missing.group(1)], "required key missing"
    raise ConfigError(f"{key_name(path, where)}: {message}")


def _defs() -> dict[str, Any]:
    return _schema()["$defs"]


def fill_defaults(instance: Any, subschema: dict[str, Any]) -> None:
    """Insert the schema's defaults for missing properties, recursively (objects
    only), following local references (`$ref: "#/$defs/name"`)."""
    if "$ref" in subschema:  # the referencing schema's own properties extend the ref's
        base = _defs()[subschema["$ref"].rpartition("/")[2]]
        own = subschema.get("properties", {})
        subschema = {
            **base,
            **subschema,
            "properties": {**base.get("properties", {}), **own},
        }
    if not isinstance(instance, dict):
        return
    properties = subschema.get("properties", {})
    for name, sub in properties.items():
        if name not in instance and "default" in sub:
            instance[name] = json.loads(json.dumps(sub["default"]))
        if name in instance:
            fill_defaults(instance[name], sub)
    extra = subschema.get("additionalProperties")
    if isinstance(extra, dict):
        for name, value in instance.items():
            if name not in properties:
                fill_defaults(value, extra)


def validated(definition: str, values: dict[str, Any], where: str) -> dict[str, Any]:
    """`values` checked against the schema's `$defs/<definition>` (unknown keys are
    refused), returned as a new dict with every default filled in; errors name
    `where.<key>`."""
    subschema = {"$ref": f"#/$defs/{definition}", "unevaluatedProperties": False}
    first_error(values, subschema, where)
    filled = copy.deepcopy(values)
    fill_defaults(filled, subschema)
    return filled
