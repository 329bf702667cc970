"""The plan (`lskd.plan`): path patterns, the grid of a config, job arguments, init
files and report items, computed for the repository's configs and checked value by
value; the workflow's dry runs (tests/test_workflow.py) check the rules that use
them."""

from __future__ import annotations

import copy
import json
import re
import shlex

import pytest
import yaml
from snakemake.utils import update_config

from conftest import REPO
from lskd.errors import ConfigError
from lskd.plan import jobs
from lskd.plan.config import validate_config
from lskd.plan.grid import DELTA_FILES, Grid
from lskd.plan.inits import InitSpec, init_path
from lskd.plan.paths import (
    STUDENT,
    TEACHER,
    constrained,
    fill,
    pathvars,
    split_panel,
)
from lskd.plan.report import report_item

TEST_RUNS = "results/fmnist/teacher_mlp128"
PAIR = {"task": "fmnist", "tarch": "mlp128", "sarch": "mlp128", "xfer": "n50"}


def grid_of(name: str, overlay: dict | None = None) -> Grid:
    """The grid of a config file of the repository, validated, `overlay` applied."""
    config = yaml.safe_load((REPO / name).read_text())
    update_config(config, copy.deepcopy(overlay or {}))
    return Grid(validate_config(config))


# .test/config with the teachers of `alphas` and the `kd` students only: the plan as
# before methods were choices (the new axes: METHODS below).
LEGACY = {"run": {"regularizers": [], "objectives": ["kd"]}}


@pytest.fixture(scope="module")
def tiny() -> Grid:
    return grid_of(".test/config/config.yaml", LEGACY)


@pytest.fixture(scope="module")
def paper() -> Grid:
    return grid_of("config/paper.yaml")


def test_pathvars_carry_each_wildcards_constraint():
    assert pathvars() == {
        "teacher_id": r"{task,[a-z0-9]+}/teacher_{tarch,[a-z0-9_]+?}"
        r"_{reg,[a-z][a-z0-9.-]*}_s{tseed,\d+}",
        "student_id": r"<teacher_id>/student_{sarch,[a-z0-9_]+?}"
        r"_{xfer,all|n\d+|f0\.\d+}_{obj,T|[a-z][a-z0-9.-]*-T}{T,\d+(\.\d+)?}"
        r"_s{seed,\d+}",
        "nmt_teacher_id": r"nmt_{ntask,[a-z0-9]+}_{pair,en_[a-z]{2}}"
        r"/teacher_transformer_a{alpha,\d+(\.\d+)?}_s{tseed,\d+}",
    }
    assert constrained("{seed}") == r"{seed,\d+}"


def test_fill_keeps_the_wildcards_it_is_not_given():
    assert fill(STUDENT, T=3, seed=1) == (
        "results/{task}/teacher_{tarch}_{reg}_s{tseed}/student_{sarch}_{xfer}_{obj}3_s1"
    )
    assert fill(TEACHER) == TEACHER
    assert split_panel("efficientnet_b0_f0.1") == ("efficientnet_b0", "f0.1")


def test_grid_spells_values_as_paths_do(tiny, paper):
    assert (tiny.regs, tiny.objs, tiny.temps, tiny.seeds) == (
        ["a0", "a0.1"],
        ["T"],
        ["1", "3"],
        ["0", "1"],
    )
    assert tiny.archs == ["mlp128"] and tiny.xfers == {"fmnist": ["n50"]}
    assert list(tiny.pairs()) == [PAIR]
    assert paper.archs == ["efficientnet_b0", "mobilenet_v2", "resnet18", "resnet50"]
    assert [p["sarch"] for p in paper.pairs() if p["task"] == "cub200"] == [
        "resnet18",
        "resnet50",
        "mobilenet_v2",
    ]


def test_pair_runs_are_the_tables_teachers_and_students(tiny):
    runs = tiny.pair_runs(PAIR, "metrics.json")
    teachers = [f"{TEST_RUNS}_a{a}_s{s}" for a in ("0", "0.1") for s in "01"]
    students = [
        f"{TEST_RUNS}_a{a}_s{s}/student_mlp128_n50_T{T}_s{s}"
        for a in ("0", "0.1")
        for s in "01"
        for T in "13"
    ]
    assert runs == [f"{r}/metrics.json" for r in teachers + students]
    assert tiny.delta_diffusion(PAIR) == tiny.pair_runs(PAIR, "diffusion.json")


def test_cub200_delta_reads_no_diffusion(paper):
    pair = {"task": "cub200", "tarch": "resnet50", "sarch": "resnet18", "xfer": "all"}
    assert paper.delta_diffusion(pair) == []
    assert len(paper.pair_runs(pair, "metrics.json")) == 2 + 2 * 4


def test_transfer_runs_cover_every_transfer_set():
    grid = grid_of(
        ".test/config/config.yaml",
        LEGACY | {"tasks": {"fmnist": {"student": {"transfer": [50, "all"]}}}},
    )
    w = {"task": "fmnist", "tarch": "mlp128", "sarch": "mlp128"}
    runs = grid.transfer_runs(w)
    assert len(runs) == 4 + 2 * 8  # teachers once, students per transfer set
    assert runs == sorted(runs)
    assert sum("_all_T" in r for r in runs) == sum("_n50_T" in r for r in runs) == 8
    assert "results/tables/fmnist_mlp128-mlp128_transfer.csv" in grid.final_targets()


def test_projections_of_a_figure_are_the_first_seeds_runs(tiny, paper):
    teachers = tiny.projections(
        {"task": "fmnist", "tarch": "mlp128", "panel": "teachers"}
    )
    assert teachers == [f"{TEST_RUNS}_a{a}_s0/projection.npz" for a in ("0", "0.1")]
    students = tiny.projections(
        {"task": "fmnist", "tarch": "mlp128", "panel": "mlp128_n50"}
    )
    assert students == [
        f"{TEST_RUNS}_a{a}_s0/student_mlp128_n50_T{T}_s0/projection.npz"
        for T in "13"
        for a in ("0", "0.1")
    ]
    assert paper.row_temps("imagenet") == ["1", "3"]  # penultimate.temperatures


def test_a_figure_also_reads_each_panels_metrics(tiny):
    inputs = tiny.figure_inputs(
        {"task": "fmnist", "tarch": "mlp128", "panel": "teachers"}
    )
    runs = [f"{TEST_RUNS}_a{a}_s0" for a in ("0", "0.1")]
    assert inputs == {
        "projections": [f"{r}/projection.npz" for r in runs],
        "metrics": [f"{r}/metrics.json" for r in runs],
    }


def test_final_targets_of_the_test_config(tiny):
    name = "fmnist_mlp128-mlp128_n50"
    assert tiny.final_targets() == [
        *(path.format(**PAIR) for path in DELTA_FILES.values()),
        *(f"results/tables/{name}.{ext}" for ext in ("csv", "md", "tex", "html")),
        *(f"results/tables/{name}_claims.{ext}" for ext in ("csv", "md", "html")),
        f"results/figures/penultimate_{name}.png",
        "results/figures/penultimate_fmnist_mlp128-teachers.png",
        f"results/figures/diffusion_{name}.png",
        f"results/figures/curves_{name}.png",
    ]
    assert DELTA_FILES["png"].format(**PAIR) == f"results/figures/delta_{name}.png"
    assert tiny.nmt_targets() == []  # .test/config has no NMT pairs


def test_final_targets_without_an_alpha_zero_have_no_delta():
    grid = grid_of(".test/config/config.yaml", {"run": {"alphas": [0.1, 0.2]}})
    assert not grid.has_delta()
    assert not any("_delta" in t for t in grid.final_targets())


def test_nmt_runs_and_table():
    grid = grid_of("config/config.yaml")
    runs = grid.nmt_runs("metrics.json")
    # teachers of every pair (2 alphas, its seeds), students of nmt.student_pairs
    n_teachers = len(grid.nmt_pairs) * 2 * len(grid.nmt_seeds)
    n_students = len(grid.nmt_student_pairs) * 2 * len(grid.nmt_seeds) * 4
    assert len(runs) == n_teachers + n_students
    assert (
        runs[0]
        == "results/nmt_libreoffice_en_de/teacher_transformer_a0_s0/metrics.json"
    )
    assert (
        "results/nmt_libreoffice_en_de/teacher_transformer_a0.1_s0/"
        "student_transformer_T64_s0/metrics.json"
    ) in runs
    assert grid.nmt_targets()[0] == "results/tables/table5_libreoffice.csv"
    assert grid.nmt_sweep_outputs("model.pt")[0] == (
        "results/<nmt_teacher_id>/student_transformer_T1_s{tseed}/model.pt"
    )
    assert grid.sweep_outputs("metrics.json")[-1] == (
        "results/<teacher_id>/student_{sarch}_{xfer}_{obj}64_s{seed}/metrics.json"
    )


METHODS = {
    "run": {
        "regularizers": [{"name": "maxsup", "lam": 0.1, "lam_end": 0.2}],
        "objectives": ["kd", {"name": "dkd", "warmup": 5}],
    }
}


def test_regularizers_and_objectives_are_grid_axes():
    grid = grid_of(".test/config/config.yaml", METHODS)
    assert grid.regs == ["a0", "a0.1", "maxsup-l0.1-e0.2"]
    assert grid.objs == ["T", "dkd-a1-b8-w5-h0-T"]
    assert grid.has_delta()
    runs = grid.pair_runs(PAIR, "metrics.json")
    assert len(runs) == 3 * 2 + 3 * 2 * 2 * 2  # teachers; reg x seed x obj x T
    assert f"{TEST_RUNS}_maxsup-l0.1-e0.2_s1/metrics.json" in runs
    student = "student_mlp128_n50_dkd-a1-b8-w5-h0-T3_s1/metrics.json"
    assert f"{TEST_RUNS}_maxsup-l0.1-e0.2_s1/{student}" in runs
    # every spelled path matches the rules' patterns, wildcards back to the choices
    regex = re.sub(r"\{(\w+),([^{}]+)\}", r"(?P<\1>\2)", constrained(STUDENT))
    match = re.fullmatch(regex, f"{TEST_RUNS}_maxsup-l0.1-e0.2_s1/{student}"[:-13])
    assert match and match["reg"] == "maxsup-l0.1-e0.2" and match["T"] == "3"
    assert grid.objective(match.groupdict()).to_dict() == {
        "name": "dkd",
        "alpha": 1.0,
        "beta": 8.0,
        "warmup": 5,
        "hard_weight": 0.0,
    }
    # NMT teachers run the ce and ls regularizers only
    assert grid.nmt_alphas == ["0", "0.1"]


def test_new_methods_are_spelled_as_json_flags_the_old_ones_as_before():
    grid = grid_of(".test/config/config.yaml", METHODS)
    w = {"task": "fmnist", "tarch": "mlp128", "reg": "maxsup-l0.1-e0.2", "tseed": "0"}
    args = flags(jobs.run_args(grid, w, "teacher"))
    assert "alpha" not in args
    assert json.loads(args["regularizer"]) == {
        "name": "maxsup",
        "lam": 0.1,
        "lam_end": 0.2,
    }
    student = w | {"sarch": "mlp128", "xfer": "n50", "seed": "0"}
    args = flags(
        jobs.run_args(grid, student | {"obj": "dkd-a1-b8-w5-h0-T"}, "students")
    )
    assert json.loads(args["objective"])["warmup"] == 5
    assert "objective" not in flags(
        jobs.run_args(grid, student | {"obj": "T"}, "students")
    )
    assert flags(jobs.run_args(grid, w | {"reg": "a0.1"}, "teacher"))["alpha"] == "0.1"


@pytest.mark.parametrize(
    "run, message",
    [
        (
            {"regularizers": ["nope"]},
            r"run.regularizers\[0\].name: unknown regularizer",
        ),
        (
            {"regularizers": [{"name": "ls", "alpha": 0.1}]},
            r"run.regularizers\[0\]: LS",
        ),
        ({"objectives": [{"name": "kd", "T": 2}]}, r"run.objectives\[0\].T: unknown"),
        (
            {"objectives": ["kd", "kd"]},
            r"run.objectives\[1\]: KD is run.objectives\[0\]",
        ),
        ({"alphas": [], "regularizers": []}, "no teacher"),
    ],
)
def test_bad_methods_stop_with_one_line_naming_the_key(run, message):
    with pytest.raises(ConfigError, match=message):
        grid_of(".test/config/config.yaml", {"run": run})


def flags(args: str) -> dict[str, str]:
    """`--flag value ...` as {flag: value}, values of several words joined by spaces."""
    out: dict[str, list[str]] = {}
    for word in shlex.split(args):
        if word.startswith("--"):
            key = word[2:]
            out[key] = []
        else:
            out[key].append(word)
    return {k: " ".join(v) for k, v in out.items()}


def test_teacher_args(tiny):
    w = {"task": "fmnist", "tarch": "mlp128", "reg": "a0.1", "tseed": "1"}
    args = flags(jobs.run_args(tiny, w, "teacher"))
    assert args.pop("hp") == json.dumps(tiny.tasks["fmnist"]["teacher"], sort_keys=True)
    augment = json.dumps(tiny.tasks["fmnist"]["augment"], sort_keys=True)
    assert args.pop("augment") == augment
    assert args == {
        "task": "fmnist",
        "arch": "mlp128",
        "alpha": "0.1",
        "seed": "1",
        "loader": "torchvision",
    }


def test_sweep_args_leave_the_transfer_set_to_the_path(tiny):
    w = PAIR | {"reg": "a0", "tseed": "0", "seed": "0", "obj": "T"}
    args = flags(jobs.run_args(tiny, w, "students"))
    recipe = json.loads(args.pop("hp"))
    assert "transfer" not in recipe and recipe["selection"] == "best_val"
    args.pop("augment")
    assert args == {
        "task": "fmnist",
        "arch": "mlp128",
        "T": "1 3",
        "seed": "0",
        "transfer": "n50",
        "loader": "torchvision",
    }
    assert flags(jobs.run_args(tiny, w | {"T": "3"}, "student"))["T"] == "3"


def test_paper_args_start_from_imported_and_earlier_models(paper):
    cub = {"task": "cub200", "tarch": "resnet50", "reg": "a0.1", "tseed": "0"}
    args = flags(jobs.run_args(paper, cub, "teacher"))
    assert args["init"] == "results/imagenet/teacher_resnet50_a0.1_s0/model.pt"
    assert args["nondeterministic"] == "" and "pretrained" not in args
    student = cub | {"sarch": "resnet18", "xfer": "all", "T": "1", "seed": "0"}
    student |= {"obj": "T"}
    args = flags(jobs.run_args(paper, student, "student"))
    assert args["init"] == "resources/weights/resnet18-torchvision.pt"
    assert jobs.threads(paper, cub, "teacher") == 8  # 1 process x 8 cpus
    assert jobs.gpus(paper, {"task": "imagenet"}, "student") == 8


def test_pretrained_teacher_is_evaluated_not_trained():
    grid = grid_of(
        "config/paper.yaml",
        {"tasks": {"imagenet": {"teacher_weights": {"0.0": "torchvision"}}}},
    )
    w = {"task": "imagenet", "tarch": "resnet50", "reg": "a0", "tseed": "0"}
    args = flags(jobs.run_args(grid, w, "teacher"))
    assert args["init"] == "resources/weights/resnet50-torchvision.pt"
    assert args["pretrained"] == ""
    assert init_path(grid.config, "teacher", w | {"reg": "a0.1"}, "0.1") is None


def test_init_specs():
    assert InitSpec.parse("task:imagenet") == InitSpec("task", "imagenet")
    assert InitSpec.parse("weights:torchvision") == InitSpec("weights", "torchvision")
    assert InitSpec.parse(None) is None
    with pytest.raises(ValueError, match="not task:<name>"):
        InitSpec.parse("file:x")


def test_data_args(paper, tiny):
    assert jobs.prepare_args(paper, {"task": "imagenet"}) == (
        "--dataset imagefolder --root /data/imagenet --split-seed 0 "
        "--val-per-class 10 --expect-classes 1000 --expect-train 1281167 "
        "--expect-test 50000"
    )
    assert jobs.prepare_args(tiny, {"task": "fmnist"}) == (
        "--dataset fashion_mnist --root /usr/share/datasets/fashion-mnist "
        "--split-seed 0 --val-size 500 --train-size 2000 --test-size 1000"
    )
    assert jobs.subset_args(paper, {"task": "imagenet"}) == (
        "--classes 266 267 833 --train-per-class 150 --test-per-class 50"
    )
    assert paper.dataset({"task": "cub200"}) == "resources/data/cub200/dataset.json"
    assert paper.penultimate_data({"task": "imagenet"}) == (
        "resources/data/imagenet/penultimate.json"
    )
    assert (
        tiny.penultimate_data({"task": "fmnist"}) == "resources/data/fmnist/dataset.npz"
    )
    assert jobs.weights_args(paper, {"name": "resnet50-torchvision"}) == (
        "/data/weights/resnet50-0676ba61.pth --arch resnet50 --source torchvision"
    )
    assert jobs.weights_stamp(paper, {"name": "resnet50-torchvision"}) == "missing"


def test_figure_args_name_rows_by_their_runs(tiny):
    w = {"task": "fmnist", "tarch": "mlp128"}
    assert jobs.figure_args(tiny, w | {"panel": "teachers"}) == (
        "--title 'Penultimate layer of the mlp128 teachers (fmnist, seed 0)'"
    )
    assert jobs.figure_args(tiny, w | {"panel": "mlp128_n50"}) == (
        "--title 'Penultimate layer of mlp128 "
        "students of mlp128 (fmnist, transfer set n50, seed 0)'"
    )


def test_nmt_args():
    grid = grid_of("config/config.yaml")
    w = {"ntask": "libreoffice", "pair": "en_de", "alpha": "0", "tseed": "0"}
    teacher = flags(jobs.nmt_run_args(grid, w, "teacher"))
    assert "kd" not in json.loads(teacher.pop("hp"))
    assert teacher == {
        "task": "libreoffice",
        "pair": "en_de",
        "alpha": "0",
        "seed": "0",
    }
    student = flags(jobs.nmt_run_args(grid, w, "student"))
    assert json.loads(student["hp"])["kd"]["topk"] == 4 and student["T"] == "1 2 3 64"
    score = flags(jobs.nmt_score_args(grid, w))
    assert score["data"] == "resources/data/nmt_libreoffice_en_de/prepared"
    assert json.loads(score["gen"])["beam"] == 1
    prepare = flags(jobs.nmt_prepare_args(grid, w))
    assert prepare["vocab-size"] == "1000"
    assert json.loads(prepare["corpus"])["kind"] == "libreoffice"


def test_report_items():
    delta = report_item("delta", "results/tables/x_delta_summary.html")
    assert delta["category"] == "1. Teacher regularizer benefit Δ(T)"
    assert delta["labels"]["item"] == "2 summary"
    assert report_item("delta", "results/tables/x_delta.html")["labels"]["item"] == (
        "3 table"
    )
    headline = report_item("delta", "results/tables/x_delta_headline.html")
    assert headline["labels"]["item"] == "1 answer"
    sweep = report_item("student", "m.json", T="64")
    assert sweep["caption"] == "../report/metrics.rst"
    assert sweep["labels"] == {
        "task": "{task}",
        "arch": "{tarch} → {sarch}",
        "transfer": "{xfer}",
        "teacher": "{reg}",
        "objective": "{obj}",
        "T": "64",
        "seed": "{seed}",
    }
    assert report_item("nmt_student", "m.json", T="2")["labels"]["run"] == (
        "student T=2"
    )
    assert report_item("diffusion", "d.png")["labels"]["kind"] == "figure"
    with pytest.raises(ValueError):
        report_item("nope", "x")
