"""Checks of the workflow config that one key alone cannot say, run at parse time
(`lskd.plan.config.validate_config`, workflow/rules/common.smk) so that a mistake stops
Snakemake before any job with one line naming the key: the regularizers and objectives
and the path spelling of alphas and temperatures (`check_grid`), references between keys
(`check_references`, `check_init_teachers`), the default config file's shape
(`check_config_file`) and that a task's run directory never holds runs of another data
source (`check_data_sources`); when a real run starts, that its output directories are
writable (`check_writable`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from lskd.atomic import atomic_path
from lskd.data import ARRAY_DATASETS
from lskd.errors import ConfigError, LskdError, OutputError
from lskd.identity import Choice, objective_token
from lskd.plan.inits import InitSpec
from lskd.plan.paths import METRICS, MODEL, NMT_DIR, TASK_DIR, TEACHER
from lskd.spelling import PATH_DIGITS, path_token


def grid_methods(run: dict[str, Any]) -> tuple[list[Choice], list[Choice]]:
    """The teacher regularizers of a run section (`alphas` first: 0 is `ce`, alpha > 0
    `ls`; then `regularizers`) and its student objectives, each checked against its
    method's parameters; two entries with one path spelling are an error naming both."""
    regs = [Choice.from_alpha(a) for a in run["alphas"]]
    keys = [f"run.alphas[{i}]" for i in range(len(regs))]
    for i, entry in enumerate(run["regularizers"]):
        keys.append(f"run.regularizers[{i}]")
        regs.append(Choice.parse(entry, "regularizer", keys[-1]))
    objs = [
        Choice.parse(entry, "objective", f"run.objectives[{i}]")
        for i, entry in enumerate(run["objectives"])
    ]
    okeys = [f"run.objectives[{i}]" for i in range(len(objs))]
    spellings = ((regs, keys, lambda c: c.token), (objs, okeys, objective_token))
    for choices, where, spell in spellings:
        seen: dict[str, str] = {}
        for choice, key in zip(choices, where, strict=True):
            token = spell(choice)
            if token in seen:
                raise ConfigError(
                    f"{key}: {choice.label} is {seen[token]} again (path token {token})"
                )
            seen[token] = key
    if not regs:
        raise ConfigError("run.regularizers: no teacher (give run.alphas or this)")
    return regs, objs


def check_grid(run: dict[str, Any]) -> None:
    """No two of `run.alphas` (or of `run.temperatures`) share a path token, and each
    value is exactly its token (so a run's path names the value it was trained with);
    the regularizers and objectives parse (`grid_methods`)."""
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
    grid_methods(run)


def class_count(data: dict[str, Any]) -> int | None:
    """Classes of a task's dataset where the config says: Fashion-MNIST's and
    CIFAR-10's 10, CIFAR-100's 100, or `data.expect_classes` (None: not known before
    `prepare_data` reads the data)."""
    if data["dataset"] == "fashion_mnist":
        from lskd.data.fashion_mnist import CLASS_NAMES

        return len(CLASS_NAMES)
    fixed = {"cifar100": 100, "cifar10": 10}
    return fixed.get(data["dataset"], data["expect_classes"])


def check_references(config: dict[str, Any]) -> None:
    """Cross-key rules of the tasks that run: `teacher_weights` keys (normalised to
    path tokens, in every task) are alphas of `run.alphas`; `teacher_init: task:<name>`
    names another defined task with the same teacher archs, without a cycle;
    `weights:<source>` and `teacher_weights` sources exist in `weights` for every arch
    that needs them; `penultimate.classes` are below the dataset's class count where it
    is known; `augment` passes `ImageAugment` (e.g. `eval_resize >= image_size`)."""
    from lskd.data.augment import ImageAugment

    tasks, run = config["tasks"], config["run"]
    nmt = config.get("nmt", {})
    if nmt.get("pairs") and nmt.get("task") is None:
        raise ConfigError(
            "nmt.task: required with nmt.pairs: name the NMT study (e.g. libreoffice); "
            "its runs go to results/nmt_<task>_<pair>/"
        )
    regs, _ = grid_methods(run)
    alphas = [path_token(c.alpha) for c in regs if c.alpha is not None]
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
                    f"{task['data']['dataset']} has"
                    if task["data"]["dataset"] in ARRAY_DATASETS
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
                f"tasks.{name}.teacher_weights: key {key!r} is not the alpha of a "
                f"ce or ls teacher of the run ({', '.join(alphas) or 'none'})"
            )
        out[token], spelled[token] = source, key
    return out


def _check_teacher_init(tasks: dict[str, Any], name: str) -> None:
    """`teacher_init: task:<ref>`: ref is defined, not `name`, has `name`'s teacher
    archs, and its own chain of `task:` inits does not lead back to `name`."""
    first, key = tasks[name]["teacher_init"], f"tasks.{name}.teacher_init"
    spec, chain = InitSpec.parse(first), [name]
    while spec is not None and spec.kind == "task":
        ref = spec.name
        if ref not in tasks:
            raise ConfigError(
                f"{key}: {first}: task {ref!r} is not defined under tasks"
            )
        if ref in chain:
            path = " -> ".join([*chain, ref])
            raise ConfigError(
                f"{key}: {first}: teachers would start from themselves ({path})"
            )
        if len(chain) == 1:
            have = tasks[ref]["teacher_archs"]
            for arch in tasks[name]["teacher_archs"]:
                if arch not in have:
                    raise ConfigError(
                        f"{key}: {first}: task {ref!r} has no {arch} teacher "
                        f"(its teacher_archs: {', '.join(have)})"
                    )
        chain.append(ref)
        spec = InitSpec.parse(tasks[ref]["teacher_init"])


def _check_weights(config: dict[str, Any], name: str) -> None:
    """Every `resources/weights/<arch>-<source>.pt` that task `name` starts from or
    imports as a finished teacher has its `weights.<arch>-<source>` entry."""
    task, where = config["tasks"][name], f"tasks.{name}"
    needs = []
    for role in ("teacher", "student"):
        spec = InitSpec.parse(task[f"{role}_init"])
        if spec is not None and spec.kind == "weights":
            needs += [
                (f"{role}_init: {task[f'{role}_init']}", f"{arch}-{spec.name}")
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


def check_init_teachers(config: dict[str, Any]) -> None:
    """A `teacher_init: task:<ref>` whose task does not run (not in `run.tasks`) uses
    teachers trained earlier: each must exist at its run path (`lskd.plan.paths`,
    relative to the working directory) before any job starts."""
    run = config["run"]
    regularizers = grid_methods(run)[0]
    for name in run["tasks"]:
        task = config["tasks"][name]
        spec = InitSpec.parse(task["teacher_init"])
        if spec is None or spec.kind != "task" or spec.name in run["tasks"]:
            continue
        ref = spec.name
        for arch in task["teacher_archs"]:
            for reg in regularizers:
                alpha = None if reg.alpha is None else path_token(reg.alpha)
                if alpha in task["teacher_weights"]:
                    continue  # an imported teacher, not started from ref's
                for seed in run["seeds"]:
                    w = dict(task=ref, tarch=arch, reg=reg.token, tseed=seed)
                    path = Path(TEACHER.format(**w)) / MODEL
                    if not path.is_file():
                        raise ConfigError(
                            f"tasks.{name}.teacher_init: task:{ref}: task {ref!r} is "
                            "not in run.tasks, so its teachers must exist already, but "
                            f"{path} does not (add {ref!r} to run.tasks to train them)"
                        )


def exit_on_error(check: Callable[..., Any], *args: Any) -> Any:
    """`check(*args)`, for the workflow's parse-time and start checks: a `ConfigError`
    stops Snakemake with its one line `lskd: config error: ...`, another `LskdError`
    with `lskd: ...` (no traceback)."""
    try:
        return check(*args)
    except ConfigError as err:
        sys.exit(f"lskd: config error: {err}")
    except LskdError as err:
        sys.exit(f"lskd: {err}")


def check_writable(dirs: Sequence[str | Path]) -> None:
    """Each directory the workflow writes (`lskd.plan.paths.OUTPUT_DIRS`), or the
    nearest existing folder above it, must be a directory this user may write:
    checked when a real run starts, so that a read-only `results/` stops Snakemake
    with one line before any job rather than failing its first one."""
    for out in map(Path, dirs):
        probe = out
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            raise OutputError(f"{probe}: not a directory; the workflow writes {out}/")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise OutputError(
                f"{probe}: not writable by this user; the workflow writes {out}/ "
                "(make it writable, or run in another directory with --directory)"
            )


def check_config_file(path: str | Path) -> None:
    """A config file that exists must hold a mapping of keys (`run:`, `tasks:`, ...).

    For the Snakefile's own `configfile:` (config/config.yaml). Files given with
    `--configfile` are read by Snakemake's command line before any workflow code runs,
    which refuses a non-mapping without naming the file
    (docs/interruptions.md#config-mistakes)."""
    path = Path(path)
    if not path.is_file():
        return
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {_yaml_problem(err)}") from None
    if not isinstance(data, dict):
        kind = "nothing" if data is None else f"a {type(data).__name__}"
        raise ConfigError(
            f"{path}: a config file holds a mapping of keys (run:, tasks:, ...); "
            f"this one holds {kind}"
        )


def _yaml_problem(err: yaml.YAMLError) -> str:
    """`line 3, column 1: not valid YAML (found a tab ...)` of a YAML error."""
    mark = getattr(err, "problem_mark", None)
    where = "" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}: "
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if "\\t" in problem or "'\\t'" in problem:
        problem = "a tab (YAML indents with spaces)"
    return f"{where}not valid YAML: {problem}"


# What a task's run directory was trained on, written beside its runs once it holds one
# (`check_data_sources`): the data was read then.
DATA_SOURCE = "data_source.json"


def _real(root: str | None) -> str | None:
    """A data root as the data itself: its resolved real path (symlinks and `..`
    resolved), so another spelling of the same folder is the same data."""
    return None if root is None else os.path.realpath(os.path.expanduser(root))


def data_sources(config: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Run directory (an image task's `TASK_DIR`, an NMT pair's `NMT_DIR` of
    `lskd.plan.paths`) -> (its config key, the data its runs learn from): an
    image task's dataset kind and root, an NMT pair's corpus kind and its root or files,
    as the config spells them (`_resolved` compares them).
    Recipe and split keys are not part of it: editing them reruns the affected jobs in
    place."""
    out = {}
    for name in config["run"]["tasks"]:
        data = config["tasks"][name]["data"]
        source = {"dataset": data["dataset"], "root": data["root"]}
        out[TASK_DIR.format(task=name)] = (f"tasks.{name}", source)
    nmt = config.get("nmt", {})
    for pair in nmt.get("pairs") or []:
        corpus = nmt["corpus"]
        where = corpus["root"] if corpus["kind"] == "libreoffice" else None
        source = {"corpus": corpus["kind"], "root": where}
        if corpus["kind"] == "files":
            source["files"] = corpus["files"].get(pair)
        out[NMT_DIR.format(ntask=nmt["task"], pair=pair)] = ("nmt.task", source)
    return out


def _resolved(source: dict[str, Any]) -> dict[str, Any]:
    """A data source with its root as a real path: what two records compare."""
    return {**source, "root": _real(source.get("root"))}


def _holds_runs(directory: Path) -> bool:
    """Whether a run directory holds a finished run (a `metrics.json` or `model.pt`
    anywhere below it): its data was read."""
    return any(
        name in (METRICS, MODEL) for _, _, files in os.walk(directory) for name in files
    )


def check_data_sources(config: dict[str, Any], write: bool = False) -> None:
    """Two configs whose tasks share a name but not their data never share run paths:
    a run directory whose `data_source.json` names other data (another dataset kind,
    or a root that is another folder, whatever its spelling) stops the workflow before
    any job (rename the task, or move the directory away). With `write` (the
    workflow's `onsuccess` and `onerror`), a directory that holds a finished run and no
    record gets one: a run that failed on its data leaves none, so the corrected
    config is not refused."""
    for directory, (key, source) in data_sources(config).items():
        stamp = Path(directory) / DATA_SOURCE
        if stamp.is_file():
            try:
                recorded = json.loads(stamp.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ConfigError(f"{stamp}: not valid JSON") from None
            if not isinstance(recorded, dict):
                raise ConfigError(f"{stamp}: not a JSON object")
            if _resolved(recorded) != _resolved(source):
                raise ConfigError(
                    f"{key}: {directory} holds runs of {_describe(recorded)}, not of "
                    f"{_describe(source)} as this config says; give the task its own "
                    f"name or move {directory} away"
                )
        elif write and _holds_runs(Path(directory)):
            with atomic_path(stamp) as tmp:
                tmp.write_text(json.dumps(_resolved(source), sort_keys=True) + "\n")


def _describe(source: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in source.items() if v is not None)
