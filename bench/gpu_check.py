"""Python helpers of scripts/gpu_check.sh (docs/performance.md#the-gpu-check).

  python bench/gpu_check.py env --csv OUT/env.csv [--require-cuda]
  python bench/gpu_check.py jpegs DIR --n 17920 --side 256 --distinct 512
  python bench/gpu_check.py junit results.xml --csv OUT/tests.csv
  python bench/gpu_check.py show OUT/summary.csv OUT/kd_throughput.csv ...

`env` prints and writes (key, value) rows: Python, torch and its CUDA, cuDNN, NCCL,
torchvision, Triton and DALI versions, the GPU (name, capability, memory,
multiprocessors, driver) and, on CUDA, the card's two ceilings measured once: a
device-to-device copy (bytes read + written per second) and a bf16 matrix product
(TFLOP/s, random data), medians of 10 after 3 warm-ups, timed with CUDA events. With
`--require-cuda` it exits 1 when torch sees no GPU. `jpegs` writes the noise JPEG
files and manifest the benchmarks share; `junit` turns pytest's JUnit XML into one
row per test; `show` prints CSV files as aligned tables.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

from results_csv import append_rows


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def dali_version() -> str:
    try:
        import nvidia.dali as dali
    except ImportError:
        return "absent"
    return dali.__version__


def nccl_version() -> str:
    import torch

    try:
        v = torch.cuda.nccl.version()
    except (AttributeError, RuntimeError) as err:
        return f"absent ({err})"
    return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


def nvidia_smi() -> dict[str, str]:
    """The driver's view of GPU 0 (read only: nothing is changed)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"nvidia_smi": "absent"}
    fields = "driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit"
    out = subprocess.run(
        [exe, f"--query-gpu={fields}", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if out.returncode != 0:
        return {"nvidia_smi": f"failed ({out.stderr.strip()[:120]})"}
    values = out.stdout.splitlines()[0].split(", ")
    return dict(zip((f"smi_{f}" for f in fields.split(",")), values, strict=False))


def event_ms(fn, reps: int = 10, warmup: int = 3) -> float:
    """Median milliseconds of `fn()` on the GPU, timed with CUDA events."""
    import torch

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def ceilings() -> dict[str, float]:
    """Copy bandwidth (2 GiB buffers) and bf16 matrix rate (8192^3, three input sets
    in turn so the inputs do not stay in L2)."""
    import torch

    n = 2**29  # float32 elements: 2 GiB
    buffers = torch.rand(n, device="cuda"), torch.empty(n, device="cuda")
    ms = event_ms(lambda: buffers[1].copy_(buffers[0]))
    copy_tb_s = 2 * 4 * n / (ms / 1e3) / 1e12
    buffers = None  # freed before the products
    m = 8192
    sets = [torch.randn(m, m, device="cuda", dtype=torch.bfloat16) for _ in range(3)]
    turn = itertools.cycle(sets)

    def product():
        a = next(turn)
        return a @ a

    ms = event_ms(product)
    return {
        "copy_tb_s": round(copy_tb_s, 2),
        "bf16_matmul_tflop_s": round(2 * m**3 / (ms / 1e3) / 1e12, 1),
    }


def env(args) -> int:
    import torch

    rows: dict[str, object] = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda or "none",
        "torchvision": version("torchvision"),
        "triton": version("triton"),
        "numpy": version("numpy"),
        "pillow": version("pillow"),
        "dali": dali_version(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        rows |= {
            "gpu": props.name,
            "gpu_count": torch.cuda.device_count(),
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "bf16_supported": torch.cuda.is_bf16_supported(),
            "cudnn": torch.backends.cudnn.version(),
            "nccl": nccl_version(),
            **nvidia_smi(),
            **ceilings(),
        }
    for key, value in rows.items():
        print(f"{key:>22}: {value}")
    append_rows(args.csv, [{"key": k, "value": v} for k, v in rows.items()])
    if args.require_cuda and not torch.cuda.is_available():
        print("env: torch sees no GPU", file=sys.stderr)
        return 1
    return 0


def jpegs(args) -> int:
    from kd_throughput import make_jpegs

    print(make_jpegs(args.dir, args.n, args.side, args.distinct))
    return 0


def junit(args) -> int:
    """One row per test case: outcome passed / failed / error / skipped, seconds, and
    the first line of the message."""
    rows = []
    for case in ET.parse(args.xml).iter("testcase"):
        outcome, message = "passed", ""
        for tag, name in (("failure", "failed"), ("error", "error"), ("skipped", "")):
            found = case.find(tag)
            if found is not None:
                outcome = name or "skipped"
                text = found.get("message") or found.text or ""
                message = (text.strip().splitlines() or [""])[0][:200]
                break
        rows.append(
            {
                "test": f"{case.get('classname', '')}::{case.get('name', '')}",
                "outcome": outcome,
                "seconds": round(float(case.get("time", 0) or 0), 2),
                "message": message,
            }
        )
    if rows:
        append_rows(args.csv, rows)
    outcomes = sorted({"passed"} | {r["outcome"] for r in rows})
    print(", ".join(f"{sum(r['outcome'] == o for r in rows)} {o}" for o in outcomes))
    return 0


def show(args) -> int:
    for path in args.files:
        if not path.is_file():
            continue
        with path.open(newline="") as fh:
            table = list(csv.reader(fh))
        if not table:
            continue
        widths = [
            max(len(r[i]) for r in table if i < len(r)) for i in range(len(table[0]))
        ]
        print(f"-- {path.name}")
        for row in table:
            print(
                "  ".join(
                    c.ljust(w) for c, w in zip(row, widths, strict=False)
                ).rstrip()
            )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("env", help="versions, GPU and its ceilings")
    e.add_argument("--csv", type=Path, required=True)
    e.add_argument("--require-cuda", action="store_true")
    j = sub.add_parser("jpegs", help="the shared noise JPEG files and manifest")
    j.add_argument("dir", type=Path)
    j.add_argument("--n", type=int, required=True)
    j.add_argument("--side", type=int, default=256)
    j.add_argument("--distinct", type=int, default=512)
    u = sub.add_parser("junit", help="pytest JUnit XML -> one CSV row per test")
    u.add_argument("xml", type=Path)
    u.add_argument("--csv", type=Path, required=True)
    s = sub.add_parser("show", help="print CSV files as tables")
    s.add_argument("files", type=Path, nargs="+")
    args = p.parse_args()
    return {"env": env, "jpegs": jpegs, "junit": junit, "show": show}[args.command](
        args
    )


if __name__ == "__main__":
    sys.exit(main())
