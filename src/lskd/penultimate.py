"""Penultimate-layer features of three classes, for the projection of PAPER.md §5.2.

The features are the input of the model's final linear layer (captured by a forward
hook), so the same code serves our demo nets and torchvision models. Images are taken in
dataset order without augmentation: the first `train_per_class` training images and the
first `test_per_class` test images of each selected class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lskd import checkpoint
from lskd.atomic import atomic_path
from lskd.data.arrays import Arrays, load_arrays
from lskd.data.batches import Batches
from lskd.errors import DataError
from lskd.models import classifier
from lskd.runs import build_for


def select(
    labels: np.ndarray, classes: list[int], per_class: int, split: str
) -> np.ndarray:
    """Indices of the first `per_class` samples of each class (class order kept)."""
    picks = []
    for c in classes:
        idx = np.flatnonzero(labels == c)[:per_class]
        if len(idx) < per_class:
            raise DataError(
                f"{split} split has {len(idx)} images of class {c}, need {per_class}"
            )
        picks.append(idx)
    return np.concatenate(picks)


@torch.no_grad()
def features(
    model: torch.nn.Module, arrays: Arrays, split: str, idx: np.ndarray
) -> np.ndarray:
    """Inputs of the final linear layer for the images `idx` of `split`."""
    captured: list[torch.Tensor] = []
    hook = classifier(model).register_forward_hook(
        lambda m, inp, out: captured.append(inp[0])
    )
    try:
        batches = Batches(
            arrays.images[split][idx],
            arrays.labels[split][idx],
            500,
            arrays.mean,
            arrays.std,
        )
        for x, _ in batches:
            model(x)
    finally:
        hook.remove()
    return torch.cat(captured).float().numpy()


def extract(
    model_path: Path,
    data_path: Path,
    classes: list[int],
    train_per_class: int,
    test_per_class: int,
    out: Path,
) -> None:
    """Write train/test features, labels 0..2 and the matching final-layer rows to
    `out`.
    """
    arrays = load_arrays(data_path)
    for c in classes:
        if not 0 <= c < arrays.num_classes:
            raise DataError(
                f"class {c} outside 0..{arrays.num_classes - 1} of {data_path}"
            )
    meta = checkpoint.load_model_file(model_path)
    model = build_for(arrays, meta["arch"])
    model.load_state_dict(meta["state_dict"])
    model.eval()
    fields = {}
    for split, per_class, name in (
        ("train", train_per_class, "train"),
        ("test", test_per_class, "test"),
    ):
        idx = select(arrays.labels[split], classes, per_class, split)
        fields[f"{name}_features"] = features(model, arrays, split, idx)
        fields[f"{name}_labels"] = np.repeat(np.arange(len(classes)), per_class)
    fc = classifier(model)
    fields["weight"] = fc.weight.detach()[classes].numpy()
    fields["bias"] = fc.bias.detach()[
        classes
    ].numpy()  # matching biases (PAPER.md §8.4)
    fields["classes"] = np.array(classes)
    fields["class_names"] = np.array([arrays.class_names[c] for c in classes])
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **fields)
