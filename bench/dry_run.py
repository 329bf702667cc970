"""`snakemake -n` wall time on the paper grid (fused and per-T students) and on the
demo, against the 5 s target, side by side in one run.

Each round runs every variant once, in turn, in a fresh empty --directory (nothing is
built, so every job is planned); medians and minima over rounds are reported with
`snakemake --version` (interpreter and import start-up) as the floor: on a loaded
machine the floor grows with the load, the time above it much less.

  python bench/dry_run.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from results_csv import append_rows

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 5.0


def variants(tmp: Path) -> dict[str, list[str]]:
    separate = tmp / "separate.yaml"
    separate.write_text("run:\n  fuse_temperatures: false\n")
    paper = str(REPO / "config" / "paper.yaml")
    return {
        "snakemake --version": ["--version"],
        "paper grid, fused": ["-n", "--configfile", paper],
        "paper grid, per-T jobs": ["-n", "--configfile", paper, str(separate)],
        "demo, fused": ["-n", "--configfile", str(REPO / "config" / "config.yaml")],
    }


def run_once(args: list[str], tmp: Path) -> float:
    work = Path(tempfile.mkdtemp(dir=tmp))
    cmd = ["snakemake", "-s", str(REPO / "workflow" / "Snakefile")]
    cmd += ["--directory", str(work), *args]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--csv", type=Path, default=Path("bench/results/dry_run.csv"))
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lskd-dryrun-"))
    cases = variants(tmp)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, cmd in cases.items():
            times[name].append(run_once(cmd, tmp))
    rows = []
    floor = statistics.median(times["snakemake --version"])
    for name, values in times.items():
        med, low = statistics.median(values), min(values)
        rows.append(
            {
                "variant": name,
                "rounds": args.rounds,
                "median_s": round(med, 2),
                "min_s": round(low, 2),
                "median_over_target": round(med / TARGET_S, 3),
                "median_over_floor": round(med / floor, 3),
                "above_floor_s": round(med - floor, 2),
            }
        )
        print(
            f"{name:>24}: median {med:.2f} s, min {low:.2f} s ({med / TARGET_S:.2f} x "
            f"{TARGET_S:g} s; {med / floor:.2f} x the start-up floor, "
            f"+{med - floor:.2f} s)"
        )
    append_rows(args.csv, rows)


if __name__ == "__main__":
    main()
