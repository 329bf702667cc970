# Config validation, wildcard constraints and every helper the rules use (no rules here).
import json
import shlex
from pathlib import Path

from lskd.config import check_data_roots, validate_config
from lskd.config_checks import check_init_teachers, exit_on_config_error, path_token

SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"
exit_on_config_error(validate_config, config, SCHEMA)


onstart:
    # Before any job runs, but not in a dry run (which must work without the data).
    exit_on_config_error(check_data_roots, config)


RUN = config["run"]
TASKS = {name: config["tasks"][name] for name in RUN["tasks"]}
ALPHAS = [path_token(a) for a in RUN["alphas"]]  # the spelling in paths (validated)
TEMPS = [path_token(T) for T in RUN["temperatures"]]
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
    fmt="npz|json",
    name=r"[a-z0-9_]+-[a-z0-9_]+",
    seed=r"\d+",


TEACHER = "results/{task}/teacher_{tarch}_a{alpha}_s{tseed}"
STUDENT = f"{TEACHER}/student_{{sarch}}_T{{T}}_s{{seed}}"
exit_on_config_error(check_init_teachers, config, TEACHER)  # of tasks not run


def task_of(run):
    """Task of a run id (`fmnist/teacher_.../student_...`): its first path component."""
    return Path(run).parts[0]


def data_format(task):
    """In-memory arrays (.npz) for fashion_mnist, a manifest of image files otherwise."""
    return (
        "npz" if config["tasks"][task]["data"]["dataset"] == "fashion_mnist" else "json"
    )


def dataset(wildcards):
    """Prepared dataset of the task named by the `task` or the `run` wildcard."""
    task = wildcards.get("task") or task_of(wildcards.run)
    return f"resources/data/{task}/dataset.{data_format(task)}"


def penultimate_data(wildcards):
    """Images the projection uses: the dataset itself, or for image folders the
    visualisation subset of PAPER.md §5.2 (prepare_subset)."""
    task = task_of(wildcards.run)
    if data_format(task) == "npz":
        return dataset(wildcards)
    return f"resources/data/{task}/penultimate.json"


def pretrained_teacher(wildcards):
    """The imported finished teacher for this alpha (`teacher_weights`), or None."""
    source = config["tasks"][wildcards.task]["teacher_weights"].get(wildcards.alpha)
    return (
        None if source is None else f"resources/weights/{wildcards.tarch}-{source}.pt"
    )


def init_path(role, wildcards):
    """The model file a run starts from (teacher_init / student_init), or None."""
    if role == "teacher" and pretrained_teacher(wildcards):
        return pretrained_teacher(wildcards)
    spec = config["tasks"][wildcards.task][f"{role}_init"]
    if spec is None:
        return None
    kind, name = spec.split(":")
    arch = wildcards.tarch if role == "teacher" else wildcards.sarch
    if kind == "weights":
        return f"resources/weights/{arch}-{name}.pt"
    w = dict(wildcards.items(), task=name, tarch=arch)
    return f"{TEACHER.format(**w)}/model.pt"


def init_input(role):
    """Named input function: the run's init file, if any."""

    def inputs(wildcards):
        path = init_path(role, wildcards)
        return [] if path is None else [path]

    return inputs


def job_threads(kind):
    """Threads of a training job (`teacher` or `student` recipe): every data-parallel
    process gets the task's `cpus_per_process` cores."""

    def threads(wildcards):
        task = config["tasks"][wildcards.task]
        return task[kind]["processes"] * task["cpus_per_process"]

    return threads


def run_args(role):
    """Named param function: the `lskd train|distill` flags of one run (role `teacher`
    or `student`) or of one fused sweep over every T (`students`), shell-quoted
    (threads and GPUs from the job's own threads and resources).

    The recipe and augmentation JSON are part of the params, so editing them reruns
    exactly the affected jobs.
    """

    kind = "student" if role == "students" else role  # recipe and init key

    def params(wildcards, threads, resources):
        w, task = wildcards, config["tasks"][wildcards.task]
        if role == "teacher":
            run = f"--arch {w.tarch} --alpha {w.alpha} --seed {w.tseed}"
        else:
            T = " ".join(TEMPS) if role == "students" else w.T
            run = f"--arch {w.sarch} --T {T} --seed {w.seed}"
        hp = json.dumps(task[kind], sort_keys=True)
        augment = json.dumps(task["augment"], sort_keys=True)
        flags = f" --loader {task['loader']}"
        flags += "" if RUN["deterministic"] else " --nondeterministic"
        flags += " --compile" if task["compile"] else ""
        init = init_path(kind, wildcards)
        flags += f" --init {init}" if init else ""
        flags += " --pretrained" if role == "teacher" and pretrained_teacher(w) else ""
        return (
            f"--task {w.task} {run} --hp {shlex.quote(hp)} "
            f"--augment {shlex.quote(augment)}{flags} "
            f"--threads {threads} --gpus {resources.gpu}"
        )

    return params


def run_report(path, role, T="{T}"):
    """A run's metrics.json as a report item, labelled by alpha (and T for students)."""
    labels = run_labels(role)
    if role == "student":
        labels["T"] = T
    return report(
        path,
        caption="../report/metrics.rst",
        category="Runs",
        subcategory=f"{role.title()}s",
        labels=labels,
    )


def sweep_outputs(name):
    """`name` of each student of one fused sweep (distill_students), one per T:
    the same paths as the per-T distill_student writes."""
    return [
        f"results/<teacher_id>/student_{{sarch}}_T{T}_s{{seed}}/{name}" for T in TEMPS
    ]


def sweep_reports():
    """The fused sweep's metrics.json files as report items, labelled with their T."""
    paths = sweep_outputs("metrics.json")
    return [run_report(p, "student", T) for p, T in zip(paths, TEMPS)]


def figure_report(path):
    """A figure PNG as a report item; panel is `teachers` or the students' arch."""
    return report(
        path,
        caption="../report/figure.rst",
        category="Figures",
        subcategory="{task}",
        labels={"teacher": "{tarch}", "panel": "{panel}"},
    )


def claims_report(path):
    return report(
        path,
        caption="../report/claims.rst",
        category="Claims",
        subcategory="{task}",
        labels={"task": "{task}", "pair": "{tarch} → {sarch}"},
    )


def diffusion_report(path):
    kind = "figure" if path.endswith(".png") else "table"
    return report(
        path,
        caption="../report/diffusion.rst",
        category="Diffusion",
        subcategory="{task}",
        labels={"pair": "{tarch} → {sarch}", "kind": kind},
    )


def diffusion_runs(name):
    """Named input function: `name` of the teachers and of the students at the figure's
    temperatures, every alpha and seed, in matching order for both lists."""

    def inputs(wildcards):
        w = dict(task=wildcards.task, tarch=wildcards.tarch, sarch=wildcards.sarch)
        teachers = [
            f"{TEACHER.format(**w, alpha=a, tseed=s)}/{name}"
            for a in ALPHAS
            for s in SEEDS
        ]
        students = [
            f"{STUDENT.format(**w, alpha=a, tseed=s, T=T, seed=s)}/{name}"
            for T in row_temps(wildcards.task)
            for a in ALPHAS
            for s in SEEDS
        ]
        return teachers + students

    return inputs


def table_report(path):
    return report(
        path,
        caption="../report/table.rst",
        category="Tables",
        subcategory="{task}",
        labels={"task": "{task}", "pair": "{tarch} → {sarch}"},
    )


def gpu_resources(kind):
    """Per-job needs, for any executor: GPUs = the recipe's data-parallel processes.
    Profiles add site keys and may override per rule (set-resources)."""

    def gpus(wildcards):
        return config["tasks"][wildcards.task][kind]["processes"]

    return {"gpu": gpus, "mem_mb": 4000, "runtime": 240}


def row_temps(task):
    return [
        path_token(T)
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
    panels = {
        (t, a, p)
        for t, a, s in pairs()
        if TASKS[t]["penultimate"]["enabled"]
        for p in (s, "teachers")
    }
    figures = [f"results/figures/penultimate_{t}_{a}-{p}.png" for t, a, p in panels]
    claims = [
        f"results/tables/{t}_{a}-{s}_claims.{ext}"
        for t, a, s in pairs()
        for ext in ("csv", "md", "html")
    ]
    diffusion = [
        f"results/figures/diffusion_{t}_{a}-{s}.png"
        for t, a, s in pairs()
        if TASKS[t]["penultimate"]["enabled"]
    ]
    return tables + claims + sorted(figures) + diffusion + nmt_targets()


def prepare_args(wildcards):
    """Flags of `lskd prepare`: the raw root is a param (checked when the job runs), so
    a dry run works without the data."""
    data = config["tasks"][wildcards.task]["data"]
    args = f"--dataset {data['dataset']} --root {shlex.quote(data['root'])} "
    args += f"--split-seed {data['split_seed']}"
    if data["dataset"] == "fashion_mnist":
        keys = ("val_size", "train_size", "test_size")
    else:
        keys = ("val_per_class", "expect_classes", "expect_train", "expect_test")
        keys += ("check_limit",)
    for key in keys:
        if data[key] is not None:
            args += f" --{key.replace('_', '-')} {data[key]}"
    return args


def subset_args(wildcards):
    pen = config["tasks"][wildcards.task]["penultimate"]
    classes = " ".join(str(c) for c in pen["classes"])
    return (
        f"--classes {classes} --train-per-class {pen['train_per_class']} "
        f"--test-per-class {pen['test_per_class']}"
    )


def weights_args(wildcards):
    """Flags of `lskd import-weights` for resources/weights/<arch>-<source>.pt."""
    entry = config["weights"].get(wildcards.name)
    if entry is None:
        raise ValueError(f"weights.{wildcards.name}: not in the config's weights")
    arch, source = wildcards.name.split("-")
    args = f"{shlex.quote(entry['path'])} --arch {arch} --source {source}"
    return args + (f" --sha256 {entry['sha256']}" if entry["sha256"] else "")


def extract_args(wildcards):
    task = task_of(wildcards.run)
    pen = config["tasks"][task]["penultimate"]
    classes = " ".join(str(c) for c in pen["classes"])
    augment = json.dumps(config["tasks"][task]["augment"], sort_keys=True)
    return (
        f"--classes {classes} --train-per-class {pen['train_per_class']} "
        f"--test-per-class {pen['test_per_class']} --augment {shlex.quote(augment)}"
    )


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


# ---- NMT (PAPER.md §3.6, Table 5) ----
NMT = config["nmt"]
# Paper-scale corpora (local IWSLT/WMT files) get the paper's BLEU beside ours in Table 5.
NMT_TABLE_FLAGS = " --paper" if NMT["corpus"]["kind"] == "files" else ""
NMT_PAIRS = NMT["pairs"]
NMT_STUDENT_PAIRS = [
    p for p in NMT_PAIRS if NMT["student_pairs"] is None or p in NMT["student_pairs"]
]
NMT_TEACHER = "results/nmt_{pair}/teacher_transformer_a{alpha}_s{tseed}"
NMT_STUDENT = f"{NMT_TEACHER}/student_transformer_T{{T}}_s{{tseed}}"


wildcard_constraints:
    pair=r"en_[a-z]{2}",


def nmt_prepare_args(wildcards):
    corpus = json.dumps(NMT["corpus"], sort_keys=True)
    return f"--corpus {shlex.quote(corpus)} --vocab-size {NMT['bpe_vocab']}"


def nmt_run_args(role):
    """Named param function: the `lskd nmt-train|nmt-distill` flags of one job. The
    recipe JSON is part of them, so editing it reruns exactly the affected jobs;
    teachers ignore `kd`."""

    def params(wildcards, threads):
        recipe = {k: v for k, v in NMT[role].items() if role == "student" or k != "kd"}
        hp = shlex.quote(json.dumps(recipe, sort_keys=True))
        args = f"--pair {wildcards.pair} --alpha {wildcards.alpha} "
        args += f"--seed {wildcards.tseed} --hp {hp} --threads {threads}"
        return args + (f" --T {' '.join(TEMPS)}" if role == "student" else "")

    return params


def nmt_resources():
    """One GPU per NMT job where the executor knows GPUs; ignored locally."""
    return {"gpu": 1, "mem_mb": 8000, "runtime": 1440}


def nmt_students(name):
    """The T-sweep's files `name` of one teacher directory (rule output patterns)."""
    return expand(
        f"results/<nmt_teacher_id>/student_transformer_T{{T}}_s{{{{tseed}}}}/{name}",
        T=TEMPS,
    )


def nmt_report(path, what, labels=None):
    """NMT artefacts in the report: Table 5, the split sizes, each run's BLEU."""
    labels = labels or {
        "table": {"table": "Table 5"},
        "splits": {"pair": "{pair}", "run": "splits"},
    }.get(what, {"pair": "{pair}", "alpha": "{alpha}", "run": what})
    return report(
        path,
        caption=f"../report/nmt_{what if what in ('table', 'splits') else 'run'}.rst",
        category="NMT",
        subcategory="Table 5" if what == "table" else "{pair}",
        labels=labels,
    )


def nmt_student_reports():
    """The students' metrics.json of one teacher directory, one report item per T."""
    items = []
    for T, path in zip(TEMPS, nmt_students("metrics.json")):
        labels = {"pair": "{pair}", "alpha": "{alpha}", "run": f"student T={T}"}
        items.append(nmt_report(path, "student", labels))
    return items


def nmt_runs(name):
    """`name` (metrics.json, ...) of every NMT run in Table 5."""
    runs = [
        NMT_TEACHER.format(pair=p, alpha=a, tseed=s)
        for p in NMT_PAIRS
        for a in ALPHAS
        for s in SEEDS
    ]
    runs += [
        NMT_STUDENT.format(pair=p, alpha=a, tseed=s, T=T)
        for p in NMT_STUDENT_PAIRS
        for a in ALPHAS
        for s in SEEDS
        for T in TEMPS
    ]
    return [f"{run}/{name}" for run in runs]


def nmt_targets():
    if not NMT_PAIRS:
        return []
    return [f"results/tables/table5_nmt.{ext}" for ext in ("csv", "md", "tex", "html")]


def nmt_score_args(wildcards):
    """`lskd nmt-score` flags: the pair, its prepared data, the generation settings."""
    gen = shlex.quote(json.dumps(NMT["generate"], sort_keys=True))
    data = f"resources/data/nmt_{wildcards.pair}/prepared"
    return f"--pair {wildcards.pair} --data {data} --gen {gen}"
