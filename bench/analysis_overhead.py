"""Wall time of the demo DAG with and without the claims/diffusion/stability stage.

Runs the same config twice from scratch in two fresh working directories, one after the
other in this process: (1) without the extra analysis: `--until make_table
plot_projections` (training, penultimate features, projections, tables, figures);
(2) the whole DAG (adds measure_diffusion, check_claims, make_diffusion_table). Prints
both wall times, the overhead ratio and the extra rules' summed job seconds from their
benchmark files; appends a row to --csv.

  python bench/analysis_overhead.py                           # the demo config
  python bench/analysis_overhead.py --configfile .test/config/config.yaml
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
from results_csv import append_rows

REPO = Path(__file__).resolve().parents[1]
EXTRA_RULES = ("measure_diffusion", "check_claims", "make_diffusion_table")


def run_dag(workdir: Path, configfile: Path, cores: int, until: list[str]) -> float:
    cmd = [
        "snakemake",
        "--snakefile",
        str(REPO / "workflow/Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--cores",
        str(cores),
        "--quiet",
        "all",
    ]
    if until:
        cmd += ["--until", *until]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def extra_job_seconds(workdir: Path) -> float:
    """Summed `s` column of the extra rules' benchmark files."""
    total = 0.0
    for path in (workdir / "benchmarks").rglob("*.tsv"):
        rule = path.stem
        if rule in EXTRA_RULES or rule.endswith(("_claims", "_diffusion")):
            total += float(pd.read_csv(path, sep="\t")["s"].sum())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", type=Path, default=REPO / "config/config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--csv", type=Path, default=REPO / "bench/results/overhead.csv")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        without = run_dag(
            Path(tmp, "without"),
            args.configfile.resolve(),
            args.cores,
            ["make_table", "plot_projections"],
        )
        with_all = run_dag(Path(tmp, "with"), args.configfile.resolve(), args.cores, [])
        extra = extra_job_seconds(Path(tmp, "with"))
    ratio = with_all / without
    print(f"without analysis stage: {without:.1f} s")
    print(f"with analysis stage:    {with_all:.1f} s")
    print(f"overhead: x{ratio:.3f} ({100 * (ratio - 1):+.1f} %)")
    print(f"extra rules' summed job time: {extra:.1f} s")
    row = {
        "config": args.configfile.name,
        "cores": args.cores,
        "without_s": f"{without:.1f}",
        "with_s": f"{with_all:.1f}",
        "ratio": f"{ratio:.3f}",
        "extra_s": f"{extra:.1f}",
    }
    append_rows(args.csv, [row])


if __name__ == "__main__":
    main()
