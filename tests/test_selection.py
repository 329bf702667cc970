"""Model selection `best_val`: the reported epoch is the one with the highest
VALIDATION top-1, and `top1` is that epoch's TEST top-1 (never chosen on test)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_toy_npz
from lskd.models import checkpoint
from lskd.models.registry import build_model
from lskd.train.distributed import Context
from lskd.train.evaluation import summarise
from lskd.train.history import record_epoch
from lskd.train.job import RunSpec, train_teacher
from lskd.train.recipe import Recipe

CPU = Context(rank=0, world=1, device=torch.device("cpu"))
# Test points: two of class 0 at (1, 0), two of class 1 at (0, 1).
TEST = [(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]),
         torch.tensor([0, 0, 1, 1]))]  # fmt: skip
# Bias-free linear classifiers and their test top-1 on TEST, by hand:
WEIGHTS = {
    "half": [[1.0, 1.0], [0.0, 0.0]],  # every point -> class 0: 50 %
    "swapped": [[0.0, 1.0], [1.0, 0.0]],  # every point -> the other class: 0 %
    "right": [[1.0, 0.0], [0.0, 1.0]],  # every point -> its class: 100 %
}
TEST_TOP1 = {"half": 50.0, "swapped": 0.0, "right": 100.0}


def _select(selection: str, val_top1: list[float], states: list[str]):
    """Record one epoch per (val_top1, weights) as `fit` does, then `summarise`."""
    model = nn.Linear(2, 2, bias=False)
    history: list[dict] = []
    best = None
    for epoch, (val, name) in enumerate(zip(val_top1, states, strict=True), 1):
        with torch.no_grad():
            model.weight.copy_(torch.tensor(WEIGHTS[name]))
        entry = {
            "epoch": epoch,
            "val_top1": val,
            "val_top5": 100.0,
            "images_per_s": 1.0,
        }
        best = record_epoch(history, best, entry, model)
    recipe = Recipe.from_dict(
        {"epochs": len(states), "batch_size": 1, "lr": 0.1, "selection": selection}
    )
    metrics, state = summarise(model, best, history, TEST, recipe, CPU, 0.0)
    return metrics, state


def test_best_val_reports_the_best_validation_epoch_not_the_best_test_one():
    # Epoch 2 has the best validation top-1 (70) but the worst test top-1 (0 %); the
    # last epoch has the best test top-1 (100 %): selecting on test would pick it.
    metrics, state = _select(
        "best_val", [50.0, 70.0, 60.0], ["half", "swapped", "right"]
    )
    assert metrics["chosen_epoch"] == 2
    assert metrics["top1"] == TEST_TOP1["swapped"] == 0.0
    assert metrics["best"]["epoch"] == 2 and metrics["best"]["val_top1"] == 70.0
    assert metrics["best"]["test_top1"] == 0.0
    assert metrics["last"]["epoch"] == 3 and metrics["last"]["test_top1"] == 100.0
    assert torch.equal(state["weight"], torch.tensor(WEIGHTS["swapped"]))


def test_best_val_keeps_the_first_of_equal_validation_epochs():
    metrics, _ = _select("best_val", [70.0, 70.0, 60.0], ["swapped", "right", "half"])
    assert metrics["chosen_epoch"] == 1 and metrics["top1"] == 0.0


def test_last_reports_the_last_epoch():
    metrics, state = _select("last", [50.0, 70.0, 60.0], ["half", "right", "swapped"])
    assert metrics["chosen_epoch"] == 3 and metrics["top1"] == 0.0
    assert metrics["best"]["test_top1"] == 100.0  # recorded, not reported
    assert torch.equal(state["weight"], torch.tensor(WEIGHTS["swapped"]))


def test_a_best_val_run_reports_and_saves_its_best_validation_epoch(tmp_path):
    """A real run: chosen_epoch is the (first) epoch of highest val_top1 in the
    history, top1 is that epoch's test top-1, and model.pt holds its weights."""
    data = make_toy_npz(tmp_path / "toy.npz", 300, 60)
    spec = RunSpec(
        task="toy", data=data, arch="mlp128", seed=0,
        recipe=Recipe.from_dict(
            {"epochs": 4, "batch_size": 50, "lr": 0.5, "selection": "best_val"}),
        model_out=tmp_path / "run" / "model.pt",
        metrics_out=tmp_path / "run" / "metrics.json",
    )  # fmt: skip
    train_teacher(spec, alpha=0.0)
    metrics = json.loads(spec.metrics_out.read_text())
    vals = [h["val_top1"] for h in metrics["history"]]
    assert metrics["chosen_epoch"] == 1 + vals.index(max(vals))
    assert metrics["best"]["epoch"] == metrics["chosen_epoch"]
    assert metrics["top1"] == metrics["best"]["test_top1"]
    model = build_model("mlp128", 10, 1, 28)
    model.load_state_dict(checkpoint.load_model_file(spec.model_out)["state_dict"])
    with np.load(data) as npz:
        x = torch.from_numpy(npz["images_test"]).float() / 255
        y = torch.from_numpy(npz["labels_test"])
    with torch.no_grad():
        predicted = model.eval()((x - 0.3) / 0.3).argmax(1)
    top1 = 100.0 * (predicted == y).sum().item() / len(y)
    assert metrics["top1"] == pytest.approx(top1)
