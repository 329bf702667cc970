"""Fused T-sweep vs its ideal bound vs K separate jobs, side by side in one run.

Three ways to train K students (one per temperature) for `--steps` steps, in rounds
(each round measures every variant once, in turn; the medians over rounds are
reported, so slow phases of a shared machine hit all variants alike):

- fused: `train_api.sweep_pass`, the production loop of a fused job: one data stream
  and one teacher forward per batch, K student steps, one optimizer step;
- separate: K times `train_api.train_pass` (one KD job), each with its own data
  stream and teacher forward, as K separate `lskd distill` jobs run (job start-up and
  evaluation not included, which favours the separate jobs);
- ideal bound: one teacher forward + K student steps per batch, each timed alone on
  batches already on the device (`ideal`); `ideal+data` adds the data stream timed
  alone (on CPU the data pipeline runs in the training thread).

CPU (default): the demo models on Fashion-MNIST-shaped uint8 arrays through the demo's
in-memory pipeline. GPU (`--device cuda`): ResNet-50 -> ResNet-18 at 224 px on real
JPEG files (generated, or those of `--manifest`) through `--loader torchvision|dali`,
bf16 autocast and channels_last as `lskd distill` runs it. `--teacher-variants` also
times the teacher forward alone as fp32, bf16+channels_last, +torch.compile and +CUDA
graph (item 3 of the fused-sweep issue; the last two only where they apply).

With JPEG files each timed stream first runs `--stream-warmup` batches untimed
(default on CUDA: two per loader worker and one more, what the workers decode ahead),
so that the figures are of the loader's steady state, not of its workers' start or of
batches decoded before the clock started; the files should then hold
(stream warm-up + steps) batches, or a stream restarts an epoch inside a timing.
`--seconds` stops starting rounds once another would end past that budget.

  python bench/fused_sweep.py                                   # CPU demo models
  python bench/fused_sweep.py --device cuda --loader dali --workers 16 \\
      --teacher-variants --compile
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from budget import Budget
from results_csv import append_rows
from train_api import (
    FrozenTeacher,
    Recipe,
    RNGStreams,
    autocast,
    make_optimizer,
    make_scheduler,
    one_process,
    sweep_pass,
    train_pass,
)

from lskd.data.arrays import Arrays
from lskd.data.batches import Augment
from lskd.data.source import ArraySource, open_source
from lskd.models.registry import build_model
from lskd.objectives.kd import kd_loss


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def array_source(n: int, seed: int = 0) -> ArraySource:
    """Fashion-MNIST-shaped uint8 arrays behind the demo's pipeline (hflip, pad 0)."""
    rng = np.random.default_rng(seed)
    images = {s: rng.integers(0, 255, (n, 1, 28, 28), dtype=np.uint8) for s in "tv"}
    labels = {s: rng.integers(0, 10, n).astype(np.int64) for s in "tv"}
    names = tuple(str(i) for i in range(10))
    arrays = Arrays(
        {"train": images["t"], "val": images["v"], "test": images["v"]},
        {"train": labels["t"], "val": labels["v"], "test": labels["v"]},
        names,
        (0.286,),
        (0.353,),
    )
    return ArraySource(arrays, Augment(pad=0, hflip=True))


def jpeg_source(args):
    """The JPEG files of `args.manifest`, else `args.jpegs` generated ones (default 4
    batches), through `args.loader`."""
    manifest = args.manifest
    if manifest is None:
        from kd_throughput import make_jpegs  # bench/ is on sys.path as a script

        tmp = Path(tempfile.mkdtemp(prefix="lskd-bench-"))
        manifest = make_jpegs(tmp, args.jpegs or 4 * args.batch_size)
    augment = {"image_size": args.image_size, "eval_resize": args.image_size * 8 // 7}
    return open_source(manifest, augment, args.loader, args.workers)


def stream(source, batch: int, seed: int) -> Iterator:
    """An endless training stream, as one job's generator would give it."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield from source.train_batches(batch, gen)


def steady(run: Callable, source, batch: int, seed: int, args, device) -> float:
    """Seconds `run(batches)` takes over `args.steps` batches of a fresh stream, after
    `args.stream_warmup` batches of the same stream run untimed."""
    batches = stream(source, batch, seed)
    if args.stream_warmup:
        run(islice(batches, args.stream_warmup))
    return timed(lambda: run(islice(batches, args.steps)), device)


class Setup:
    """Teacher, K identical students (same init) and their optimizers and schedulers."""

    def __init__(self, args, source, student_arch: str, device: torch.device):
        k = len(source.class_names)
        c, side = source.in_channels, source.image_size
        self.device, self.temps = device, args.temperatures
        teacher = build_model(args.teacher, k, c, side).to(device)
        torch.manual_seed(0)
        student = build_model(student_arch, k, c, side).to(device)
        if device.type == "cuda":
            teacher = teacher.to(memory_format=torch.channels_last)
            student = student.to(memory_format=torch.channels_last)
        self.teacher = FrozenTeacher(teacher)
        self.recipe = Recipe.from_dict(
            {"epochs": 10_000, "batch_size": args.batch_size, "lr": 0.01}
        )
        self.fused = [copy.deepcopy(student) for _ in self.temps]
        self.alone = [copy.deepcopy(student) for _ in self.temps]
        self.fused_opt = make_optimizer(torch.nn.ModuleList(self.fused), self.recipe)
        self.fused_sched = make_scheduler(self.fused_opt, self.recipe, 10_000)
        self.opts = [make_optimizer(s, self.recipe) for s in self.alone]
        self.scheds = [make_scheduler(o, self.recipe, 10_000) for o in self.opts]
        self.streams = RNGStreams(len(self.temps), device)
        self.ctx = one_process(device)
        self.compiled: Callable | None = None  # the compiled teacher (--compile)


def run_fused(s: Setup, batches) -> None:
    sweep_pass(
        s.fused,
        s.teacher,
        s.temps,
        batches,
        s.fused_opt,
        s.fused_sched,
        s.streams,
        s.ctx,
    )


def job(s: Setup, i: int) -> Callable:
    """Student i's separate job: its training loop over the batches it is given."""
    return lambda batches: train_pass(
        s.alone[i], s.teacher, s.temps[i], batches, s.opts[i], s.scheds[i], s.ctx
    )


def run_separate(s: Setup, source, batch: int, steps: int) -> None:
    for i in range(len(s.temps)):
        job(s, i)(islice(stream(source, batch, seed=i), steps))


def time_separate(s: Setup, source, args) -> float:
    """The K separate jobs, each on its own stream, timed one after the other."""
    b, dev = args.batch_size, s.device
    return sum(steady(job(s, i), source, b, i, args, dev) for i in range(len(s.temps)))


def on_device(batches, device):
    return [(x.to(device), y.to(device)) for x, y in batches]


def components(s: Setup, source, args) -> dict[str, float]:
    """Data stream, teacher forward and each student's step, each timed alone."""
    dev, n = s.device, args.steps
    data = steady(
        lambda raw: on_device(raw, dev), source, args.batch_size, 99, args, dev
    )
    batches = on_device(islice(stream(source, args.batch_size, seed=98), n), dev)
    if dev.type == "cuda":
        cl = torch.channels_last
        batches = [(x.contiguous(memory_format=cl), y) for x, y in batches]

    def teacher_only():
        with autocast(dev):
            return [s.teacher(x) for x, _ in batches]

    teacher = timed(teacher_only, dev)
    logits = teacher_only()
    students = 0.0
    for student, opt, T in zip(s.alone, s.opts, s.temps, strict=True):

        def steps(student=student, opt=opt, T=T):
            student.train()
            for (x, _), t in zip(batches, logits, strict=True):
                with autocast(dev):
                    loss = kd_loss(student(x), t, T)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        students += timed(steps, dev)
    return {"data": data, "teacher": teacher, "students": students}


def teacher_variants(s: Setup, source, args) -> dict[str, float]:
    """Teacher forward alone (seconds per `--steps` batches): fp32 contiguous, bf16 +
    channels_last (lskd's CUDA default), + torch.compile, + CUDA graph."""
    dev = s.device
    batches = on_device(islice(stream(source, args.batch_size, seed=97), 4), dev)
    xs = [x for x, _ in batches] * (args.steps // 4 + 1)
    xs = xs[: args.steps]
    fp32 = copy.deepcopy(s.teacher.teacher).to(memory_format=torch.contiguous_format)
    out = {}

    @torch.no_grad()
    def run(model, cl: bool, bf16: bool) -> float:
        fmt = torch.channels_last if cl else torch.contiguous_format
        inputs = [x.contiguous(memory_format=fmt) for x in xs]
        ctx = autocast(dev) if bf16 else torch.autocast(dev.type, enabled=False)
        with ctx:
            for x in inputs[:3]:
                model(x)  # warm-up (and compilation)
            return timed(lambda: [model(x) for x in inputs], dev)

    out["teacher_fp32"] = run(fp32, cl=False, bf16=False)
    if dev.type == "cuda":
        out["teacher_bf16_cl"] = run(s.teacher.teacher, cl=True, bf16=True)
        out["teacher_bf16_cl_graph"] = run(
            graphed(s.teacher.teacher, xs[0]), cl=True, bf16=True
        )
    if s.compiled is not None:
        out["teacher_compiled"] = run(s.compiled, cl=dev.type == "cuda", bf16=True)
    return out


def compile_teacher(s: Setup, source, args) -> None:
    """The teacher wrapped in torch.compile and compiled on one batch, before the
    rounds (so that the budget's estimate of a round leaves compilation out)."""
    dev = s.device
    s.compiled = torch.compile(s.teacher.teacher, backend=args.compile_backend)
    x, _ = next(iter(stream(source, args.batch_size, seed=97)))
    fmt = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    with torch.no_grad(), autocast(dev):
        s.compiled(x.to(dev).contiguous(memory_format=fmt))


def graphed(model: torch.nn.Module, example: torch.Tensor) -> Callable:
    """The frozen teacher's forward as one CUDA graph replay (fixed batch shape; other
    shapes run eagerly). Captured under bf16 autocast without its weight cache."""
    static_x = example.contiguous(memory_format=torch.channels_last).clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    amp = torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)
    with torch.cuda.stream(side), torch.no_grad(), amp:
        for _ in range(3):
            model(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad(), amp:
        static_y = model(static_x)

    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.shape != static_x.shape:
            return model(x)
        static_x.copy_(x)
        graph.replay()
        return static_y.clone()

    return forward


def measure(args, source, student_arch: str, device, budget: Budget) -> dict:
    s = Setup(args, source, student_arch, device)
    b = args.batch_size
    run_fused(s, islice(stream(source, b, seed=0), args.warmup))  # warm-up
    run_separate(s, source, b, args.warmup)
    if args.teacher_variants and args.compile:
        compile_teacher(s, source, args)
    rounds: dict[str, list[float]] = {}
    for _ in budget.rounds(args.rounds):
        times = {
            "fused": steady(lambda fb: run_fused(s, fb), source, b, 0, args, device)
        }
        times["separate"] = time_separate(s, source, args)
        times.update(components(s, source, args))
        if args.teacher_variants:
            times.update(teacher_variants(s, source, args))
        for key, value in times.items():
            rounds.setdefault(key, []).append(value)
    med = {k: statistics.median(v) for k, v in rounds.items()}
    med["ideal"] = med["teacher"] + med["students"]
    med["ideal_data"] = med["ideal"] + med["data"]
    med["rounds"] = len(rounds["fused"])
    return med


def add_stream_flags(p: argparse.ArgumentParser) -> None:
    """The JPEG-stream flags this script and pipeline.py share."""
    p.add_argument("--manifest", type=Path, help="JPEG files of this manifest instead")
    p.add_argument(
        "--stream-warmup",
        type=int,
        help="JPEG streams: untimed batches first (default 2 per worker + 1 on CUDA)",
    )
    p.add_argument("--seconds", type=float, help="no new round past this budget")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--teacher", help="default: mlp512 (CPU) / resnet50 (CUDA)")
    p.add_argument("--students", nargs="+", help="default: mlp512 mlp128 / resnet18")
    p.add_argument("--temperatures", type=float, nargs="+", default=[1, 2, 3, 64])
    p.add_argument("--batch-size", type=int, help="default: 128 (CPU) / 256 (CUDA)")
    p.add_argument("--steps", type=int, default=40, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="medians over rounds")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--loader", choices=["torchvision", "dali"], default="torchvision")
    p.add_argument("--workers", type=int, default=8, help="JPEG loading workers")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--jpegs", type=int, help="generated JPEG files (default 4 batches)")
    add_stream_flags(p)
    p.add_argument("--teacher-variants", action="store_true")
    p.add_argument("--compile", action="store_true", help="time a compiled teacher")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile's")
    p.add_argument("--csv", type=Path, default=Path("bench/results/fused_sweep.csv"))
    args = p.parse_args()
    budget = Budget(args.seconds)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    jpegs = cuda or args.manifest is not None
    args.teacher = args.teacher or ("resnet50" if cuda else "mlp512")
    args.students = args.students or (["resnet18"] if cuda else ["mlp512", "mlp128"])
    args.batch_size = args.batch_size or (256 if cuda else 128)
    if args.stream_warmup is None:
        args.stream_warmup = 2 * args.workers + 1 if cuda and jpegs else 0
    source = jpeg_source(args) if jpegs else array_source(64 * args.batch_size)
    loader = args.loader if jpegs else "arrays"
    rows = []
    for arch in args.students:
        m = measure(args, source, arch, device, budget)
        k = len(args.temperatures)
        row = {
            "device": torch.cuda.get_device_name() if cuda else f"cpu x{args.threads}",
            "loader": loader,
            "teacher": args.teacher,
            "student": arch,
            "K": k,
            "batch": args.batch_size,
            "steps": args.steps,
            "fused_s": round(m["fused"], 3),
            "separate_s": round(m["separate"], 3),
            "ideal_s": round(m["ideal"], 3),
            "data_s": round(m["data"], 3),
            "fused_over_ideal": round(m["fused"] / m["ideal"], 3),
            "fused_over_ideal_data": round(m["fused"] / m["ideal_data"], 3),
            "fused_over_separate": round(m["fused"] / m["separate"], 3),
        }
        extra = {k: round(v, 3) for k, v in m.items() if k.startswith("teacher_")}
        row["teacher_variants_s"] = " ".join(f"{k}={v}" for k, v in extra.items())
        rows.append(row)
        print(
            f"{args.teacher} -> {arch} x{k} ({row['device']}, {loader}): "
            f"fused {m['fused']:.2f} s, separate {m['separate']:.2f} s, "
            f"ideal {m['ideal']:.2f} s (+data {m['data']:.2f} s) for {args.steps} steps"
            f" (medians of {m['rounds']} rounds)"
        )
        print(
            f"  fused / ideal = {row['fused_over_ideal']:.3f}   "
            f"fused / (ideal + data) = {row['fused_over_ideal_data']:.3f}   "
            f"fused / separate = {row['fused_over_separate']:.3f}"
        )
        if extra:
            base = extra["teacher_fp32"]
            for name, secs in extra.items():
                print(f"  {name:>24}: {secs:.3f} s  (x{base / secs:.2f} vs fp32)")
    append_rows(args.csv, rows)


if __name__ == "__main__":
    main()
