"""KD training throughput: real JPEG loading vs synthetic tensors, side by side.

One KD step = frozen teacher forward (no grad) + student forward/backward + SGD step,
exactly as `lskd distill` runs it (bf16 autocast and channels_last on CUDA). Variants
(`--variants`), measured in one process, in rounds (each round runs every variant once,
in turn; medians over rounds are reported):

- synthetic: batches already on the device (the ceiling);
- load_only: JPEG batches of each of `--loaders` (torchvision/PIL workers or DALI)
  moved to the device, no compute: what the loader delivers;
- real: the step on those batches (`--real-steps` timed steps);
- fp32_teacher: the synthetic step with an fp32 teacher, the official recipe's choice
  (docs/recipes.md#imagenet-students);
- cudnn_benchmark: the synthetic step with cuDNN's autotuner on
  (`torch.backends.cudnn.benchmark`, which lskd's jobs leave off);
- compiled: the synthetic step with teacher and student wrapped in `torch.compile`
  (`--compile-backend`); `compile_s` is the wall time of its first step, compilation
  included.

The loader variants first run `--warmup` + `--stream-warmup` batches of their stream
untimed (default on CUDA: two per loader worker and one more, what the workers decode
ahead), so that load_only is the loader's steady rate. Where the loader is the slower
of the two, the real step still draws on the batches decoded ahead during its window:
`real_over_bound`, real over min(load_only, synthetic), above 1 shows it, and a longer
`--real-steps` shrinks it. The files should hold that many batches, or a stream starts
another epoch inside a timing.

Prints images/s and the ratios; appends one row per loader to --csv (one row when no
loader variant runs). `--seconds` stops starting rounds once another would end past it.

  python bench/kd_throughput.py --manifest resources/data/imagenet/dataset.json \\
      --loaders dali --workers 16 --batch-size 256 --steps 50
  python bench/kd_throughput.py --make-jpegs 64 --image-size 64 --steps 3   # CPU smoke
  python bench/kd_throughput.py --device cuda --variants synthetic compiled
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from budget import Budget
from PIL import Image
from results_csv import append_rows

from lskd.data.folders import save_manifest, scan_imagefolder
from lskd.data.source import open_source
from lskd.models.registry import build_model
from lskd.objectives.kd import kd_loss

# per loader: load_only, real; the others run on synthetic batches
VARIANTS = (
    "synthetic",
    "load_only",
    "real",
    "fp32_teacher",
    "cudnn_benchmark",
    "compiled",
)


def make_jpegs(
    root: Path, n: int, side: int = 256, distinct: int | None = None
) -> Path:
    """n real JPEG files of noise in an ImageNet-style folder (2 classes), and their
    manifest. With `distinct`, only that many images are encoded and the files repeat
    their bytes in turn (as costly to decode, much faster to write)."""
    rng = np.random.default_rng(0)
    encoded: list[bytes] = []
    for split, count in (("train", n), ("val", 4)):
        for i in range(count):
            folder = root / split / f"c{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{i}.JPEG"
            if distinct and len(encoded) >= distinct:
                path.write_bytes(encoded[i % distinct])
                continue
            pixels = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
            if distinct:
                encoded.append(path.read_bytes())
    manifest = root / "manifest.json"
    save_manifest(scan_imagefolder(root, 1, 0), manifest)
    return manifest


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(step, batches, steps: int, warmup: int, device) -> float:
    """Images/s over `steps` steps after `warmup` steps (batches may be an iterator)."""
    seen, start = 0, None
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            sync(device)
            seen, start = 0, time.perf_counter()
        if i == warmup + steps:
            break
        step(x, y)
        seen += len(y)
    sync(device)
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


def first_step_seconds(step, batch, device) -> float:
    """Wall time of one step (for a compiled step: its compilation)."""
    sync(device)
    start = time.perf_counter()
    step(*batch)
    sync(device)
    return time.perf_counter() - start


def open_loaders(args, manifest: Path) -> dict:
    """The sources of `--loaders` that open here (DALI is an optional extra)."""
    augment = {"image_size": args.image_size, "eval_resize": args.image_size * 8 // 7}
    sources = {}
    for loader in args.loaders:
        try:
            sources[loader] = open_source(manifest, augment, loader, args.workers)
        except ImportError as err:
            print(f"{loader}: skipped ({err})")
    return sources


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--manifest", type=Path, help="prepared image-folder manifest")
    p.add_argument("--make-jpegs", type=int, help="generate N JPEGs instead")
    p.add_argument(
        "--loaders",
        "--loader",
        nargs="+",
        choices=["torchvision", "dali"],
        default=["torchvision"],
    )
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--teacher", default="resnet50")
    p.add_argument("--student", default="resnet18")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument(
        "--real-steps", type=int, help="timed steps of `real` (default --steps)"
    )
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument(
        "--stream-warmup",
        type=int,
        help="real: untimed batches after --warmup (default 2 per worker + 1 on CUDA)",
    )
    p.add_argument("--rounds", type=int, default=1, help="medians over rounds")
    p.add_argument("--seconds", type=float, help="no new round past this budget")
    p.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=["synthetic", "real", "fp32_teacher"],
    )
    p.add_argument("--compile-backend", default="inductor", help="torch.compile's")
    p.add_argument("--T", type=float, default=3.0)
    p.add_argument("--csv", type=Path, default=Path("bench/results/kd_throughput.csv"))
    return p.parse_args()


def main() -> None:
    args = parse_args()
    budget = Budget(args.seconds)
    if args.threads:
        torch.set_num_threads(args.threads)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    if args.stream_warmup is None:
        args.stream_warmup = 2 * args.workers + 1 if device.type == "cuda" else 0
    args.real_steps = args.real_steps or args.steps
    manifest = args.manifest
    if manifest is None:
        tmp = Path(tempfile.mkdtemp(prefix="lskd-bench-"))
        manifest = make_jpegs(tmp, args.make_jpegs or 4 * args.batch_size)
    sources = open_loaders(args, manifest)
    names = next(iter(sources.values())).class_names if sources else (0, 1)
    steps, extra = make_steps(args, len(names), device), {}
    b, s = args.batch_size, args.image_size
    synthetic = [(torch.randn(b, 3, s, s, device=device), torch.zeros(b))]
    synthetic *= args.steps + args.warmup
    if "compiled" in steps:
        extra["compile_s"] = first_step_seconds(steps["compiled"], synthetic[0], device)
    rates = measure(args, device, budget, steps, synthetic, sources)
    med = {name: statistics.median(r) for name, r in rates.items()}
    report(args, device, med, extra, len(next(iter(rates.values()))), sources)


def make_steps(args, k: int, device) -> dict:
    """Teacher, student and optimizer; the step of each variant (`load_only` moves a
    batch to the device and nothing more)."""
    cuda = device.type == "cuda"
    teacher = build_model(args.teacher, k, 3, args.image_size).to(device).eval()
    student = build_model(args.student, k, 3, args.image_size).to(device)
    if cuda:
        teacher = teacher.to(memory_format=torch.channels_last)
        student = student.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)

    def load_only(x, y):
        x = x.to(device, non_blocking=True)
        if cuda:
            x.contiguous(memory_format=torch.channels_last)

    ours = make_step(teacher, student, opt, args.T, device, teacher_fp32=False)
    steps = {
        "synthetic": ours,
        "real": ours,
        "load_only": load_only,
        "fp32_teacher": make_step(teacher, student, opt, args.T, device, True),
        "cudnn_benchmark": ours,
    }
    if "compiled" in args.variants:
        backend = args.compile_backend
        t, st = (torch.compile(m, backend=backend) for m in (teacher, student))
        steps["compiled"] = make_step(t, st, opt, args.T, device, False)
    return steps


def measure(args, device, budget, steps, synthetic, sources) -> dict[str, list]:
    """Images/s of every variant in every round (per loader for load_only, real)."""
    b = args.batch_size

    def stream(source):
        gen = torch.Generator().manual_seed(0)
        while True:
            yield from source.train_batches(b, gen)

    rates: dict[str, list[float]] = {}
    warm = args.warmup + args.stream_warmup
    for _ in budget.rounds(args.rounds):
        for variant in args.variants:
            if variant in ("real", "load_only"):
                count = args.real_steps if variant == "real" else args.steps
                for loader, source in sources.items():
                    rate = timed_steps(
                        steps[variant], stream(source), count, warm, device
                    )
                    rates.setdefault(f"{variant}_{loader}", []).append(rate)
                continue
            torch.backends.cudnn.benchmark = variant == "cudnn_benchmark"
            try:
                step = steps[variant]
                rate = timed_steps(step, synthetic, args.steps, args.warmup, device)
            finally:
                torch.backends.cudnn.benchmark = False
            rates.setdefault(variant, []).append(rate)
    return rates


def report(args, device, med: dict, extra: dict, rounds: int, sources: dict) -> None:
    """Print the rates and ratios; append one row per loader to --csv."""
    base = med.get("synthetic")
    for name, rate in med.items():
        vs = f"  (x{rate / base:.3f} synthetic)" if base and name != "synthetic" else ""
        print(f"{name:>22}: {rate:9.1f} images/s{vs}")
    if "compile_s" in extra:
        print(f"{'compile_s':>22}: {extra['compile_s']:9.1f} s (first compiled step)")
    print(f"medians of {rounds} rounds, {args.steps} steps of {args.batch_size}")

    def ratio(rate, over=base):
        return round(rate / over, 3) if rate and over else ""

    def rounded(value):
        return "" if value is None else round(value, 1)

    per_loader = ("load_only", "real")
    loaders = [lo for lo in sources if any(f"{v}_{lo}" in med for v in per_loader)]
    rows = []
    for loader in loaders or ["-"]:
        real, load = (med.get(f"{v}_{loader}") for v in ("real", "load_only"))
        bound = min(load, base) if load and base else None
        row = {
            "device": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else "cpu",
            "loader": loader,
            "workers": args.workers if loaders else "",
            "teacher": args.teacher,
            "student": args.student,
            "image_size": args.image_size,
            "batch": args.batch_size,
            "steps": args.steps,
            "real_steps": args.real_steps if real else "",
            "rounds": rounds,
            "synthetic": rounded(base),
            "load_only": rounded(load),
            "real": rounded(real),
            **{v: rounded(med.get(v)) for v in VARIANTS[3:]},
            "compile_s": rounded(extra.get("compile_s")),
            "real_over_synthetic": ratio(real),
            "real_over_bound": ratio(real, bound),
            **{f"{v}_over_synthetic": ratio(med.get(v)) for v in VARIANTS[3:]},
        }
        rows.append(row)
    append_rows(args.csv, rows)


if __name__ == "__main__":
    main()
