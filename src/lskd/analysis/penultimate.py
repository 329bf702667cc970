"""Penultimate-layer features of three classes, for the projection of
Algorithm 1 (docs/visualisation.md#what-lskd-does).

The features are the input of the model's final linear layer (captured by a forward
hook), so the same code serves our demo nets and torchvision models. Images are taken in
dataset order without augmentation: the first `train_per_class` training images and the
first `test_per_class` test images of each selected class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lskd.atomic import atomic_path
from lskd.data.interface import DataSource
from lskd.data.source import open_source
from lskd.errors import DataError
from lskd.models import checkpoint
from lskd.models.registry import classifier
from lskd.train.job import build_for


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
    model: torch.nn.Module, source: DataSource, split: str, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs of the final linear layer, and the model's logits (all classes), for the
    samples `idx` of `split`."""
    captured: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    hook = classifier(model).register_forward_hook(
        lambda m, inp, out: captured.append(inp[0])
    )
    try:
        for x, _ in source.eval_batches(split, 250, indices=idx):
            logits.append(model(x))
    finally:
        hook.remove()
    return (
        torch.cat(captured).float().numpy(),
        torch.cat(logits).float().numpy(),
    )


def extract(
    model_path: Path,
    data_path: Path,
    classes: list[int],
    train_per_class: int,
    test_per_class: int,
    out: Path,
    augment: dict | None = None,
) -> None:
    """Write train/test features, logits, labels 0..2 and the matching final-layer
    rows."""
    source = open_source(data_path, augment or {})
    check_classes(source, classes, data_path)
    extract_from(source, model_path, classes, train_per_class, test_per_class, out)


def check_classes(source: DataSource, classes: list[int], data_path: Path) -> None:
    for c in classes:
        if not 0 <= c < len(source.class_names):
            raise DataError(
                f"class {c} outside 0..{len(source.class_names) - 1} of {data_path}"
            )


def extract_from(
    source: DataSource,
    model_path: Path,
    classes: list[int],
    train_per_class: int,
    test_per_class: int,
    out: Path,
) -> None:
    """`extract` on an open data source (read once for many models) whose `classes`
    were checked (`check_classes`)."""
    meta = checkpoint.load_model_file(model_path)
    model = build_for(source, meta["arch"])
    model.load_state_dict(meta["state_dict"])
    model.eval()
    fields = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        idx = select(source.labels(split), classes, per_class, split)
        feats, logits = features(model, source, split, idx)
        fields[f"{split}_features"], fields[f"{split}_logits"] = feats, logits
        fields[f"{split}_labels"] = np.repeat(np.arange(len(classes)), per_class)
    fc = classifier(model)
    fields["weight"] = fc.weight.detach()[classes].numpy()
    fields["bias"] = fc.bias.detach()[
        classes
    ].numpy()  # matching biases (docs/official-code.md#visualisation-bias-indices)
    fields["classes"] = np.array(classes)
    fields["class_names"] = np.array([source.class_names[c] for c in classes])
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **fields)


def analyse_runs(
    model_paths: list[Path],
    data_path: Path,
    classes: list[int],
    train_per_class: int,
    test_per_class: int,
    augment: dict | None = None,
) -> None:
    """The per-run analysis of many runs in one process (the data opened once): for
    each model.pt, `penultimate.npz` (`extract`), `projection.npz`
    (`analysis.projection.project_file`) and `diffusion.json`
    (`analysis.diffusion.diffusion_file`) beside it."""
    from lskd.analysis.diffusion import diffusion_file
    from lskd.analysis.projection import project_file

    source = open_source(data_path, augment or {})
    check_classes(source, classes, data_path)
    for model_path in model_paths:
        run = Path(model_path).parent
        features_npz, projection = run / "penultimate.npz", run / "projection.npz"
        extract_from(
            source, model_path, classes, train_per_class, test_per_class, features_npz
        )
        project_file(features_npz, projection)
        diffusion_file(projection, run / "diffusion.json")
