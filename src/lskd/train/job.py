"""One training job end to end: data, its models and their objectives, the training
loop (`lskd.train.loop.fit`), then each model's model.pt and metrics.json (rank 0
only). A teacher or a single student is one model; the fused temperature sweep
(`distill_students`) trains K students in one job, as K separate jobs would.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lskd
from lskd.atomic import write_json
from lskd.data.interface import DataSource
from lskd.data.source import open_source
from lskd.data.transfer import TransferSet
from lskd.errors import CheckpointError, ConfigError
from lskd.identity import DEFAULT_OBJECTIVE, ROLLING, ROLLING_SWEEP, Choice, RunId
from lskd.models import checkpoint
from lskd.models.registry import build_model
from lskd.train import preempt
from lskd.train.chance import chance_level
from lskd.train.device import on_device, wrapped
from lskd.train.distributed import Context, barrier, setup, teardown
from lskd.train.evaluation import evaluate_imported
from lskd.train.loop import Splits, Trainees, fit
from lskd.train.recipe import Recipe
from lskd.train.rng import seed_everything
from lskd.train.steps import FrozenTeacher, Objective, student_step, teacher_step

# An objective of the loop once the job knows how many epochs it trains.
ObjectiveFor = Callable[[int], Objective]

log = logging.getLogger("lskd")


@dataclass(frozen=True)
class RunSpec:
    """What one job trains and where it writes (the CLI builds it from its flags).

    `augment` is the task's augmentation dict (keys of the config schema), `loader`
    `torchvision` or `dali` (image-file datasets), `init` an lskd model file to start
    from (its classifier is kept only when the class counts match), `compile` wraps the
    model in torch.compile. With `pretrained`, `init` is the finished model (a published
    teacher): it is evaluated, not trained. `transfer` (students only) is the KD
    transfer-set size token (`lskd.data.transfer`): the student trains on those images
    of the training split, drawn with its seed.
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
    transfer: str | None = None


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
        from lskd.models.weights import init_model

        n = len(source.class_names)
        init_model(model, spec.init, n, require_head=spec.pretrained)
    return wrapped(on_device(model, ctx), ctx, spec.compile)


@contextmanager
def _session(spec: RunSpec) -> Iterator[tuple[DataSource, Context]]:
    """A job's lifetime: from its start SIGTERM/SIGUSR1 only set a flag (this is the
    one `preempt.watch()` of an image training job, so a signal during start-up stops
    it after the first step); the data opened and, with several processes, the
    process group joined, and left again at the end."""
    with preempt.watch():
        source, ctx = _open(spec)
        try:
            yield source, ctx
        finally:
            teardown(ctx)


def _label(identity: dict[str, Any]) -> str:
    """A model's name in the log lines: its regularizer (teachers) or its T."""
    if identity["role"] == "teacher":
        return Choice.parse(identity["regularizer"], "regularizer", "").label
    return f"T={identity['T']:g}"


def _train(
    specs: Sequence[RunSpec],
    identities: Sequence[dict[str, Any]],
    objectives: Sequence[ObjectiveFor],
    teacher: FrozenTeacher | None,
    source: DataSource,
    ctx: Context,
) -> list[dict[str, Any]]:
    """Build one model per spec, train them together (`loop.fit`; with `pretrained`
    only evaluate), write each one's outputs (rank 0), then drop the rolling
    checkpoint: `last.pt`, or `last_sweep.pt` beside a fused sweep's first model."""
    spec, fused = specs[0], len(specs) > 1
    start = time.perf_counter()
    seed = rng_seed(identities[0]["role"], spec.seed)
    models = []
    for _ in specs:  # reseeded before each: every model of a sweep has the same init
        gen = seed_everything(seed, spec.deterministic)
        models.append(_model(spec, source, ctx))
    train = source.train_batches(spec.recipe.batch_size, gen, ctx.shard)
    r = spec.recipe.capped(len(train))
    val, test = (
        source.eval_batches(s, r.eval_batch_size, shard=ctx.shard)
        for s in ("val", "test")
    )
    path = spec.model_out.parent / (ROLLING_SWEEP if fused else ROLLING)
    temperatures = [who["T"] for who in identities]
    if spec.pretrained:
        results = [evaluate_imported(models[0], val, test, ctx)]
    else:
        labels = [_label(who) for who in identities]
        key = {"temperatures": temperatures} if fused else {}
        steps = [make(r.epochs) for make in objectives]
        trainees = Trainees(models, steps, teacher, labels, key)
        results = fit(trainees, Splits(train, val, test), r, gen, ctx, path)
    out = []
    for s, who, (metrics, state) in zip(specs, identities, results, strict=True):
        if fused:
            metrics = {**metrics, "fused_temperatures": temperatures}
        if ctx.is_main:
            metrics = _write_run(s, source, who, metrics, state, seed, start, ctx)
        out.append(metrics)
    _finish(path, ctx)
    return out


def _finish(resume: Path, ctx: Context) -> None:
    """After every output is written: delete the rolling checkpoint (rank 0), last, so
    that a kill before this still resumes (and then only rewrites the outputs)."""
    if ctx.is_main:
        resume.unlink(missing_ok=True)
    barrier(ctx)


def _write_run(
    spec: RunSpec,
    source: DataSource,
    identity: dict[str, Any],
    metrics: dict[str, Any],
    state: dict[str, Any],
    seed: int,
    start: float,
    ctx: Context,
) -> dict[str, Any]:
    """Write the run's model.pt and metrics.json (rank 0); return the full metrics."""
    r = spec.recipe
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
        **{k: identity[k] for k in ("regularizer", "objective")},
    )
    metrics = {
        **identity,
        "transfer": source.transfer,
        **metrics,
        "model_sha256": checkpoint.sha256(spec.model_out),  # lskd.plan.models checks it
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
    metrics["chance"] = chance = chance_level(
        metrics["top1"], len(source.class_names), len(source.labels("test"))
    )
    if chance["at_chance"]:
        log.warning(
            "%s: test top-1 %.2f %% is at chance level (100/K = %.2f %% for K = %d "
            "classes, margin %.2f points on %d test images): the run has not learned; "
            "check its recipe (lr, epochs) and data",
            spec.metrics_out.parent.name,
            metrics["top1"],
            chance["level"],
            chance["classes"],
            chance["margin"],
            chance["test_images"],
        )
    write_json(spec.metrics_out, metrics)
    log.info(
        "done: %s top1=%.2f top5=%.2f (%s epoch %d) in %.0f s",
        spec.metrics_out.parent.name,
        metrics["top1"],
        metrics["top5"],
        r.selection,
        metrics["chosen_epoch"],
        metrics["wall_s"],
    )
    return metrics


def _open(spec: RunSpec) -> tuple[DataSource, Context]:
    ctx = setup(spec.device)
    workers = spec.workers // ctx.world if spec.workers else 0  # the job's CPUs, shared
    transfer = None if spec.transfer is None else TransferSet(spec.transfer, spec.seed)
    source = open_source(spec.data, spec.augment, spec.loader, workers, transfer)
    return source, ctx


def train_teacher(
    spec: RunSpec, regularizer: Choice | None = None, *, alpha: float | None = None
) -> dict[str, Any]:
    """Train a teacher with `regularizer` (`lskd.objectives.REGULARIZERS`), or with
    label smoothing `alpha` (`ce` for 0), as `lskd train --alpha` does."""
    if (regularizer is None) == (alpha is None):
        raise ValueError("train_teacher: give exactly one of regularizer and alpha")
    if regularizer is None:
        regularizer = Choice.from_alpha(alpha)
    who = RunId("teacher", spec.task, spec.arch, regularizer, spec.seed, spec.arch)
    identity = {**who.to_metrics(), "teacher": None}
    method = regularizer.build()

    def objective(epochs: int) -> Objective:
        return teacher_step(method, epochs)

    with _session(spec) as (source, ctx):
        return _train([spec], [identity], [objective], None, source, ctx)[0]


def teacher_regularizer(meta: dict[str, Any], path: Path) -> Choice:
    """The regularizer a teacher's model.pt records (files before regularizers were
    choices record only `alpha`)."""
    try:
        if meta.get("regularizer") is not None:
            return Choice.parse(meta["regularizer"], "regularizer", "regularizer")
        return Choice.from_alpha(float(meta.get("alpha") or 0.0))
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: bad teacher regularizer ({err})") from None


def _student_identity(
    spec: RunSpec,
    teacher_path: Path,
    meta: dict[str, Any],
    T: float,
    objective: Choice,
) -> dict[str, Any]:
    regularizer = teacher_regularizer(meta, teacher_path)
    who = RunId(
        "student",
        spec.task,
        spec.arch,
        regularizer,
        spec.seed,
        meta["arch"],
        objective=objective,
        T=T,
    )
    return {
        **who.to_metrics(),
        "teacher": {
            "arch": meta["arch"],
            "alpha": regularizer.alpha,
            "regularizer": regularizer.to_dict(),
            "seed": meta["seed"],
            "path": str(teacher_path),
            "sha256": checkpoint.sha256(teacher_path),
        },
    }


def distill_student(
    spec: RunSpec,
    teacher_path: Path,
    T: float,
    objective: Choice = DEFAULT_OBJECTIVE,
) -> dict[str, Any]:
    """Distil the teacher at `teacher_path` into a new `spec.arch` at temperature T
    with the KD `objective` (`lskd.objectives.OBJECTIVES`)."""
    return _distill([spec], teacher_path, [T], objective)[0]


def _check_sweep(specs: Sequence[RunSpec], temperatures: Sequence[float]) -> None:
    if len(specs) != len(temperatures) or len(specs) < 2:
        raise ConfigError(
            f"a fused sweep needs one output pair per temperature and at least two "
            f"temperatures (got {len(temperatures)} T, {len(specs)} outputs)"
        )
    if len(set(temperatures)) != len(temperatures) or min(temperatures) <= 0:
        raise ConfigError(f"--T: expected distinct values > 0, got {temperatures}")
    first = specs[0]
    for spec in specs[1:]:
        if replace(spec, model_out=first.model_out, metrics_out=first.metrics_out) != (
            first
        ):
            raise ConfigError("a fused sweep's runs may differ only in their outputs")
    outputs = [p for s in specs for p in (s.model_out, s.metrics_out)]
    if len(set(outputs)) != len(outputs):
        raise ConfigError("a fused sweep needs distinct output paths per temperature")


def distill_students(
    specs: Sequence[RunSpec],
    teacher_path: Path,
    temperatures: Sequence[float],
    objective: Choice = DEFAULT_OBJECTIVE,
) -> list[dict[str, Any]]:
    """Distil the teacher into one student per temperature in ONE job: one data stream
    and one teacher forward per batch (`lskd.train.loop`). `specs[k]` (which differ
    only in their outputs) receives exactly what `distill_student(specs[k],
    teacher_path, temperatures[k])` would write; its metrics add `fused_temperatures`.
    The rolling checkpoint is `last_sweep.pt` beside the first student's model;
    SIGTERM/SIGUSR1 saves it after the current step and raises `Preempted`, as a single
    job does."""
    _check_sweep(specs, temperatures)
    return _distill(specs, teacher_path, temperatures, objective)


def _distill(
    specs: Sequence[RunSpec],
    teacher_path: Path,
    temperatures: Sequence[float],
    objective: Choice,
) -> list[dict[str, Any]]:
    method = objective.build()
    with _session(specs[0]) as (source, ctx):
        teacher, meta = load_teacher(teacher_path, source)
        identities = [
            _student_identity(spec, teacher_path, meta, T, objective)
            for spec, T in zip(specs, temperatures, strict=True)
        ]
        objectives = [
            lambda epochs, T=T: student_step(method, T, epochs) for T in temperatures
        ]
        teacher = on_device(teacher, ctx)
        return _train(specs, identities, objectives, teacher, source, ctx)
