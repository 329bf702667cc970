"""Training loop end to end on a tiny dataset: outputs, resume, KD step, schedules."""

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lskd.train.job
from conftest import run_cli, train_argv
from lskd.data.arrays import Arrays, save_arrays
from lskd.data.fashion_mnist import CLASS_NAMES
from lskd.errors import ConfigError
from lskd.identity import Choice
from lskd.models import checkpoint
from lskd.models.registry import build_model
from lskd.objectives.kd import kd_loss
from lskd.objectives.ls import ls_cross_entropy
from lskd.train.job import RunSpec, distill_student, train_teacher, versions
from lskd.train.optim import make_scheduler
from lskd.train.recipe import Recipe
from lskd.train.steps import FrozenTeacher, student_step, teacher_step
from test_stability import softmax, stability

N = {"train": 500, "val": 50, "test": 50}
BATCH = 64
STEPS_PER_EPOCH = N["train"] // BATCH  # drop_last: 7 steps of 64 images


class Crash(Exception):
    """Stands in for a job killed mid-epoch."""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """600 learnable 28x28 images: class c has a bright band at rows 2c..2c+2."""
    rng = np.random.default_rng(0)
    images, labels = {}, {}
    for split, n in N.items():
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 100, (n, 1, 28, 28), dtype=np.uint8)
        for i, c in enumerate(y):
            x[i, 0, 2 * c : 2 * c + 3] = 255
        images[split], labels[split] = x, y.astype(np.int64)
    arrays = Arrays(images, labels, CLASS_NAMES, (0.3,), (0.3,))
    path = tmp_path_factory.mktemp("data") / "dataset.npz"
    save_arrays(arrays, path)
    return path


def _spec(data: Path, out: Path, epochs: int, arch: str = "mlp128") -> RunSpec:
    return RunSpec(
        task="toy",
        data=data,
        arch=arch,
        seed=0,
        recipe=Recipe.from_dict({"epochs": epochs, "batch_size": BATCH, "lr": 0.05}),
        model_out=out / "model.pt",
        metrics_out=out / "metrics.json",
        augment={"pad": 2},
    )


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory) -> tuple[RunSpec, dict]:
    spec = _spec(data, tmp_path_factory.mktemp("teacher"), epochs=2)
    return spec, train_teacher(spec, alpha=0.1)


# --- one teacher run ----------------------------------------------------------------


def test_teacher_metrics(teacher):
    spec, returned = teacher
    metrics = json.loads(spec.metrics_out.read_text())
    assert metrics["top1"] == returned["top1"]
    assert (metrics["role"], metrics["alpha"], metrics["T"]) == ("teacher", 0.1, None)
    assert metrics["selection"] == "last"
    assert metrics["top1"] == metrics["last"]["test_top1"]
    assert metrics["top5"] == metrics["last"]["test_top5"]
    assert metrics["chosen_epoch"] == metrics["last"]["epoch"] == 2
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["history"][0]["lr"] == 0.05  # cosine, no warm-up: starts at peak
    assert metrics["history"][1]["lr"] < 0.05
    assert metrics["best"]["val_top1"] == max(h["val_top1"] for h in metrics["history"])
    assert metrics["config"]["recipe"] == spec.recipe.to_dict()
    assert metrics["versions"] == versions()
    assert metrics["versions"]["torch"] == torch.__version__
    assert 0 <= metrics["top1"] <= metrics["top5"] <= 100


def test_teacher_outputs_and_no_last_pt(teacher):
    spec, _ = teacher
    assert sorted(p.name for p in spec.model_out.parent.iterdir()) == [
        "metrics.json",
        "model.pt",
    ]
    meta = checkpoint.load_model_file(spec.model_out)
    assert (meta["arch"], meta["num_classes"], meta["role"]) == (
        "mlp128",
        10,
        "teacher",
    )
    assert (meta["alpha"], meta["seed"], meta["in_channels"]) == (0.1, 0, 1)
    assert meta["class_names"] == list(CLASS_NAMES)


def _test_logits(model_out: Path, data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Test-split logits of a saved model, from the raw arrays, outside the engine."""
    model = build_model("mlp128", 10, 1, 28)
    model.load_state_dict(checkpoint.load_model_file(model_out)["state_dict"])
    with np.load(data) as npz:
        x = torch.from_numpy(npz["images_test"]).float() / 255
        y = torch.from_numpy(npz["labels_test"])
    with torch.no_grad():
        return model.eval()((x - 0.3) / 0.3), y


def test_reported_top1_matches_saved_model(teacher, data):
    # recompute the test metrics from model.pt and the raw arrays, outside the engine
    spec, metrics = teacher
    logits, y = _test_logits(spec.model_out, data)
    top1 = 100.0 * (logits.argmax(1) == y).sum().item() / len(y)
    top5 = 100.0 * (logits.topk(5).indices == y[:, None]).any(1).sum().item() / len(y)
    assert metrics["top1"] == pytest.approx(top1)
    assert metrics["top5"] == pytest.approx(top5)
    assert metrics["last"]["test_loss"] == pytest.approx(
        F.cross_entropy(logits, y).item(), rel=1e-5
    )
    # Shen et al.'s stability over every test image, by the direct formula
    direct = stability(softmax(logits.numpy()), y.numpy())
    assert metrics["stability"] == pytest.approx(direct, rel=1e-6)
    assert metrics["one_minus_stability"] == pytest.approx(1 - direct, rel=1e-5)
    assert metrics["last"]["test_stability"] == metrics["stability"]
    assert all(0 < h["val_stability"] <= 1 for h in metrics["history"])
    assert metrics["last"]["val_stability"] == metrics["history"][-1]["val_stability"]


def test_distill_student(teacher, data, tmp_path):
    teacher_spec, _ = teacher
    spec = _spec(data, tmp_path, epochs=1)
    metrics = distill_student(spec, teacher_spec.model_out, T=2.0)
    assert (metrics["role"], metrics["T"], metrics["alpha"]) == ("student", 2.0, 0.1)
    assert metrics["teacher"]["sha256"] == checkpoint.sha256(teacher_spec.model_out)
    assert metrics["teacher"]["path"] == str(teacher_spec.model_out)
    meta = checkpoint.load_model_file(spec.model_out)
    assert (meta["role"], meta["T"], meta["alpha"]) == ("student", 2.0, 0.1)
    assert not (tmp_path / "last.pt").exists()


# --- resume -------------------------------------------------------------------------


def test_val_every_validates_every_nth_and_the_last_epoch(data, tmp_path):
    """val_every = 2 over 5 epochs validates epochs 2, 4 and 5 only; best_val picks
    the highest validation top-1 among them and reports that epoch's test top-1."""
    spec = _spec(data, tmp_path, epochs=5)
    recipe = dataclasses.replace(spec.recipe, val_every=2, selection="best_val")
    metrics = train_teacher(dataclasses.replace(spec, recipe=recipe), alpha=0.0)
    vals = {h["epoch"]: h["val_top1"] for h in metrics["history"]}
    assert [e for e, v in vals.items() if v is not None] == [2, 4, 5]
    best = max((v, -e) for e, v in vals.items() if v is not None)
    assert metrics["chosen_epoch"] == -best[1] == metrics["best"]["epoch"]
    assert metrics["top1"] == metrics["best"]["test_top1"]


def _counting_teacher_step(calls: list, crash_at: int | None):
    real = teacher_step

    def make(*args):
        step = real(*args)

        def counted(*inputs):
            calls.append(1)
            if len(calls) == crash_at:
                raise Crash(f"killed at step {crash_at}")
            return step(*inputs)

        return counted

    return make


def test_resume_is_bit_identical(data, tmp_path, monkeypatch):
    straight = _spec(data, tmp_path / "straight", epochs=3)
    expected = train_teacher(straight, alpha=0.1)

    resumed = _spec(data, tmp_path / "resumed", epochs=3)
    calls: list = []
    crash_at = 2 * STEPS_PER_EPOCH + 1  # first step of epoch 3
    monkeypatch.setattr(
        lskd.train.job, "teacher_step", _counting_teacher_step(calls, crash_at)
    )
    with pytest.raises(Crash):
        train_teacher(resumed, alpha=0.1)
    last = resumed.model_out.parent / "last.pt"
    assert checkpoint.load(last)["epoch"] == 2
    assert not resumed.model_out.exists() and not resumed.metrics_out.exists()

    calls.clear()
    monkeypatch.setattr(
        lskd.train.job, "teacher_step", _counting_teacher_step(calls, None)
    )
    got = train_teacher(resumed, alpha=0.1)
    assert len(calls) == STEPS_PER_EPOCH  # only epoch 3 was trained again
    assert not last.exists()

    for key in ("top1", "top5", "chosen_epoch", "last", "best"):
        assert got[key] == expected[key], key
    for h_got, h_exp in zip(got["history"], expected["history"], strict=True):
        for key in ("epoch", "lr", "train_loss", "train_top1", "val_top1", "val_top5"):
            assert h_got[key] == h_exp[key], key
    w_got = checkpoint.load_model_file(resumed.model_out)["state_dict"]
    w_exp = checkpoint.load_model_file(straight.model_out)["state_dict"]
    assert w_got.keys() == w_exp.keys()
    for name in w_exp:
        assert torch.equal(w_got[name], w_exp[name]), name


def test_last_pt_from_another_recipe_is_ignored(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    other = Recipe.from_dict({"epochs": 9, "batch_size": BATCH, "lr": 0.05})
    checkpoint.save({"epoch": 1, "recipe": other.to_dict()}, out / "last.pt")
    calls: list = []
    monkeypatch.setattr(
        lskd.train.job, "teacher_step", _counting_teacher_step(calls, None)
    )
    metrics = train_teacher(_spec(data, out, epochs=1), alpha=0.1)
    assert len(calls) == STEPS_PER_EPOCH  # epoch 1 trained from scratch
    assert len(metrics["history"]) == 1
    assert not (out / "last.pt").exists()


# --- distillation step --------------------------------------------------------------


@pytest.fixture
def nets() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    return build_model("mlp128", 10, 1, 28), build_model("mlp128", 10, 1, 28)


def test_frozen_teacher_stays_in_eval(nets):
    student, raw_teacher = nets
    frozen = FrozenTeacher(raw_teacher)
    both = nn.ModuleDict({"student": student, "teacher": frozen})
    both.train()
    frozen.train(True)
    assert student.training
    assert not any(m.training for m in raw_teacher.modules())
    assert not any(p.requires_grad for p in frozen.parameters())


def _step(objective, teacher=None):
    """One model's part of a training step as the loop runs it: its forward, then its
    objective against the teacher's logits (a teacher run has none)."""

    def step(model, x, y):
        logits = model(x)
        soft = None if teacher is None else teacher(x)
        return objective(logits, y, soft, 1), logits

    return step


def test_student_step_ignores_labels_and_trains_student_only(nets):
    student, raw_teacher = nets
    frozen = FrozenTeacher(raw_teacher)
    bn = next(m for m in raw_teacher.modules() if isinstance(m, nn.BatchNorm1d))
    stats = bn.running_mean.clone()
    student.train()
    kd = Choice.parse("kd", "objective", "").build()
    step = _step(student_step(kd, 4.0, epochs=1), frozen)
    x = torch.randn(16, 1, 28, 28)
    loss_a, logits = step(student, x, torch.zeros(16, dtype=torch.long))
    loss_b, _ = step(student, x, torch.arange(16) % 10)
    assert loss_a.item() == loss_b.item()
    with torch.no_grad():
        assert loss_a.item() == pytest.approx(
            kd_loss(student(x), raw_teacher(x), 4.0).item(), rel=1e-6
        )
    assert logits.shape == (16, 10)
    loss_a.backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in raw_teacher.parameters())
    assert torch.equal(bn.running_mean, stats)  # eval mode: BN statistics untouched


def test_teacher_step_is_label_smoothing(nets):
    model, _ = nets
    model.eval()
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8)
    ls = Choice.from_alpha(0.1).build()
    loss, logits = _step(teacher_step(ls, epochs=1))(model, x, y)
    assert loss.item() == ls_cross_entropy(logits, y, 0.1).item()
    assert loss.item() != _step(teacher_step(ls, 1))(model, x, y.flip(0))[0].item()


# --- learning-rate schedules --------------------------------------------------------


def _lrs(recipe: Recipe, steps_per_epoch: int) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=recipe.lr)
    sched = make_scheduler(opt, recipe, steps_per_epoch)
    lrs = []
    for _ in range(recipe.epochs * steps_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs + [opt.param_groups[0]["lr"]]


def test_cosine_with_warmup():
    # 10 epochs x 5 steps = 50 iterations, warm-up 2 epochs = 10 iterations.
    # LinearLR(start 1/10): lr_i = 1/10 + (9/10) i/10 for i < 10 (0.1, 0.19, ..., 0.91)
    # then cosine over 40: lr_{10+j} = (1 + cos(pi j / 40)) / 2, reaching 0 at j = 40
    recipe = Recipe.from_dict(
        {"epochs": 10, "batch_size": 1, "lr": 1.0, "warmup_epochs": 2}
    )
    lrs = _lrs(recipe, steps_per_epoch=5)
    expected = [0.1 + 0.09 * i for i in range(10)]
    expected += [(1 + math.cos(math.pi * j / 40)) / 2 for j in range(41)]
    assert lrs == pytest.approx(expected, abs=1e-9)
    steps = np.diff(lrs[:10])
    assert steps == pytest.approx([0.09] * 9)  # linear ramp
    assert max(lrs) == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_cosine_without_warmup():
    lrs = _lrs(
        Recipe.from_dict({"epochs": 4, "batch_size": 1, "lr": 0.2}), steps_per_epoch=3
    )
    expected = [0.1 * (1 + math.cos(math.pi * i / 12)) for i in range(13)]
    assert lrs == pytest.approx(expected, abs=1e-9)


def test_step_schedule():
    # step_epochs=2 x 3 steps/epoch = decay by gamma every 6 iterations
    recipe = Recipe.from_dict(
        {"epochs": 6, "batch_size": 1, "lr": 1.0, "schedule": "step", "step_epochs": 2}
    )
    lrs = _lrs(recipe, steps_per_epoch=3)
    assert lrs == pytest.approx([0.1 ** (i // 6) for i in range(19)], rel=1e-9)


# --- recipe validation --------------------------------------------------------------

BASE = {"epochs": 2, "batch_size": 64, "lr": 0.05}


def test_recipe_from_dict_round_trip():
    recipe = Recipe.from_dict({**BASE, "lr": 1, "nesterov": True}, where="--hp")
    assert recipe.lr == 1 and recipe.nesterov is True
    assert recipe.momentum == 0.9  # default
    assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_recipe_unknown_key():
    with pytest.raises(ConfigError, match=r"^--hp\.lrate: unknown key"):
        Recipe.from_dict({**BASE, "lrate": 0.1}, where="--hp")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("lr", "0.1"),
        ("lr", True),
        ("lr", None),
        ("epochs", 2.5),
        ("epochs", "2"),
        ("batch_size", False),
        ("nesterov", 1),
        ("schedule", 3),
        ("warmup_epochs", [1]),
    ],
)
def test_recipe_wrong_type(key, value):
    with pytest.raises(ConfigError, match=rf"^--hp\.{key}: ") as err:
        Recipe.from_dict({**BASE, key: value}, where="--hp")
    assert repr(value) in str(err.value)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"schedule": "linear"}, "schedule"),
        ({"selection": "best"}, "selection"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
    ],
)
def test_recipe_bad_value(change, key):
    with pytest.raises(ConfigError, match=rf"^--hp\.{key}:"):
        Recipe.from_dict({**BASE, **change}, where="--hp")


def test_recipe_missing_key():
    with pytest.raises(ConfigError, match=r"^--hp\.lr: required key missing"):
        Recipe.from_dict({"epochs": 2, "batch_size": 64}, where="--hp")


def test_two_process_data_parallel_training(data, tmp_path):
    """--gpus 2 on a CPU machine: torchrun + Gloo, rank 0 alone writes the outputs."""
    out = tmp_path / "ddp"
    hp = {"epochs": 1, "batch_size": 32, "lr": 0.05}
    result = run_cli(*train_argv(data, out, hp, "--device", "cpu", "--gpus", "2"))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model.pt"]
    assert result.stderr.count("epoch 1/1") == 1  # only rank 0 logs
    # Two ranks of 32 see 64 images per step: 500 // 2 // 32 = 7 steps per rank.
    assert metrics["train_images_per_s_per_process"] * 2 == pytest.approx(
        metrics["train_images_per_s"]
    )
    # each rank streamed the stability sums of its shard; the all-reduced S is the
    # direct formula over the whole test split
    logits, y = _test_logits(out / "model.pt", data)
    direct = stability(softmax(logits.numpy()), y.numpy())
    assert metrics["stability"] == pytest.approx(direct, rel=1e-6)


def test_step_log_gives_images_per_s_and_etas_by_hand():
    """Epoch 2 of 3, 10 steps per epoch, resumed after step 2 (40 images): 4 more steps
    of 20 images in 8 s are 2 s per step and 80 / 8 = 10 images/s; the epoch has 4
    steps left (8 s), the job those and one more epoch (8 + 10 * 2 = 28 s)."""
    from lskd.train.resume import EpochProgress
    from lskd.train.steplog import StepLog

    now = [100.0]
    p = EpochProgress(epoch=2, lr=0.1, step=2, seen=40)
    line = StepLog(3, 10, p, every_s=5.0, clock=lambda: now[0])
    p.step, p.seen, now[0] = 4, 80, 104.0
    assert line() is None  # 4 s since the start: not due
    p.step, p.seen, now[0] = 6, 120, 108.0
    assert line() == (
        "step 6/10 (epoch 2 of 3): 10 images/s, epoch ETA 0:00:08, job ETA 0:00:28"
    )
    p.step, now[0] = 7, 110.0
    assert line() is None  # 2 s since the last line


def test_training_log_has_progress_lines_inside_epochs(data, tmp_path, monkeypatch):
    """LSKD_LOG_EVERY=0: a line after every step, numbered 1..N in each epoch, the last
    one with nothing left to train."""
    monkeypatch.setenv("LSKD_LOG_EVERY", "0")
    hp = {"epochs": 2, "batch_size": 100, "lr": 0.05}
    result = run_cli(*train_argv(data, tmp_path / "run", hp, "--device", "cpu"))
    assert result.returncode == 0, result.stderr[-3000:]
    found = re.findall(r"step (\d+)/(\d+) \(epoch (\d+) of 2\)", result.stderr)
    steps = int(found[0][1])
    assert [(int(s), int(e)) for s, _, e in found] == [
        (s, e) for e in (1, 2) for s in range(1, steps + 1)
    ]
    assert result.stderr.rstrip().count("job ETA 0:00:00") >= 1
