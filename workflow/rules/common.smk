# Config validation, wildcard constraints and every helper the rules use (no rules here).
import json
import shlex
from pathlib import Path

from lskd.plan.config import check_data_roots, validate_config
from lskd.plan.checks import (
    check_data_sources,
    check_init_teachers,
    exit_on_config_error,
    path_token,
)
from lskd.data.transfer import size_tokens

exit_on_config_error(validate_config, config)  # the schema: lskd/config.schema.yaml


TASK_DIR = "results/{task}"  # one image task's runs
NMT_DIR = "results/nmt_{ntask}_{pair}"  # one NMT study's runs of one pair
# No run directory may hold runs of other data (its data_source.json says which).
exit_on_config_error(check_data_sources, config, TASK_DIR, NMT_DIR)


onstart:
    # Before any job runs, but not in a dry run (which must work without the data);
    # then each run directory records its data source.
    exit_on_config_error(check_data_roots, config)
    exit_on_config_error(check_data_sources, config, TASK_DIR, NMT_DIR, True)


RUN = config["run"]
TASKS = {name: config["tasks"][name] for name in RUN["tasks"]}
ALPHAS = [path_token(a) for a in RUN["alphas"]]  # the spelling in paths (validated)
TEMPS = [path_token(T) for T in RUN["temperatures"]]
SEEDS = [str(s) for s in RUN["seeds"]]
ARCHS = sorted(
    {a for t in TASKS.values() for a in t["teacher_archs"] + t["student_archs"]}
)
XFER_RE = r"all|n\d+|f0\.\d+"  # a transfer-set token (lskd.data.transfer)
# KD transfer-set path tokens of each task (`all`, `n30`, `f0.1`: lskd.data.transfer)
XFERS = {n: size_tokens(t["student"]["transfer"], n) for n, t in TASKS.items()}


# For rules whose paths spell wildcards directly; the run-id pathvars carry their own
# constraints (see the Snakefile).
wildcard_constraints:
    task="|".join(TASKS),
    tarch="|".join(ARCHS),
    sarch="|".join(ARCHS),
    panel=rf"teachers|({'|'.join(ARCHS)})_({XFER_RE})",
    xfer=XFER_RE,
    fmt="npz|json",
    name=r"[a-z0-9_]+-[a-z0-9_]+",
    seed=r"\d+",


TEACHER = f"{TASK_DIR}/teacher_{{tarch}}_a{{alpha}}_s{{tseed}}"
STUDENT = f"{TEACHER}/student_{{sarch}}_{{xfer}}_T{{T}}_s{{seed}}"
PAIR = "{task}_{tarch}-{sarch}_{xfer}"  # name of one table / figure / diffusion set
exit_on_config_error(check_init_teachers, config, TEACHER)  # of tasks not run


def data_format(task):
    """In-memory arrays (.npz) for fashion_mnist, a manifest of image files otherwise."""
    return (
        "npz" if config["tasks"][task]["data"]["dataset"] == "fashion_mnist" else "json"
    )


def dataset(wildcards):
    """Prepared dataset of the task named by the `task` wildcard."""
    task = wildcards.task
    return f"resources/data/{task}/dataset.{data_format(task)}"


def penultimate_data(wildcards):
    """Images the projection uses: the dataset itself, or for image folders the
    visualisation subset of docs/visualisation.md (prepare_subset)."""
    if data_format(wildcards.task) == "npz":
        return dataset(wildcards)
    return f"resources/data/{wildcards.task}/penultimate.json"


ANALYSIS_FILES = ("penultimate.npz", "projection.npz", "diffusion.json")


def teacher_runs(names):
    """`names` in every teacher run of one (task, tarch): patterns of those wildcards."""
    w = {"task": "{task}", "tarch": "{tarch}"}
    return [
        f"{TEACHER.format(**w, alpha=a, tseed=s)}/{name}"
        for a in ALPHAS
        for s in SEEDS
        for name in names
    ]


def student_runs(names):
    """`names` in every student run of one (task, tarch, sarch, xfer), every alpha, T
    and seed: patterns of those wildcards."""
    w = {k: f"{{{k}}}" for k in ("task", "tarch", "sarch", "xfer")}
    return [
        f"{STUDENT.format(**w, alpha=a, tseed=s, T=T, seed=s)}/{name}"
        for a in ALPHAS
        for s in SEEDS
        for T in TEMPS
        for name in names
    ]


def pair_runs(wildcards, name):
    """`name` of the teachers and students of one table (its wildcards filled in)."""
    return [p.format(**wildcards) for p in teacher_runs([name]) + student_runs([name])]


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
    or `student`) or of one fused sweep over every T (`students`), shell-quoted.

    It reads wildcards and config only (never threads or resources: Snakemake records
    only such params in .snakemake/metadata), so editing the recipe or augmentation
    reruns exactly the affected jobs; threads and GPUs go in the shell string.
    """

    kind = "student" if role == "students" else role  # recipe and init key

    def params(wildcards):
        w, task = wildcards, config["tasks"][wildcards.task]
        if role == "teacher":
            run = f"--arch {w.tarch} --alpha {w.alpha} --seed {w.tseed}"
        else:
            T = " ".join(TEMPS) if role == "students" else w.T
            run = f"--arch {w.sarch} --T {T} --seed {w.seed} --transfer {w.xfer}"
        recipe = {k: v for k, v in task[kind].items() if k != "transfer"}  # in paths
        hp = json.dumps(recipe, sort_keys=True)
        augment = json.dumps(task["augment"], sort_keys=True)
        flags = f" --loader {task['loader']}"
        flags += "" if RUN["deterministic"] else " --nondeterministic"
        flags += " --compile" if task["compile"] else ""
        init = init_path(kind, wildcards)
        flags += f" --init {init}" if init else ""
        flags += " --pretrained" if role == "teacher" and pretrained_teacher(w) else ""
        return (
            f"--task {w.task} {run} --hp {shlex.quote(hp)} "
            f"--augment {shlex.quote(augment)}{flags}"
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
        f"results/<teacher_id>/student_{{sarch}}_{{xfer}}_T{T}_s{{seed}}/{name}"
        for T in TEMPS
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
        labels={"task": "{task}", "pair": "{tarch} → {sarch}", "transfer": "{xfer}"},
    )


def diffusion_report(path):
    kind = "figure" if path.endswith(".png") else "table"
    return report(
        path,
        caption="../report/diffusion.rst",
        category="Diffusion",
        subcategory="{task}",
        labels={"pair": "{tarch} → {sarch}", "transfer": "{xfer}", "kind": kind},
    )


def diffusion_runs(name):
    """Named input function: `name` of every run of one table, in matching order for
    every `name`."""

    def inputs(wildcards):
        return pair_runs(wildcards, name)

    return inputs


# The report lists categories (and, inside one, labelled items) sorted by name with
# JavaScript's localeCompare (snakemake 9.27, report/html_reporter/template/components/
# menu.js and abstract_results.js): digits sort before letters, so the headline comes
# first, and its items are labelled 1 summary, 2 table, 3 figure.
DELTA_CATEGORY = "1. LS benefit Δ(T)"


def delta_report(path):
    """The LS benefit Δ(T) of one pair (summary, table, figure): the report's first
    category; the summary also opens the landing page (report/workflow.rst)."""
    item = "1 summary" if "_summary" in path else "3 figure"
    item = "2 table" if path.endswith("_delta.html") else item
    return report(
        path,
        caption="../report/delta.rst",
        category=DELTA_CATEGORY,
        subcategory="{task}",
        labels={"pair": "{tarch} → {sarch}", "transfer": "{xfer}", "item": item},
    )


def delta_outputs():
    """Output files of `delta` (`lskd delta --out` tells them apart by their endings):
    the table, its summary and the figure of one pair."""
    table = f"results/tables/{PAIR}_delta"
    return [
        f"{table}.csv",
        f"{table}.md",
        f"{table}.tex",
        f"{table}_summary.md",
        delta_report(f"{table}_summary.html"),
        delta_report(f"{table}.html"),
        delta_report(f"results/figures/delta_{PAIR}.png"),
    ]


def transfer_inputs(wildcards):
    """metrics.json of one pair's teachers and its students on every transfer set."""
    runs = {
        path
        for xfer in XFERS[wildcards.task]
        for path in pair_runs(dict(wildcards.items(), xfer=xfer), "metrics.json")
    }
    return sorted(runs)


def transfer_report(path):
    """Δ(T) across transfer-set sizes (config/transfer.yaml), beside the Δ tables."""
    return report(
        path,
        caption="../report/transfer.rst",
        category=DELTA_CATEGORY,
        subcategory="{task}: transfer-set size",
        labels={
            "pair": "{tarch} → {sarch}",
            "kind": "table" if path.endswith(".html") else "figure",
        },
    )


def delta_diffusion(wildcards):
    """The diffusion.json files the Δ table shows beside Δ (where the penultimate
    figures are drawn); matched to their runs by directory."""
    if not TASKS[wildcards.task]["penultimate"]["enabled"]:
        return []
    return diffusion_runs("diffusion.json")(wildcards)


def has_delta():
    """Δ(T) needs the alpha = 0 teacher and at least one alpha > 0."""
    alphas = [float(a) for a in ALPHAS]
    return 0.0 in alphas and max(alphas) > 0.0


def table_report(path):
    return report(
        path,
        caption="../report/table.rst",
        category="Tables",
        subcategory="{task}",
        labels={"task": "{task}", "pair": "{tarch} → {sarch}", "transfer": "{xfer}"},
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
    """metrics.json of every teacher and student one table needs (all alphas and seeds,
    one transfer set)."""
    return pair_runs(wildcards, "metrics.json")


def split_panel(panel):
    """A student panel `<sarch>_<xfer>` as (sarch, xfer)."""
    sarch, _, xfer = panel.rpartition("_")
    return sarch, xfer


def projections(wildcards):
    """Row-major projection files of one figure: rows = T (one row for the teachers'
    panel), columns = alpha."""
    w = dict(task=wildcards.task, tarch=wildcards.tarch, tseed=SEEDS[0], seed=SEEDS[0])
    if wildcards.panel == "teachers":
        return [f"{TEACHER.format(**w, alpha=a)}/projection.npz" for a in ALPHAS]
    sarch, xfer = split_panel(wildcards.panel)
    return [
        f"{STUDENT.format(**w, sarch=sarch, xfer=xfer, alpha=a, T=T)}/projection.npz"
        for T in row_temps(wildcards.task)
        for a in ALPHAS
    ]


def figure_rows(wildcards):
    return " ".join(f"'T = {T}'" for T in row_temps(wildcards.task))


def pairs():
    """(task, tarch, sarch, xfer) of every table: teacher -> student on a transfer set."""
    for task, t in TASKS.items():
        for tarch in t["teacher_archs"]:
            for sarch in t["student_archs"]:
                for xfer in XFERS[task]:
                    yield task, tarch, sarch, xfer


def final_targets():
    names = [
        (PAIR.format(task=t, tarch=a, sarch=s, xfer=x), TASKS[t]["penultimate"])
        for t, a, s, x in pairs()
    ]
    tables = [
        f"results/tables/{n}.{ext}"
        for n, _ in names
        for ext in ("csv", "md", "tex", "html")
    ]
    claims = [
        f"results/tables/{n}_claims.{ext}"
        for n, _ in names
        for ext in ("csv", "md", "html")
    ]
    figures = {f"results/figures/penultimate_{n}.png" for n, p in names if p["enabled"]}
    figures |= {
        f"results/figures/penultimate_{t}_{a}-teachers.png"
        for t, a, _, _ in pairs()
        if TASKS[t]["penultimate"]["enabled"]
    }
    diffusion = [f"results/figures/diffusion_{n}.png" for n, p in names if p["enabled"]]
    delta = [
        str(path).format(task=t, tarch=a, sarch=s, xfer=x)
        for t, a, s, x in pairs()
        for path in delta_outputs()
        if has_delta()
    ]
    delta += [  # the transfer-set axis: Δ(T) per size and the interaction
        f"results/{kind}/{prefix}{t}_{a}-{s}_transfer.{ext}"
        for t, a, s in {(t, a, s) for t, a, s, _ in pairs()}
        if has_delta() and len(XFERS[t]) > 1
        for kind, prefix, ext in (("tables", "", "csv"), ("figures", "delta_", "png"))
    ]
    return delta + tables + claims + sorted(figures) + diffusion + nmt_targets()


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
    """The projection's classes and images per class (`lskd subset`, `lskd analyse`)."""
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


def weights_stamp(wildcards):
    """Size and modification time of the file to import ("missing" if absent: the job
    then stops with lskd's one line): a param, so Snakemake reruns the import when the
    file is replaced even without a configured sha256. The file is not an input, so
    a dry run works where it does not exist."""
    entry = config["weights"].get(wildcards.name)
    path = Path(entry["path"]) if entry else None
    if path is None or not path.is_file():
        return "missing"
    stat = path.stat()
    return f"{stat.st_size} bytes, mtime {stat.st_mtime_ns}"


def analysis_args(wildcards):
    augment = json.dumps(config["tasks"][wildcards.task]["augment"], sort_keys=True)
    return f"{subset_args(wildcards)} --augment {shlex.quote(augment)}"


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
        "transfer": "{xfer}",
        "alpha": "{alpha}",
        "T": "{T}",
        "seed": "{seed}",
    }


def figure_args(wildcards):
    """Rows, alphas and title of a projection figure."""
    w, alphas = wildcards, " ".join(ALPHAS)
    if w.panel == "teachers":
        title = f"Penultimate layer of the {w.tarch} teachers "
        title += f"({w.task}, seed {SEEDS[0]})"
        return f"--rows teacher --alphas {alphas} --title {title!r}"
    sarch, xfer = split_panel(w.panel)
    title = f"Penultimate layer of {sarch} students of {w.tarch} ({w.task}, "
    title += f"transfer set {xfer}, seed {SEEDS[0]})"
    return f"--rows {figure_rows(wildcards)} --alphas {alphas} --title {title!r}"


# ---- NMT (Table 5, docs/recipes.md#nmt) ----
NMT = config["nmt"]
# Paper-scale corpora (local IWSLT/WMT files) get the paper's BLEU beside ours in Table 5.
NMT_TABLE_FLAGS = " --paper" if NMT["corpus"]["kind"] == "files" else ""
NMT_PAIRS = NMT["pairs"]
NMT_STUDENT_PAIRS = [
    p for p in NMT_PAIRS if NMT["student_pairs"] is None or p in NMT["student_pairs"]
]
# nmt.seeds: the NMT runs' own seeds (null = run.seeds)
NMT_SEEDS = [
    str(s) for s in (NMT["seeds"] if NMT["seeds"] is not None else RUN["seeds"])
]
NMT_TASK = NMT["task"]  # the study's name: its runs never share paths with another's
NMT_DATA = "resources/data/nmt_{ntask}_{pair}"
NMT_PREPARED = f"{NMT_DATA}/prepared"  # fairseq-preprocess output of one pair
NMT_TEACHER = f"{NMT_DIR}/teacher_transformer_a{{alpha}}_s{{tseed}}"
NMT_STUDENT = f"{NMT_TEACHER}/student_transformer_T{{T}}_s{{tseed}}"


wildcard_constraints:
    pair=r"en_[a-z]{2}",
    ntask=NMT_TASK or r"[a-z0-9]+",


def nmt_prepare_args(wildcards):
    corpus = json.dumps(NMT["corpus"], sort_keys=True)
    return f"--corpus {shlex.quote(corpus)} --vocab-size {NMT['bpe_vocab']}"


def nmt_run_args(role):
    """Named param function: the `lskd nmt-train|nmt-distill` flags of one job. The
    recipe JSON is part of them, so editing it reruns exactly the affected jobs;
    teachers ignore `kd`. Like `run_args`, they never read threads or resources
    (Snakemake would not record them): threads go in the shell string."""

    def params(wildcards):
        recipe = {k: v for k, v in NMT[role].items() if role == "student" or k != "kd"}
        hp = shlex.quote(json.dumps(recipe, sort_keys=True))
        args = f"--task {wildcards.ntask} --pair {wildcards.pair} "
        args += f"--alpha {wildcards.alpha} --seed {wildcards.tseed} --hp {hp}"
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
        NMT_TEACHER.format(ntask=NMT_TASK, pair=p, alpha=a, tseed=s)
        for p in NMT_PAIRS
        for a in ALPHAS
        for s in NMT_SEEDS
    ]
    runs += [
        NMT_STUDENT.format(ntask=NMT_TASK, pair=p, alpha=a, tseed=s, T=T)
        for p in NMT_STUDENT_PAIRS
        for a in ALPHAS
        for s in NMT_SEEDS
        for T in TEMPS
    ]
    return [f"{run}/{name}" for run in runs]


def nmt_targets():
    if not NMT_PAIRS:
        return []
    table = f"results/tables/table5_{NMT_TASK}"
    return [f"{table}.{ext}" for ext in ("csv", "md", "tex", "html")]


def nmt_score_args(wildcards):
    """`lskd nmt-score` flags: the pair, its prepared data, the generation settings."""
    gen = shlex.quote(json.dumps(NMT["generate"], sort_keys=True))
    data = NMT_PREPARED.format(**wildcards)
    return f"--pair {wildcards.pair} --data {data} --gen {gen}"
