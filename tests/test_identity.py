"""The run identity end to end: a method registered in a test file alone runs as a grid
axis and a fused sweep (nothing else is edited), and a (regularizer, objective) pair
goes from the plan's path and flags through the CLI into metrics.json and back to the
same choices."""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from conftest import REPO, make_toy_npz
from lskd.cli.main import main
from lskd.identity import Choice, RunId, objective_token
from lskd.objectives import OBJECTIVES
from lskd.objectives.kd import kd_loss
from lskd.objectives.method import Objective, Param
from lskd.plan import jobs
from lskd.plan.config import validate_config
from lskd.plan.grid import Grid
from lskd.plan.paths import STUDENT, TEACHER

HP = {"epochs": 2, "batch_size": 50, "lr": 0.05, "eval_batch_size": 500}


class HalfKD(Objective):
    """A toy objective: `scale` times the KD loss (defined here, registered below)."""

    name = "half_kd"
    title = "half-KD"
    params = (Param("scale", float, 0.5, "s", "s", "factor on KD", low=0.0),)

    def loss(self, student, teacher, y, T, epoch, epochs):
        return self.p["scale"] * kd_loss(student, teacher, T)


@pytest.fixture
def toy_objective():
    OBJECTIVES.add(HalfKD)  # the one registration line a new method needs
    yield HalfKD
    OBJECTIVES.remove(HalfKD.name)


def grid_of(overlay: dict) -> Grid:
    """The CI config with `overlay`, students on 20 images per class (the toy data)."""
    config = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
    overlay = overlay | {"tasks": {"fmnist": {"student": {"transfer": [20]}}}}
    update_config(config, copy.deepcopy(overlay))
    return Grid(validate_config(config))


def run_flags(grid: Grid, w: dict, role: str) -> list[str]:
    """The plan's flags of one job as an argv list (the rule's shell splits them)."""
    return shlex.split(jobs.run_args(grid, w, role))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_toy_npz(tmp_path_factory.mktemp("data") / "dataset.npz")


def _train_teacher(grid: Grid, w: dict, data: Path, root: Path) -> Path:
    run = root / TEACHER.format(**w)
    argv = ["train", *run_flags(grid, w, "teacher"), "--data", str(data)]
    argv += ["--model-out", str(run / "model.pt"), "--metrics-out", str(run / "m.json")]
    hp = argv.index("--hp") + 1
    argv[hp] = json.dumps(HP)  # the tiny recipe instead of the config's
    assert main(argv) == 0
    return run


def _distill(grid: Grid, w: dict, data: Path, teacher: Path, root: Path) -> list[Path]:
    runs = [root / STUDENT.format(**w, T=T) for T in grid.temps]
    argv = ["distill", *run_flags(grid, w, "students"), "--data", str(data)]
    argv[argv.index("--hp") + 1] = json.dumps(HP)
    argv += ["--teacher", str(teacher / "model.pt"), "--model-out"]
    argv += [str(r / "model.pt") for r in runs] + ["--metrics-out"]
    argv += [str(r / "metrics.json") for r in runs]
    assert main(argv) == 0
    return runs


def test_a_method_registered_in_a_test_file_runs_as_a_fused_sweep(
    toy_objective, data, tmp_path
):
    grid = grid_of({"run": {"objectives": [{"name": "half_kd", "scale": 0.25}]}})
    (token,) = grid.objs
    assert token == "halfkd-s0.25-T"
    w = {"task": "fmnist", "tarch": "mlp128", "reg": "a0.1", "tseed": "0"}
    teacher = _train_teacher(grid, w, data, tmp_path)
    w |= {"sarch": "mlp128", "xfer": "n20", "seed": "0", "obj": token}
    runs = _distill(grid, w, data, teacher, tmp_path)
    assert [r.name for r in runs] == [
        "student_mlp128_n20_halfkd-s0.25-T1_s0",
        "student_mlp128_n20_halfkd-s0.25-T3_s0",
    ]
    for run, T in zip(runs, (1.0, 3.0), strict=True):
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["objective"] == {"name": "half_kd", "scale": 0.25}
        assert metrics["fused_temperatures"] == [1.0, 3.0] and metrics["T"] == T
        who = RunId.from_metrics(metrics, str(run))
        assert who.objective == grid.objective(w)


def test_identity_round_trips_through_path_cli_and_metrics(data, tmp_path):
    grid = grid_of(
        {
            "run": {
                "regularizers": [{"name": "maxsup", "lam": 0.1, "lam_end": 0.2}],
                "objectives": [{"name": "dkd", "beta": 2.0, "warmup": 1}],
            }
        }
    )
    reg, obj = "maxsup-l0.1-e0.2", "dkd-a1-b2-w1-h0-T"
    assert reg in grid.regs and grid.objs == [obj]
    w = {"task": "fmnist", "tarch": "mlp128", "reg": reg, "tseed": "1"}
    teacher = _train_teacher(grid, w, data, tmp_path)
    assert teacher.name == f"teacher_mlp128_{reg}_s1"
    recorded = json.loads((teacher / "m.json").read_text())
    assert recorded["alpha"] is None
    who = RunId.from_metrics(recorded, "teacher")
    assert (who.role, who.regularizer, who.seed) == ("teacher", grid.regularizer(w), 1)
    w |= {"sarch": "mlp128", "xfer": "n20", "seed": "1", "obj": obj}
    for run in _distill(grid, w, data, teacher, tmp_path):
        who = RunId.from_metrics(json.loads((run / "metrics.json").read_text()), "s")
        assert who.regularizer == grid.regularizer(w)
        assert who.objective == grid.objective(w)
        assert objective_token(who.objective) == obj
        assert (who.teacher_seed, who.seed, who.transfer) == (1, 1, "n20")
        assert who.regularizer.label == "MaxSup λ = 0.1→0.2"


def test_old_metrics_read_as_ce_or_ls_teachers_and_kd_students():
    old = {"role": "student", "task": "t", "arch": "a", "alpha": 0.1, "T": 2.0}
    old |= {"seed": 0, "teacher": {"arch": "b", "alpha": 0.1, "seed": 0}}
    who = RunId.from_metrics(old, "old")
    assert who.regularizer == Choice.parse(
        {"name": "ls", "alpha": 0.1}, "regularizer", ""
    )
    assert who.objective == Choice.parse("kd", "objective", "")
    teacher = RunId.from_metrics(
        {"role": "teacher", "task": "t", "arch": "b", "alpha": 0, "seed": 3}, "t"
    )
    assert teacher.regularizer.name == "ce" and teacher.regularizer.token == "a0"
