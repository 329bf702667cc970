"""KD training throughput: real JPEG loading vs synthetic tensors, side by side.

One KD step = frozen teacher forward (no grad) + student forward/backward + SGD step,
exactly as `lskd distill` runs it (bf16 autocast and channels_last on CUDA). Measured in
one process, in this order: (1) synthetic batches already on the device (the ceiling);
(2) real JPEG batches from a manifest through the configured loader (torchvision/PIL
workers or DALI); (3) the synthetic step with an fp32 teacher, the official recipe's
choice (docs/recipes.md#imagenet-students). Prints images/s and the ratios; appends a
row to --csv.

  python bench/kd_throughput.py --manifest resources/data/imagenet/dataset.json \\
      --loader dali --workers 16 --batch-size 256 --steps 50
  python bench/kd_throughput.py --make-jpegs 64 --image-size 64 --steps 3   # CPU smoke
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lskd.data.folders import save_manifest, scan_imagefolder
from lskd.data.source import open_source
from lskd.models.registry import build_model
from lskd.objectives.kd import kd_loss


def make_jpegs(root: Path, n: int, side: int = 256) -> Path:
    """n real JPEG files in an ImageNet-style folder (2 classes), and their manifest."""
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("val", 4)):
        for i in range(count):
            folder = root / split / f"c{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.JPEG", quality=90)
    manifest = root / "manifest.json"
    save_manifest(scan_imagefolder(root, 1, 0), manifest)
    return manifest


def timed_steps(step, batches, steps: int, warmup: int, device) -> float:
    """Images/s over `steps` steps after `warmup` steps (batches may be an iterator)."""
    seen, start = 0, None
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            seen, start = 0, time.perf_counter()
        if i == warmup + steps:
            break
        step(x, y)
        seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def make_step(teacher, student, opt, T: float, device, teacher_fp32: bool):
    bf16 = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    )

    def step(x, y):
        x = x.to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), nullcontext() if teacher_fp32 or not bf16 else bf16:
            t = teacher(x)
        with bf16 or nullcontext():
            loss = kd_loss(student(x), t, T)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--manifest", type=Path, help="prepared image-folder manifest")
    p.add_argument("--make-jpegs", type=int, help="generate N JPEGs instead")
    p.add_argument("--loader", choices=["torchvision", "dali"], default="torchvision")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--teacher", default="resnet50")
    p.add_argument("--student", default="resnet18")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--T", type=float, default=3.0)
    p.add_argument("--csv", type=Path, default=Path("bench/results/kd_throughput.csv"))
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    manifest = args.manifest
    if manifest is None:
        tmp = Path(tempfile.mkdtemp(prefix="lskd-bench-"))
        manifest = make_jpegs(tmp, args.make_jpegs or 4 * args.batch_size)
    augment = {"image_size": args.image_size, "eval_resize": args.image_size * 8 // 7}
    source = open_source(manifest, augment, args.loader, args.workers)
    k = len(source.class_names)
    teacher = build_model(args.teacher, k, 3, args.image_size).to(device).eval()
    student = build_model(args.student, k, 3, args.image_size).to(device)
    if device.type == "cuda":
        teacher = teacher.to(memory_format=torch.channels_last)
        student = student.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
    n, b, s = args.steps + args.warmup, args.batch_size, args.image_size
    synthetic = [(torch.randn(b, 3, s, s, device=device), torch.zeros(b))] * n
    gen = torch.Generator().manual_seed(0)

    def real():
        while True:
            yield from source.train_batches(b, gen)

    ours = make_step(teacher, student, opt, args.T, device, teacher_fp32=False)
    official = make_step(teacher, student, opt, args.T, device, teacher_fp32=True)
    rates = {
        "synthetic": timed_steps(ours, synthetic, args.steps, args.warmup, device),
        "real": timed_steps(ours, real(), args.steps, args.warmup, device),
        "fp32_teacher": timed_steps(
            official, synthetic, args.steps, args.warmup, device
        ),
    }
    for name, rate in rates.items():
        print(f"{name:>13}: {rate:9.1f} images/s")
    print(f"real / synthetic      = {rates['real'] / rates['synthetic']:.3f}")
    print(f"fp32 teacher / ours   = {rates['fp32_teacher'] / rates['synthetic']:.3f}")
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    new = not args.csv.exists()
    with args.csv.open("a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(
                [
                    "device",
                    "loader",
                    "teacher",
                    "student",
                    "image_size",
                    "batch",
                    "synthetic",
                    "real",
                    "fp32_teacher",
                    "real_over_synthetic",
                ]
            )
        w.writerow(
            [
                torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                args.loader,
                args.teacher,
                args.student,
                s,
                b,
                *(round(r, 1) for r in rates.values()),
                round(rates["real"] / rates["synthetic"], 3),
            ]
        )


if __name__ == "__main__":
    main()
