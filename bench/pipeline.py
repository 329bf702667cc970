"""Data pipeline images/s vs training-step images/s vs the synthetic ceiling, per
loader, side by side in one run.

For each loader, in rounds (medians reported):

- loader: the training batches alone, moved to the device (what the data pipeline can
  deliver);
- train: `train_api.train_pass`, the KD student job's loop (teacher forward + student
  step) fed by that loader, as `lskd distill` runs;
- ceiling: the same steps on batches already on the device (synthetic: no loading).

train / ceiling is the share of the compute speed the pipeline lets through;
loader / ceiling > 1 means loading is not the bottleneck. Loaders: `arrays` (the
demo's in-memory Fashion-MNIST pipeline, demo MLPs), `torchvision` (PIL JPEG decoding
in DataLoader workers) and `dali` (NVIDIA DALI: GPU decoding with CUDA, CPU otherwise)
on generated JPEG files (or those of `--manifest`). As in `fused_sweep.py`, each timed
JPEG stream first runs `--stream-warmup` batches untimed (default on CUDA: two per
worker and one more), and `--seconds` caps the rounds.

  python bench/pipeline.py                                  # CPU: all three loaders
  python bench/pipeline.py --device cuda --workers 16       # R50 -> R18, 224 px
"""

from __future__ import annotations

import argparse
import statistics
from itertools import islice
from pathlib import Path

import torch
from budget import Budget
from fused_sweep import (
    add_stream_flags,
    array_source,
    jpeg_source,
    steady,
    stream,
    timed,
)
from results_csv import append_rows
from train_api import (
    FrozenTeacher,
    Recipe,
    make_optimizer,
    make_scheduler,
    one_process,
    to_device,
    train_pass,
)

from lskd.models.registry import build_model


def models(source, teacher: str, student: str, device: torch.device):
    k, c, side = len(source.class_names), source.in_channels, source.image_size
    t = build_model(teacher, k, c, side).to(device)
    s = build_model(student, k, c, side).to(device)
    if device.type == "cuda":
        t = t.to(memory_format=torch.channels_last)
        s = s.to(memory_format=torch.channels_last)
    return FrozenTeacher(t), s


def measure(args, loader: str, device: torch.device, budget: Budget) -> dict:
    if loader == "arrays":  # the demo: its models and batch size
        b, teacher, student = 128, "mlp512", "mlp128"
        source = array_source(64 * b)
    else:
        args.loader, b = loader, args.batch_size
        source, teacher, student = jpeg_source(args), args.teacher, args.student
    t, s = models(source, teacher, student, device)
    recipe = Recipe.from_dict({"epochs": 10_000, "batch_size": b, "lr": 0.01})
    opt = make_optimizer(s, recipe)
    sched = make_scheduler(opt, recipe, 10_000)
    ctx, n = one_process(device), args.steps
    synthetic = [to_device(x, y, device) for x, y in islice(stream(source, b, 1), 4)]
    synthetic = (synthetic * (n // 4 + 1))[:n]

    def load(batches):
        for x, y in batches:
            to_device(x, y, device)

    def train(batches):
        train_pass(s, t, 3.0, batches, opt, sched, ctx)

    train(islice(stream(source, b, 3), args.warmup))  # warm-up: workers, kernels
    rounds: dict[str, list[float]] = {}
    for r in budget.rounds(args.rounds):
        times = {
            "loader": steady(load, source, b, 2, args, device),
            "train": steady(train, source, b, 10 + r, args, device),
            "ceiling": timed(lambda: train(synthetic), device),
        }
        for key, value in times.items():
            rounds.setdefault(key, []).append(n * b / value)
    return {k: statistics.median(v) for k, v in rounds.items()} | {
        "teacher": teacher,
        "student": student,
        "image_size": source.image_size,
        "batch": b,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--loaders", nargs="+", help="default: arrays torchvision dali (CPU)"
    )
    p.add_argument("--teacher", help="JPEG loaders: default resnet18 (CPU) / resnet50")
    p.add_argument("--student", default="resnet18")
    p.add_argument("--image-size", type=int, help="default 64 (CPU) / 224 (CUDA)")
    p.add_argument(
        "--batch-size", type=int, help="JPEG loaders: default 32 (CPU) / 256 (CUDA)"
    )
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=1, help="loader workers / threads")
    p.add_argument("--jpegs", type=int, help="generated JPEG files")
    add_stream_flags(p)
    p.add_argument("--csv", type=Path, default=Path("bench/results/pipeline.csv"))
    args = p.parse_args()
    budget = Budget(args.seconds)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.teacher = args.teacher or ("resnet50" if cuda else "resnet18")
    args.image_size = args.image_size or (224 if cuda else 64)
    args.batch_size = args.batch_size or (256 if cuda else 32)
    if args.stream_warmup is None:
        args.stream_warmup = 2 * args.workers + 1 if cuda else 0
    loaders = args.loaders or (["torchvision", "dali"] if cuda else ["arrays"])
    if not args.loaders and not cuda:
        loaders += ["torchvision", "dali"]
    rows = []
    for loader in loaders:
        try:
            m = measure(args, loader, device, budget)
        except ImportError as err:  # DALI is an optional extra
            print(f"{loader}: skipped ({err})")
            continue
        row = {
            "device": torch.cuda.get_device_name() if cuda else f"cpu x{args.threads}",
            "loader": loader,
            "workers": 0 if loader == "arrays" else args.workers,
            "teacher": m["teacher"],
            "student": m["student"],
            "image_size": m["image_size"],
            "batch": m["batch"],
            "loader_img_s": round(m["loader"], 1),
            "train_img_s": round(m["train"], 1),
            "ceiling_img_s": round(m["ceiling"], 1),
            "train_over_ceiling": round(m["train"] / m["ceiling"], 3),
            "loader_over_ceiling": round(m["loader"] / m["ceiling"], 3),
        }
        rows.append(row)
        print(
            f"{loader:>11} ({m['teacher']} -> {m['student']}, {m['image_size']} px): "
            f"loader {m['loader']:.0f} img/s, train {m['train']:.0f} img/s, "
            f"ceiling {m['ceiling']:.0f} img/s; train/ceiling "
            f"{row['train_over_ceiling']:.3f}, loader/ceiling "
            f"{row['loader_over_ceiling']:.3f}"
        )
    if not rows:
        return
    append_rows(args.csv, rows)


if __name__ == "__main__":
    main()
