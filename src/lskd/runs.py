"""One training run end to end: data, model, objective, `fit`, then model.pt and
metrics.json (rank 0 only).
"""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lskd
from lskd import checkpoint, preempt
from lskd.atomic import write_json
from lskd.config import Recipe
from lskd.data.source import DataSource, open_source
from lskd.distill import FrozenTeacher, student_step, teacher_step
from lskd.distributed import Context, barrier, setup, teardown
from lskd.engine import StepLoss, evaluate_imported, fit, seed_everything
from lskd.errors import CheckpointError, ConfigError
from lskd.models import build_model

log = logging.getLogger("lskd")


@dataclass(frozen=True)
class RunSpec:
    """What one job trains and where it writes (the CLI builds it from its flags).

    `augment` is the task's augmentation dict (keys of the config schema), `loader`
    `torchvision` or `dali` (image-file datasets), `init` an lskd model file to start
    from (its classifier is kept only when the class counts match), `compile` wraps the
    model in torch.compile. With `pretrained`, `init` is the finished model (a published
    teacher): it is evaluated, not trained.
    """

    task: str
    data: Path
    arch: str
    seed: int
    recipe: Recipe
    model_out: Path
    metrics_out: Path
    augment: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    deterministic: bool = True
    loader: str = "torchvision"
    workers: int = 0
    init: Path | None = None
    compile: bool = False
    pretrained: bool = False


def versions() -> dict[str, str]:
    return {
        "lskd": lskd.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": metadata.version("torchvision"),
        "numpy": np.__version__,
    }


def build_for(source: DataSource, arch: str) -> torch.nn.Module:
    """`arch` sized for this dataset's classes, channels and image side."""
    return build_model(
        arch, len(source.class_names), source.in_channels, source.image_size
    )


def load_teacher(
    path: Path, source: DataSource
) -> tuple[FrozenTeacher, dict[str, Any]]:
    """Rebuild a teacher from its model.pt (weights_only) and check it fits the data."""
    meta = checkpoint.load_model_file(path)
    if meta.get("num_classes") != len(source.class_names):
        raise CheckpointError(
            f"{path}: teacher has {meta.get('num_classes')} classes, "
            f"the data has {len(source.class_names)}"
        )
    model = build_for(source, meta["arch"])
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


def _model(spec: RunSpec, source: DataSource, ctx: Context) -> torch.nn.Module:
    model = build_for(source, spec.arch)
    if spec.pretrained and spec.init is None:
        raise ConfigError("--pretrained needs --init (the model file to evaluate)")
    if spec.init is not None:
        from lskd.weights import init_model

        n = len(source.class_names)
        init_model(model, spec.init, n, require_head=spec.pretrained)
    model = model.to(ctx.device)
    if ctx.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if ctx.world > 1:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return torch.compile(model) if spec.compile else model


def _execute(
    spec: RunSpec,
    source: DataSource,
    identity: dict[str, Any],
    step: StepLoss,
    ctx: Context,
) -> dict[str, Any]:
    start = time.perf_counter()
    seed = rng_seed(identity["role"], spec.seed)
    gen = seed_everything(seed, spec.deterministic)
    model = _model(spec, source, ctx)
    r = spec.recipe
    train = source.train_batches(r.batch_size, gen, ctx.shard)
    val, test = (
        source.eval_batches(s, r.eval_batch_size, shard=ctx.shard)
        for s in ("val", "test")
    )
    resume = spec.model_out.parent / "last.pt"
    if spec.pretrained:
        metrics, state = evaluate_imported(model, val, test, ctx)
    else:
        metrics, state = fit(model, step, train, val, test, r, gen, ctx, resume)
    if ctx.is_main:
        module = build_for(source, spec.arch)
        module.load_state_dict(state)
        checkpoint.save_model(
            module,
            spec.model_out,
            arch=spec.arch,
            num_classes=len(source.class_names),
            in_channels=source.in_channels,
            class_names=list(source.class_names),
            **{k: identity[k] for k in ("role", "alpha", "T", "seed")},
        )
        metrics = {
            **identity,
            **metrics,
            "wall_s": time.perf_counter() - start,
            "device": str(ctx.device),
            "rng_seed": seed,
            "config": {
                "recipe": r.to_dict(),
                "augment": spec.augment,
                "loader": spec.loader,
                "init": str(spec.init) if spec.init else None,
                "compile": spec.compile,
            },
            "versions": versions(),
        }
        write_json(spec.metrics_out, metrics)
        log.info(
            "done: top1=%.2f top5=%.2f (%s epoch %d) in %.0f s",
            metrics["top1"],
            metrics["top5"],
            r.selection,
            metrics["chosen_epoch"],
            metrics["wall_s"],
        )
        resume.unlink(missing_ok=True)  # last: a kill before this still resumes
    barrier(ctx)
    return metrics


def _open(spec: RunSpec) -> tuple[DataSource, Context]:
    ctx = setup(spec.device)
    workers = spec.workers // ctx.world if spec.workers else 0  # the job's CPUs, shared
    source = open_source(spec.data, spec.augment, spec.loader, workers)
    return source, ctx


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
    with preempt.watch():  # a signal during start-up stops after the first step
        source, ctx = _open(spec)
        try:
            return _execute(spec, source, identity, teacher_step(alpha), ctx)
        finally:
            teardown(ctx)


def distill_student(spec: RunSpec, teacher_path: Path, T: float) -> dict[str, Any]:
    """Distil the teacher at `teacher_path` into a new `spec.arch` at temperature T."""
    with preempt.watch():  # a signal during start-up stops after the first step
        return _distill(spec, teacher_path, T)


def _distill(spec: RunSpec, teacher_path: Path, T: float) -> dict[str, Any]:
    source, ctx = _open(spec)
    teacher, meta = load_teacher(teacher_path, source)
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
    teacher = teacher.to(ctx.device)
    if ctx.device.type == "cuda":
        teacher = teacher.to(memory_format=torch.channels_last)
    try:
        return _execute(spec, source, identity, student_step(teacher, T), ctx)
    finally:
        teardown(ctx)
