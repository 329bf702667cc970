"""The command-line arguments of each job, built from the validated config and the
job's wildcards: the `params` of the rules (docs/provenance.md).

They read the config and the wildcards only, never threads or resources: Snakemake
records params in .snakemake/metadata and reruns a job whose params changed, so
editing a recipe key, the augmentation or the NMT generation settings reruns exactly
the jobs it affects, and a host's thread or GPU count reruns nothing (those go in the
rules' shell strings). JSON values are written with sorted keys and shell-quoted.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lskd.data import ARRAY_DATASETS
from lskd.identity import DEFAULT_OBJECTIVE
from lskd.plan.grid import Grid
from lskd.plan.inits import init_path, pretrained_teacher
from lskd.plan.paths import NMT_PREPARED, TEACHERS_PANEL, split_panel


def json_flag(flag: str, value: Any) -> str:
    """``--<flag> '<value as JSON, sorted keys>'``."""
    return f"--{flag} {shlex.quote(json.dumps(value, sort_keys=True))}"


def run_args(grid: Grid, wildcards: Mapping[str, str], role: str) -> str:
    """The `lskd train|distill` flags of one teacher (`role` teacher), one student
    (`student`) or one fused sweep over every T (`students`): the run's identity,
    its recipe (the transfer set is in the path), augmentation, loader, determinism,
    compilation and the model it starts from.

    A `ce` or `ls` teacher is spelled `--alpha A` and a student of the default `kd`
    has no `--objective`, as before methods were choices: Snakemake reruns a job whose
    params changed, so those runs keep their params and nothing reruns."""
    kind = "student" if role == "students" else role  # recipe and init key
    w, task = wildcards, grid.tasks[wildcards["task"]]
    alpha = grid.alpha_token(w)
    if role == "teacher":
        reg = grid.regularizer(w).to_dict()
        how = json_flag("regularizer", reg) if alpha is None else f"--alpha {alpha}"
        run = f"--arch {w['tarch']} {how} --seed {w['tseed']}"
    else:
        T = " ".join(grid.temps) if role == "students" else w["T"]
        run = f"--arch {w['sarch']} --T {T} --seed {w['seed']} --transfer {w['xfer']}"
    recipe = {k: v for k, v in task[kind].items() if k != "transfer"}
    flags = f" --loader {task['loader']}"
    flags += "" if grid.run["deterministic"] else " --nondeterministic"
    flags += " --compile" if task["compile"] else ""
    init = init_path(grid.config, kind, w, alpha)
    flags += f" --init {init}" if init else ""
    if role == "teacher" and pretrained_teacher(task, w["tarch"], alpha):
        flags += " --pretrained"
    if role != "teacher" and grid.objective(w) != DEFAULT_OBJECTIVE:
        flags += " " + json_flag("objective", grid.objective(w).to_dict())
    return (
        f"--task {w['task']} {run} {json_flag('hp', recipe)} "
        f"{json_flag('augment', task['augment'])}{flags}"
    )


def threads(grid: Grid, wildcards: Mapping[str, str], kind: str) -> int:
    """Threads of a training job (`teacher` or `student` recipe): every data-parallel
    process gets the task's `cpus_per_process` cores."""
    task = grid.tasks[wildcards["task"]]
    return task[kind]["processes"] * task["cpus_per_process"]


def gpus(grid: Grid, wildcards: Mapping[str, str], kind: str) -> int:
    """GPUs of a training job: the recipe's data-parallel processes."""
    return grid.tasks[wildcards["task"]][kind]["processes"]


def prepare_args(grid: Grid, wildcards: Mapping[str, str]) -> str:
    """Flags of `lskd prepare`: the raw root is a param (checked when the job runs),
    so a dry run works without the data."""
    data = grid.tasks[wildcards["task"]]["data"]
    args = f"--dataset {data['dataset']} --root {shlex.quote(data['root'])} "
    args += f"--split-seed {data['split_seed']}"
    if data["dataset"] == "fashion_mnist":
        keys = ("val_size", "train_size", "test_size")
    elif data["dataset"] in ARRAY_DATASETS:  # CIFAR: also the raw counts to insist on
        keys = ("val_size", "train_size", "test_size", "expect_train", "expect_test")
    else:
        keys = ("val_per_class", "expect_classes", "expect_train", "expect_test")
        keys += ("check_limit",)
    for key in keys:
        if data[key] is not None:
            args += f" --{key.replace('_', '-')} {data[key]}"
    return args


def subset_args(grid: Grid, wildcards: Mapping[str, str]) -> str:
    """The projection's classes and images per class (`lskd subset`)."""
    pen = grid.tasks[wildcards["task"]]["penultimate"]
    classes = " ".join(str(c) for c in pen["classes"])
    return (
        f"--classes {classes} --train-per-class {pen['train_per_class']} "
        f"--test-per-class {pen['test_per_class']}"
    )


def analysis_args(grid: Grid, wildcards: Mapping[str, str]) -> str:
    """`lskd analyse` flags: the projection's images and the task's augmentation
    (image size and eval resize of image files)."""
    augment = grid.tasks[wildcards["task"]]["augment"]
    return f"{subset_args(grid, wildcards)} {json_flag('augment', augment)}"


def figure_args(grid: Grid, wildcards: Mapping[str, str]) -> str:
    """The title of a projection figure (`lskd figure`); its rows and columns come
    from the runs' own metrics.json. The seed is the grid's first."""
    w, seed = wildcards, grid.seeds[0]
    if w["panel"] == TEACHERS_PANEL:
        title = f"Penultimate layer of the {w['tarch']} teachers ({w['task']}, "
    else:
        sarch, xfer = split_panel(w["panel"])
        title = f"Penultimate layer of {sarch} students of {w['tarch']} ({w['task']}, "
        title += f"transfer set {xfer}, "
    title += f"seed {seed})"
    return f"--title {shlex.quote(title)}"


def weights_args(grid: Grid, wildcards: Mapping[str, str]) -> str:
    """Flags of `lskd import-weights` for resources/weights/<arch>-<source>.pt."""
    name = wildcards["name"]
    entry = grid.config["weights"].get(name)
    if entry is None:
        raise ValueError(f"weights.{name}: not in the config's weights")
    arch, source = name.split("-")
    args = f"{shlex.quote(entry['path'])} --arch {arch} --source {source}"
    return args + (f" --sha256 {entry['sha256']}" if entry["sha256"] else "")


def weights_stamp(grid: Grid, wildcards: Mapping[str, str]) -> str:
    """Size and modification time of the file to import ("missing" if absent: the
    job then stops with lskd's one line): a param, so Snakemake reruns the import when
    the file is replaced even without a configured sha256. The file is not an input,
    so a dry run works where it does not exist."""
    entry = grid.config["weights"].get(wildcards["name"])
    path = Path(entry["path"]) if entry else None
    if path is None or not path.is_file():
        return "missing"
    stat = path.stat()
    return f"{stat.st_size} bytes, mtime {stat.st_mtime_ns}"


def nmt_prepare_args(grid: Grid, wildcards: Mapping[str, str]) -> str:
    """`lskd nmt-prepare` flags: the corpus and the joint BPE vocabulary size."""
    corpus = json_flag("corpus", grid.nmt["corpus"])
    return f"{corpus} --vocab-size {grid.nmt['bpe_vocab']}"


def nmt_run_args(grid: Grid, wildcards: Mapping[str, str], role: str) -> str:
    """The `lskd nmt-train|nmt-distill` flags of one job: pair, alpha, seed and the
    recipe JSON (teachers ignore `kd`); students train every T of the grid."""
    recipe = grid.nmt[role]
    recipe = {k: v for k, v in recipe.items() if role == "student" or k != "kd"}
    w = wildcards
    args = f"--task {w['ntask']} --pair {w['pair']} "
    args += f"--alpha {w['alpha']} --seed {w['tseed']} {json_flag('hp', recipe)}"
    return args + (f" --T {' '.join(grid.temps)}" if role == "student" else "")


def nmt_score_args(grid: Grid, wildcards: Mapping[str, str]) -> str:
    """`lskd nmt-score` flags: the pair, its prepared data, the generation settings."""
    data = NMT_PREPARED.format(**dict(wildcards.items()))
    gen = json_flag("gen", grid.nmt["generate"])
    return f"--pair {wildcards['pair']} --data {data} {gen}"
