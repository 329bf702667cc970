# Config validation, wildcard constraints and every helper the rules use (no rules here).
import json
import shlex
import sys
from pathlib import Path

from lskd.config import check_data_roots, validate_config
from lskd.errors import ConfigError

try:
    validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
except ConfigError as err:
    sys.exit(f"lskd: config error: {err}")


onstart:
    # Before any job runs, but not in a dry run (which must work without the data).
    try:
        check_data_roots(config)
    except ConfigError as err:
        sys.exit(f"lskd: config error: {err}")


RUN = config["run"]
TASKS = {name: config["tasks"][name] for name in RUN["tasks"]}
ALPHAS = [format(a, "g") for a in RUN["alphas"]]
TEMPS = [format(T, "g") for T in RUN["temperatures"]]
SEEDS = [str(s) for s in RUN["seeds"]]
ARCHS = sorted(
    {a for t in TASKS.values() for a in t["teacher_archs"] + t["student_archs"]}
)


# For rules whose paths spell wildcards directly; the run-id pathvars carry their own
# constraints (see the Snakefile).
wildcard_constraints:
    task="|".join(TASKS),
    tarch="|".join(ARCHS),
    sarch="|".join(ARCHS),
    panel="|".join(["teachers", *ARCHS]),
    run=r"[a-z0-9]+/teacher_[^/]+(/student_[^/]+)?",


TEACHER = "results/{task}/teacher_{tarch}_a{alpha}_s{tseed}"
STUDENT = f"{TEACHER}/student_{{sarch}}_T{{T}}_s{{seed}}"


def task_of(run):
    """Task of a run id (`fmnist/teacher_.../student_...`): its first path component."""
    return Path(run).parts[0]


def dataset(wildcards):
    """Prepared dataset of the task named by the `task` or the `run` wildcard."""
    task = wildcards.get("task") or task_of(wildcards.run)
    return f"resources/data/{task}/dataset.npz"


def run_args(role):
    """Named param function: the `lskd train|distill` flags of one run, shell-quoted.

    The recipe and augmentation JSON are part of the params, so editing them reruns
    exactly the affected jobs.
    """

    def params(wildcards):
        w, task = wildcards, config["tasks"][wildcards.task]
        if role == "teacher":
            run = f"--arch {w.tarch} --alpha {w.alpha} --seed {w.tseed}"
        else:
            run = f"--arch {w.sarch} --T {w.T} --seed {w.seed}"
        hp = json.dumps(task[role], sort_keys=True)
        augment = json.dumps(task["augment"], sort_keys=True)
        flags = "" if RUN["deterministic"] else " --nondeterministic"
        return (
            f"--task {w.task} {run} --hp {shlex.quote(hp)} "
            f"--augment {shlex.quote(augment)}{flags}"
        )

    return params


def run_report(path, role):
    """A run's metrics.json as a report item, labelled by alpha (and T for students)."""
    return report(
        path,
        caption="../report/metrics.rst",
        category="Runs",
        subcategory=f"{role.title()}s",
        labels=run_labels(role),
    )


def figure_report(path):
    """A figure PNG as a report item; panel is `teachers` or the students' arch."""
    return report(
        path,
        caption="../report/figure.rst",
        category="Figures",
        subcategory="{task}",
        labels={"teacher": "{tarch}", "panel": "{panel}"},
    )


def table_report(path):
    return report(
        path,
        caption="../report/table.rst",
        category="Tables",
        subcategory="{task}",
        labels={"task": "{task}", "pair": "{tarch} → {sarch}"},
    )


def gpu_resources(kind):
    """Per-job needs, for any executor; profiles override them per rule (set-resources)."""
    return {"gpu": 0, "mem_mb": 4000, "runtime": 240}


def row_temps(task):
    return [
        format(T, "g")
        for T in TASKS[task]["penultimate"]["temperatures"] or RUN["temperatures"]
    ]


def table_inputs(wildcards):
    """metrics.json of every teacher and student one table needs (all alphas and seeds)."""
    w = dict(task=wildcards.task, tarch=wildcards.tarch, sarch=wildcards.sarch)
    teachers = [
        f"{TEACHER.format(**w, alpha=a, tseed=s)}/metrics.json"
        for a in ALPHAS
        for s in SEEDS
    ]
    students = [
        f"{STUDENT.format(**w, alpha=a, tseed=s, T=T, seed=s)}/metrics.json"
        for T in TEMPS
        for a in ALPHAS
        for s in SEEDS
    ]
    return teachers + students


def projections(wildcards):
    """Row-major projection files of one figure: rows = T (one row for the teachers'
    panel), columns = alpha."""
    w = dict(task=wildcards.task, tarch=wildcards.tarch, tseed=SEEDS[0], seed=SEEDS[0])
    if wildcards.panel == "teachers":
        return [f"{TEACHER.format(**w, alpha=a)}/projection.npz" for a in ALPHAS]
    return [
        f"{STUDENT.format(**w, sarch=wildcards.panel, alpha=a, T=T)}/projection.npz"
        for T in row_temps(wildcards.task)
        for a in ALPHAS
    ]


def figure_rows(wildcards):
    return " ".join(f"'T = {T}'" for T in row_temps(wildcards.task))


def pairs():
    for task, t in TASKS.items():
        for tarch in t["teacher_archs"]:
            for sarch in t["student_archs"]:
                yield task, tarch, sarch


def final_targets():
    tables = [
        f"results/tables/{t}_{a}-{s}.{ext}"
        for t, a, s in pairs()
        for ext in ("csv", "md", "tex", "html")
    ]
    panels = {(t, a, p) for t, a, s in pairs() for p in (s, "teachers")}
    figures = [f"results/figures/penultimate_{t}_{a}-{p}.png" for t, a, p in panels]
    return tables + sorted(figures)


def prepare_args(wildcards):
    data = config["tasks"][wildcards.task]["data"]
    args = (
        f"--dataset {data['dataset']} --root {shlex.quote(data['root'])} "
        f"--val-size {data['val_size']} --split-seed {data['split_seed']}"
    )
    for key in ("train_size", "test_size"):
        if data[key] is not None:
            args += f" --{key.replace('_', '-')} {data[key]}"
    return args


def extract_args(wildcards):
    pen = TASKS[task_of(wildcards.run)]["penultimate"]
    classes = " ".join(str(c) for c in pen["classes"])
    return f"--classes {classes} --train-per-class {pen['train_per_class']} --test-per-class {pen['test_per_class']}"


def run_labels(role):
    """Report labels of a run: alpha and T (the report shows two-valued labels as toggles)."""
    if role == "teacher":
        return {
            "task": "{task}",
            "arch": "{tarch}",
            "alpha": "{alpha}",
            "seed": "{tseed}",
        }
    return {
        "task": "{task}",
        "arch": "{tarch} → {sarch}",
        "alpha": "{alpha}",
        "T": "{T}",
        "seed": "{seed}",
    }


def figure_args(wildcards):
    """Rows, alphas and title of a projection figure."""
    w, alphas = wildcards, " ".join(ALPHAS)
    if w.panel == "teachers":
        title = f"Penultimate layer of the {w.tarch} teachers ({w.task})"
        return f"--rows teacher --alphas {alphas} --title {title!r}"
    title = f"Penultimate layer of {w.panel} students of {w.tarch} ({w.task})"
    return f"--rows {figure_rows(wildcards)} --alphas {alphas} --title {title!r}"
