"""Provenance: a changed config value reruns exactly the jobs whose results it changes.

Snakemake records each job's params in `.snakemake/metadata` and reruns a job whose
params changed (and everything downstream). These tests change one representative key
of each kind and assert the exact plan of `snakemake -n`, computed from the config's
grid: on the real finished DAG of .test/config for the image keys, and on a finished
DAG of config/config.yaml marked up to date with `--touch` for the NMT and
imported-weights keys (their jobs are too slow to run here; the plan is what is tested).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from conftest import REPO, planned_jobs, run_snakemake
from lskd.plan.config import validate_config
from lskd.plan.grid import Grid

pytestmark = pytest.mark.slow
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"
DEFAULT_CONFIG = REPO / "config" / "config.yaml"


def merged(path: Path, overlay: dict) -> dict:
    config = yaml.safe_load(path.read_text())
    update_config(config, copy.deepcopy(overlay))
    return config


def plan(work: Path, config: dict, tmp_path: Path) -> dict[str, int]:
    """What `snakemake -n` would run in `work` under `config`."""
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    return planned_jobs(run_snakemake(work, "-n", "--configfile", str(path)))


def grid(config: dict) -> dict[str, int]:
    """Job counts of the image grid of `config` (fused sweeps, one task)."""
    (name,) = config["run"]["tasks"]
    task = config["tasks"][name]
    tarchs, sarchs = len(task["teacher_archs"]), len(task["student_archs"])
    transfer = task["student"].get("transfer", ["all"])
    methods = Grid(validate_config(copy.deepcopy(config)))  # regularizers, objectives
    teachers = tarchs * len(methods.regs) * len(config["run"]["seeds"])
    sets = tarchs * sarchs * len(transfer)  # one table, figure, analysis per set
    sweeps = teachers * sarchs * len(transfer) * len(methods.objs)
    return {"teachers": teachers, "sweeps": sweeps, "tarchs": tarchs, "sets": sets}


def image_jobs(config: dict, teachers: bool, students: bool, analysis: bool) -> dict:
    """The image jobs downstream of a change to the teachers, the students, or only
    the penultimate-layer analysis (`analysis`)."""
    g = grid(config)
    jobs: dict[str, int] = {}
    if teachers:
        jobs["train_teacher"] = g["teachers"]
    if teachers or students:
        jobs["distill_students"] = g["sweeps"]
        jobs |= {"make_table": g["sets"], "check_claims": g["sets"]}
        jobs["plot_curves"] = g["sets"]  # the training curves of the pair's runs
    if teachers or analysis:
        jobs["analyse_teachers"] = g["tarchs"]
    jobs |= {"analyse_students": g["sets"], "delta": g["sets"]}
    jobs["make_diffusion_table"] = g["sets"]
    # One figure per student set, plus the teachers' panel when teachers changed.
    jobs["plot_projections"] = g["sets"] + (g["tarchs"] if teachers or analysis else 0)
    return jobs | {"all": 1}


TEACHERS = dict(teachers=True, students=False, analysis=False)
STUDENTS = dict(teachers=False, students=True, analysis=False)
ANALYSIS = dict(teachers=False, students=False, analysis=True)

# key -> (overlay on .test/config, the image jobs it reruns: None = nothing)
IMAGE_KEYS = {
    "teacher recipe (teacher.epochs)": (
        {"tasks": {"fmnist": {"teacher": {"epochs": 3}}}},
        TEACHERS,
    ),
    "teacher recipe (teacher.batch_size)": (
        {"tasks": {"fmnist": {"teacher": {"batch_size": 50}}}},
        TEACHERS,
    ),
    "student recipe (student.lr)": (
        {"tasks": {"fmnist": {"student": {"lr": 0.05}}}},
        STUDENTS,
    ),
    "student selection (student.selection)": (
        {"tasks": {"fmnist": {"student": {"selection": "last"}}}},
        STUDENTS,
    ),
    "augmentation (augment.pad)": (
        {"tasks": {"fmnist": {"augment": {"pad": 2}}}},
        TEACHERS,
    ),
    "kernels (run.deterministic: GPU results differ)": (
        {"run": {"deterministic": False}},
        TEACHERS,
    ),
    "penultimate (penultimate.test_per_class)": (
        {"tasks": {"fmnist": {"penultimate": {"test_per_class": 5}}}},
        ANALYSIS,
    ),
    "threads (cpus_per_process)": (
        {"tasks": {"fmnist": {"cpus_per_process": 2}}},
        None,
    ),
    "an unrelated task's recipe": (
        {
            "tasks": {
                "other": {**yaml.safe_load(TEST_CONFIG.read_text())["tasks"]["fmnist"]}
            }
        },
        None,
    ),
}


@pytest.mark.parametrize("key", list(IMAGE_KEYS))
def test_image_key_reruns_exactly_what_it_affects(key, demo_run, tmp_path):
    overlay, affected = IMAGE_KEYS[key]
    config = merged(TEST_CONFIG, overlay)
    expected = {} if affected is None else image_jobs(config, **affected)
    assert plan(demo_run, config, tmp_path) == expected


def test_split_key_reprepares_the_data_and_reruns_everything(demo_run, tmp_path):
    config = merged(TEST_CONFIG, {"tasks": {"fmnist": {"data": {"val_size": 400}}}})
    expected = {"prepare_data": 1, **image_jobs(config, **TEACHERS)}
    assert plan(demo_run, config, tmp_path) == expected


def test_transfer_size_adds_its_students_and_keeps_the_teachers(demo_run, tmp_path):
    """A new transfer-set size is a new path: its students and their analysis only."""
    config = merged(TEST_CONFIG, {"tasks": {"fmnist": {"student": {"transfer": [40]}}}})
    assert plan(demo_run, config, tmp_path) == image_jobs(config, **STUDENTS)


def test_the_recipe_edit_of_the_issue_reruns_teachers_students_and_the_table(
    demo_run, tmp_path
):
    """teacher.epochs and student.epochs 2 -> 3, asking for the table only."""
    config = merged(
        TEST_CONFIG,
        {"tasks": {"fmnist": {"teacher": {"epochs": 3}, "student": {"epochs": 3}}}},
    )
    path = tmp_path / "epochs.yaml"
    path.write_text(yaml.safe_dump(config))
    table = "results/tables/fmnist_mlp128-mlp128_n50.md"
    result = run_snakemake(demo_run, table, "-n", "--configfile", str(path))
    g = grid(config)
    expected = {"train_teacher": g["teachers"], "distill_students": g["sweeps"]}
    assert planned_jobs(result) == expected | {"make_table": 1}


# ---- NMT and imported weights: config/config.yaml, marked finished with --touch ----

WEIGHTS = "mlp512-mine"


@pytest.fixture(scope="module")
def touched(tmp_path_factory) -> tuple[Path, dict]:
    """A working directory where every output of config/config.yaml (with a teacher
    that starts from imported weights) exists and Snakemake's metadata records the
    config's params, as after a finished run."""
    work = tmp_path_factory.mktemp("touched")
    (work / "resources" / "raw" / "libreoffice").mkdir(parents=True)
    weights = work / "mine.pt"
    weights.write_bytes(b"stand-in weights")
    config = merged(
        DEFAULT_CONFIG,
        {
            "weights": {WEIGHTS: {"path": str(weights)}},
            "tasks": {"fmnist": {"teacher_init": "weights:mine"}},
        },
    )
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    summary = run_snakemake(work, "--summary", "--configfile", str(path))
    for line in summary.stdout.splitlines()[1:]:
        out, rule = line.split("\t")[0], line.split("\t")[2]
        target = work / out
        if rule == "prepare_nmt" and out.endswith("prepared"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
    run_snakemake(
        work, "--touch", "--forceall", "--cores", "1", "--configfile", str(path)
    )
    assert plan(work, config, work) == {}
    return work, config


def nmt_jobs(config: dict, prepare: bool, teachers: bool, students: bool) -> dict:
    """The NMT jobs downstream of a change to the corpus, the teachers, the students,
    or (all False) only the scoring."""
    nmt, alphas = config["nmt"], len(config["run"]["alphas"])
    seeds = len(nmt["seeds"] or config["run"]["seeds"])
    pairs = len(nmt["pairs"])
    student_pairs = len(nmt["student_pairs"] or nmt["pairs"])
    jobs = {"prepare_nmt": pairs} if prepare else {}
    if prepare or teachers:
        jobs["train_nmt_teacher"] = pairs * alphas * seeds
    if prepare or teachers or students:
        jobs["distill_nmt_students"] = student_pairs * alphas * seeds
    if not students or prepare or teachers:
        jobs["score_nmt_teacher"] = pairs * alphas * seeds
    jobs["score_nmt_students"] = student_pairs * alphas * seeds
    return jobs | {"make_nmt_table": 1, "all": 1}


NMT_KEYS = {
    "corpus (nmt.corpus.max_words)": (
        {"nmt": {"corpus": {"max_words": 5}}},
        dict(prepare=True, teachers=False, students=False),
    ),
    "BPE (nmt.bpe_vocab)": (
        {"nmt": {"bpe_vocab": 900}},
        dict(prepare=True, teachers=False, students=False),
    ),
    "study name (nmt.task)": (
        {"nmt": {"task": "other"}},
        dict(prepare=True, teachers=False, students=False),
    ),
    "teacher recipe (nmt.teacher.max_update)": (
        {"nmt": {"teacher": {"max_update": 401}}},
        dict(prepare=False, teachers=True, students=False),
    ),
    "student KD (nmt.student.kd.weight)": (
        {"nmt": {"student": {"kd": {"weight": 0.5}}}},
        dict(prepare=False, teachers=False, students=True),
    ),
    "generation (nmt.generate.beam)": (
        {"nmt": {"generate": {"beam": 2}}},
        dict(prepare=False, teachers=False, students=False),
    ),
}


@pytest.mark.parametrize("key", list(NMT_KEYS))
def test_nmt_key_reruns_exactly_what_it_affects(key, touched, tmp_path):
    work, base = touched
    overlay, affected = NMT_KEYS[key]
    config = copy.deepcopy(base)
    update_config(config, copy.deepcopy(overlay))
    assert plan(work, config, tmp_path) == nmt_jobs(config, **affected)


def test_image_recipe_reruns_no_nmt_job(touched, tmp_path):
    work, base = touched
    config = copy.deepcopy(base)
    update_config(config, {"tasks": {"fmnist": {"student": {"lr": 0.02}}}})
    assert plan(work, config, tmp_path) == image_jobs(config, **STUDENTS)


def _weights_plan(config: dict) -> dict:
    return {"import_weights": 1, **image_jobs(config, **TEACHERS)}


def test_weights_sha256_reruns_the_import_and_all_it_feeds(touched, tmp_path):
    work, base = touched
    config = copy.deepcopy(base)
    config["weights"][WEIGHTS]["sha256"] = "0" * 64
    assert plan(work, config, tmp_path) == _weights_plan(config)


def test_replaced_weights_file_reruns_the_import(touched, tmp_path):
    work, config = touched
    path = Path(config["weights"][WEIGHTS]["path"])
    stat = path.stat()
    try:
        path.write_bytes(b"other weights")
        assert plan(work, config, tmp_path) == _weights_plan(config)
    finally:
        path.write_bytes(b"stand-in weights")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert plan(work, config, tmp_path) == {}
