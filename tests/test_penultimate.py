"""Penultimate-layer extraction (`lskd.analysis.penultimate.extract`) on a saved model
and a toy dataset, against features, logits and classifier rows recomputed outside
lskd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_toy_npz
from lskd.analysis.penultimate import extract
from lskd.data.fashion_mnist import CLASS_NAMES
from lskd.models import checkpoint
from lskd.models.registry import build_model

CLASSES = [6, 0, 7]  # not 0, 1, 2: the official script's bias rows would differ
PER_CLASS = {"train": 5, "test": 2}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """A saved mlp128 with distinct biases (bias[k] = k + 1), a toy dataset and what
    `extract` wrote from them."""
    base = tmp_path_factory.mktemp("penultimate")
    data = make_toy_npz(base / "toy.npz", 200, 50)
    torch.manual_seed(0)
    model = build_model("mlp128", 10, 1, 28)
    with torch.no_grad():
        model.fc.bias.copy_(torch.arange(1.0, 11.0))
    model.eval()
    path = base / "model.pt"
    checkpoint.save_model(
        model, path, arch="mlp128", num_classes=10, in_channels=1,
        class_names=list(CLASS_NAMES), role="teacher", alpha=0.0, T=None, seed=0,
    )  # fmt: skip
    out = base / "penultimate.npz"
    extract(path, data, CLASSES, PER_CLASS["train"], PER_CLASS["test"], out)
    with np.load(out) as npz:
        fields = {k: npz[k] for k in npz.files}
    return model, data, fields


def test_classifier_rows_are_those_of_the_configured_classes(extracted):
    model, _, fields = extracted
    weight = model.fc.weight.detach().numpy()
    np.testing.assert_array_equal(fields["weight"], weight[CLASSES])
    # bias[k] = k + 1: rows 6, 0, 7 give 7, 1, 8 (rows 0, 1, 2 would give 1, 2, 3)
    np.testing.assert_array_equal(fields["bias"], [7.0, 1.0, 8.0])
    np.testing.assert_array_equal(fields["classes"], CLASSES)
    assert list(fields["class_names"]) == [CLASS_NAMES[c] for c in CLASSES]


@pytest.mark.parametrize("split", ["train", "test"])
def test_features_are_the_classifier_inputs_of_the_first_images(extracted, split):
    model, data, fields = extracted
    n = PER_CLASS[split]
    with np.load(data) as npz:
        labels = npz[f"labels_{split}"]
        # the first n images of each configured class, in dataset order
        idx = np.concatenate([np.flatnonzero(labels == c)[:n] for c in CLASSES])
        x = torch.from_numpy(npz[f"images_{split}"][idx]).float() / 255
    x = (x - 0.3) / 0.3  # the toy dataset's mean and std
    with torch.no_grad():
        hidden = model.features(x).numpy()
        logits = model(x).numpy()
    np.testing.assert_allclose(fields[f"{split}_features"], hidden, rtol=1e-5)
    np.testing.assert_allclose(fields[f"{split}_logits"], logits, rtol=1e-5)
    np.testing.assert_array_equal(fields[f"{split}_labels"], np.repeat([0, 1, 2], n))
    # the stored rows reproduce the logits of the three classes from the features
    w, b = fields["weight"], fields["bias"]
    np.testing.assert_allclose(
        fields[f"{split}_features"] @ w.T + b, logits[:, CLASSES], rtol=1e-4, atol=1e-5
    )
