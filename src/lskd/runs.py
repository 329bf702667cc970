"""One training run end to end: data, model, objective, `fit`, then model.pt +
metrics.json.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lskd
from lskd import checkpoint
from lskd.atomic import write_json
from lskd.config import Recipe
from lskd.data.arrays import Arrays, load_arrays
from lskd.data.batches import Augment, Batches
from lskd.distill import FrozenTeacher, student_step, teacher_step
from lskd.engine import StepLoss, fit, seed_everything
from lskd.errors import CheckpointError
from lskd.models import build_model

log = logging.getLogger("lskd")


@dataclass(frozen=True)
class RunSpec:
    """What one job trains and where it writes (the CLI builds it from its flags)."""

    task: str
    data: Path
    arch: str
    seed: int
    recipe: Recipe
    model_out: Path
    metrics_out: Path
    augment: Augment
    device: str = "cpu"
    deterministic: bool = True


def versions() -> dict[str, str]:
    return {
        "lskd": lskd.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": metadata.version("torchvision"),
        "numpy": np.__version__,
    }


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_for(arrays: Arrays, arch: str) -> torch.nn.Module:
    """`arch` sized for this dataset's classes, channels and image side."""
    side = int(arrays.images["train"].shape[-1])
    return build_model(arch, arrays.num_classes, arrays.in_channels, side)


def load_teacher(path: Path, arrays: Arrays) -> tuple[FrozenTeacher, dict[str, Any]]:
    """Rebuild a teacher from its model.pt (weights_only) and check it fits the data."""
    meta = checkpoint.load_model_file(path)
    if meta.get("num_classes") != arrays.num_classes:
        raise CheckpointError(
            f"{path}: teacher has {meta.get('num_classes')} classes, "
            f"the data has {arrays.num_classes}"
        )
    model = build_for(arrays, meta["arch"])
    try:
        model.load_state_dict(meta["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: weights do not fit arch {meta['arch']!r} "
            f"({str(err).splitlines()[0]})"
        ) from None
    return FrozenTeacher(model), meta


def rng_seed(role: str, seed: int) -> int:
    """The torch/numpy seed of a run: sha256 of "<role>:<seed>", first 4 bytes.

    Teachers and students with the same config seed draw from different streams, so a
    student of the teacher's architecture never starts from the teacher's init.
    """
    digest = hashlib.sha256(f"{role}:{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _execute(
    spec: RunSpec,
    arrays: Arrays,
    identity: dict[str, Any],
    step: StepLoss,
    device: torch.device,
) -> dict[str, Any]:
    start = time.perf_counter()
    seed = rng_seed(identity["role"], spec.seed)
    gen = seed_everything(seed, spec.deterministic)
    model = build_for(arrays, spec.arch).to(device)
    r = spec.recipe
    split = {s: (arrays.images[s], arrays.labels[s]) for s in ("train", "val", "test")}
    train = Batches(
        *split["train"],
        r.batch_size,
        arrays.mean,
        arrays.std,
        generator=gen,
        augment=spec.augment,
        drop_last=True,
    )
    val, test = (
        Batches(*split[s], r.eval_batch_size, arrays.mean, arrays.std)
        for s in ("val", "test")
    )
    resume = spec.model_out.parent / "last.pt"
    metrics, state = fit(model, step, train, val, test, r, gen, device, resume)
    model.load_state_dict(state)
    checkpoint.save_model(
        model,
        spec.model_out,
        arch=spec.arch,
        num_classes=arrays.num_classes,
        in_channels=arrays.in_channels,
        class_names=list(arrays.class_names),
        **{k: identity[k] for k in ("role", "alpha", "T", "seed")},
    )
    metrics = {
        **identity,
        **metrics,
        "wall_s": time.perf_counter() - start,
        "device": str(device),
        "rng_seed": seed,
        "config": {"recipe": r.to_dict(), "augment": vars(spec.augment)},
        "versions": versions(),
    }
    write_json(spec.metrics_out, metrics)
    resume.unlink(missing_ok=True)
    log.info(
        "done: top1=%.2f top5=%.2f (%s epoch %d) in %.0f s",
        metrics["top1"],
        metrics["top5"],
        r.selection,
        metrics["chosen_epoch"],
        metrics["wall_s"],
    )
    return metrics


def train_teacher(spec: RunSpec, alpha: float) -> dict[str, Any]:
    """Train a teacher with label-smoothing factor `alpha`."""
    identity = {
        "role": "teacher",
        "task": spec.task,
        "arch": spec.arch,
        "alpha": alpha,
        "T": None,
        "seed": spec.seed,
        "teacher": None,
    }
    return _execute(
        spec,
        load_arrays(spec.data),
        identity,
        teacher_step(alpha),
        resolve_device(spec.device),
    )


def distill_student(spec: RunSpec, teacher_path: Path, T: float) -> dict[str, Any]:
    """Distil the teacher at `teacher_path` into a new `spec.arch` at temperature T."""
    arrays = load_arrays(spec.data)
    device = resolve_device(spec.device)
    teacher, meta = load_teacher(teacher_path, arrays)
    identity = {
        "role": "student",
        "task": spec.task,
        "arch": spec.arch,
        "alpha": meta["alpha"],
        "T": T,
        "seed": spec.seed,
        "teacher": {
            "arch": meta["arch"],
            "alpha": meta["alpha"],
            "seed": meta["seed"],
            "path": str(teacher_path),
            "sha256": checkpoint.sha256(teacher_path),
        },
    }
    return _execute(spec, arrays, identity, student_step(teacher.to(device), T), device)
