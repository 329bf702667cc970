"""The fused temperature sweep (lskd.train.loop with K students): bit-identical to
separate jobs, resumable, same outputs and paths. Preemption (SIGTERM at a chosen
step, exit 75) is tested in tests/test_preempt.py, random kills in
tests/test_kill_resume.py."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lskd.objectives.kd
from lskd.cli.main import main
from lskd.data.arrays import Arrays, save_arrays
from lskd.data.fashion_mnist import CLASS_NAMES
from lskd.errors import CheckpointError
from lskd.models import checkpoint
from lskd.models.registry import MODELS
from lskd.objectives.kd import kd_loss
from lskd.train import resume
from lskd.train.job import RunSpec, distill_student, distill_students, train_teacher
from lskd.train.recipe import Recipe

TEMPS = [1.0, 4.0, 64.0]
EPOCHS, BATCH, TRAIN = 3, 64, 400
STEPS = TRAIN // BATCH  # 6 steps per epoch (drop_last)


class Crash(Exception):
    """Stands in for a job killed mid-epoch."""


def dropout_mlp(k: int, c: int, side: int) -> nn.Module:
    """A student with dropout, so the per-student RNG streams matter."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(c * side * side, 64),
        nn.BatchNorm1d(64),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(64, k),
    )


@pytest.fixture(scope="module", autouse=True)
def _env():
    """A dropout arch in the registry; determinism restored afterwards."""
    flag = torch.are_deterministic_algorithms_enabled()
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    MODELS["mlpdrop"] = dropout_mlp
    yield
    del MODELS["mlpdrop"]
    torch.use_deterministic_algorithms(flag)
    if cublas is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    rng = np.random.default_rng(1)
    images, labels = {}, {}
    for split, n in {"train": TRAIN, "val": 60, "test": 60}.items():
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 100, (n, 1, 28, 28), dtype=np.uint8)
        for i, c in enumerate(y):
            x[i, 0, 2 * c : 2 * c + 3] = 255
        images[split], labels[split] = x, y.astype(np.int64)
    path = tmp_path_factory.mktemp("data") / "dataset.npz"
    save_arrays(Arrays(images, labels, CLASS_NAMES, (0.3,), (0.3,)), path)
    return path


def _spec(data: Path, out: Path, arch: str, epochs: int = EPOCHS) -> RunSpec:
    recipe = Recipe.from_dict(
        {
            "epochs": epochs,
            "batch_size": BATCH,
            "lr": 0.05,
            "nesterov": True,
            "weight_decay": 5e-4,
            "warmup_epochs": 0.5,
            "selection": "best_val",
        }
    )
    return RunSpec(
        task="toy",
        data=data,
        arch=arch,
        seed=3,
        recipe=recipe,
        model_out=out / "model.pt",
        metrics_out=out / "metrics.json",
        augment={"pad": 2, "hflip": True},
    )


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory) -> Path:
    spec = _spec(data, tmp_path_factory.mktemp("teacher"), "mlp128", epochs=1)
    train_teacher(spec, alpha=0.1)
    return spec.model_out


def _sweep_specs(data: Path, root: Path) -> list[RunSpec]:
    return [_spec(data, root / f"student_T{T:g}", "mlpdrop") for T in TEMPS]


@pytest.fixture(scope="module")
def separate(data, teacher, tmp_path_factory) -> list[RunSpec]:
    root = tmp_path_factory.mktemp("separate")
    specs = _sweep_specs(data, root)
    for spec, T in zip(specs, TEMPS, strict=True):
        distill_student(spec, teacher, T)
    return specs


@pytest.fixture(scope="module")
def fused(data, teacher, tmp_path_factory) -> list[RunSpec]:
    specs = _sweep_specs(data, tmp_path_factory.mktemp("fused"))
    distill_students(specs, teacher, TEMPS)
    return specs


def assert_same_run(got: RunSpec, expected: RunSpec) -> None:
    """Same weights bit for bit, same model-file metadata, same metrics (but time)."""
    m_got = checkpoint.load_model_file(got.model_out)
    m_exp = checkpoint.load_model_file(expected.model_out)
    w_got, w_exp = m_got.pop("state_dict"), m_exp.pop("state_dict")
    assert m_got == m_exp
    assert w_got.keys() == w_exp.keys()
    for name in w_exp:
        assert torch.equal(w_got[name], w_exp[name]), name
    a = json.loads(got.metrics_out.read_text())
    b = json.loads(expected.metrics_out.read_text())
    for key in ("top1", "top5", "chosen_epoch", "last", "best", "alpha", "T"):
        assert a[key] == b[key], key
    for key in ("teacher", "config", "rng_seed", "selection", "epochs", "role"):
        assert a[key] == b[key], key
    for h_a, h_b in zip(a["history"], b["history"], strict=True):
        timing = ("images_per_s",)
        assert {k: v for k, v in h_a.items() if k not in timing} == {
            k: v for k, v in h_b.items() if k not in timing
        }


def test_fused_sweep_equals_separate_jobs(fused, separate):
    for got, expected in zip(fused, separate, strict=True):
        assert_same_run(got, expected)
    # the students really differ (T matters), and dropout was active
    w = [checkpoint.load_model_file(s.model_out)["state_dict"] for s in fused]
    assert not torch.equal(w[0]["1.weight"], w[1]["1.weight"])


def test_dropout_draws_would_interleave_without_streams():
    """Sanity check of the premise: two dropout forwards in a row differ, so sharing
    one RNG stream among the students would change their masks."""
    torch.manual_seed(0)
    drop = nn.Dropout(0.5).train()
    x = torch.ones(1000)
    assert not torch.equal(drop(x), drop(x))


def test_outputs_and_paths_are_the_same_either_way(fused, separate):
    for got, expected in zip(fused, separate, strict=True):
        assert got.model_out.relative_to(got.model_out.parents[1]) == (
            expected.model_out.relative_to(expected.model_out.parents[1])
        )
        names = sorted(p.name for p in got.model_out.parent.iterdir())
        assert names == sorted(p.name for p in expected.model_out.parent.iterdir())
        assert names == ["metrics.json", "model.pt"]  # no last.pt / last_sweep.pt
        a = json.loads(got.metrics_out.read_text())
        b = json.loads(expected.metrics_out.read_text())
        assert set(a) == set(b) | {"fused_temperatures"}
        assert a["fused_temperatures"] == TEMPS


def _crash_after(calls: list, n: int | None):
    def counted(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise Crash(f"killed at KD step {n}")
        return kd_loss(*args, **kwargs)

    return counted


def test_fused_resume_equals_uninterrupted(fused, data, teacher, tmp_path, monkeypatch):
    specs = _sweep_specs(data, tmp_path)
    calls: list = []
    crash = (2 * STEPS + 1) * len(TEMPS) - 1  # epoch 3, step 1, mid-step
    monkeypatch.setattr(lskd.objectives.kd, "kd_loss", _crash_after(calls, crash))
    with pytest.raises(Crash):
        distill_students(specs, teacher, TEMPS)
    last = specs[0].model_out.parent / "last_sweep.pt"
    assert checkpoint.load(last)["epoch"] == 2
    assert not any(s.model_out.exists() or s.metrics_out.exists() for s in specs)

    calls.clear()
    monkeypatch.setattr(lskd.objectives.kd, "kd_loss", _crash_after(calls, None))
    distill_students(specs, teacher, TEMPS)
    assert len(calls) == STEPS * len(TEMPS)  # only epoch 3 was trained again
    assert not last.exists()
    for got, expected in zip(specs, fused, strict=True):
        assert_same_run(got, expected)


def test_last_sweep_pt_for_other_temperatures_is_ignored(data, teacher, tmp_path):
    specs = _sweep_specs(data, tmp_path)[:2]
    last = specs[0].model_out.parent / "last_sweep.pt"
    recipe = specs[0].recipe.to_dict()
    state = {"epoch": 1, "recipe": recipe, "temperatures": [9.0, 8.0]}
    checkpoint.save({"format": resume.FORMAT, **state}, last)
    out = distill_students(specs, teacher, TEMPS[:2])
    assert [len(m["history"]) for m in out] == [EPOCHS, EPOCHS]
    assert not last.exists()


def test_corrupt_last_sweep_pt_stops_with_one_line(data, teacher, tmp_path):
    specs = _sweep_specs(data, tmp_path)[:2]
    last = specs[0].model_out.parent / "last_sweep.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="last_sweep.pt: corrupt or truncated"):
        distill_students(specs, teacher, TEMPS[:2])
    assert not any(s.model_out.exists() or s.metrics_out.exists() for s in specs)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--T", "1", "2", "--model-out", "a.pt"], "one path per --T"),
        (["--T", "2", "2", "--model-out", "a.pt", "b.pt"], "distinct values > 0"),
    ],
)
def test_cli_rejects_bad_sweeps(data, teacher, tmp_path, capsys, extra, message):
    hp = json.dumps({"epochs": 1, "batch_size": BATCH, "lr": 0.05})
    metrics = [str(tmp_path / f"m{i}.json") for i in range(2)]
    args = ["distill", "--task", "toy", "--data", str(data), "--arch", "mlp128"]
    args += ["--seed", "0", "--hp", hp, "--teacher", str(teacher), *extra]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--metrics-out", *metrics])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
