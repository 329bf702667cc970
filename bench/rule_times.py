"""Job time per rule of a finished workflow run, from Snakemake's `benchmark:` files.

Every rule writes `benchmarks/.../<rule>.tsv` (seconds, memory); this sums them per
rule and prints jobs, total and longest job seconds, and the share of all job time,
beside the run's wall time from its newest `.snakemake/log/*.snakemake.log`. With
two cores, wall time is at least half the job time.

  python bench/rule_times.py [WORKDIR]     # default: the current directory
  python bench/rule_times.py WORKDIR --csv bench/results/rule_times.csv
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path


def benchmark_rules(workdir: Path) -> dict[str, str]:
    """Benchmark file -> its rule, from the jobs listed in the Snakemake logs."""
    rules = {}
    for log in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log")):
        text = log.read_text()
        for block in re.finditer(
            r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", text, re.M
        ):
            bench = re.search(r"^    benchmark: (.+)$", block.group(2), re.M)
            if bench:
                rules[bench.group(1).strip()] = block.group(1)
    return rules


def rule_seconds(workdir: Path) -> dict[str, list[float]]:
    """Rule name -> the seconds of each of its jobs."""
    rules = benchmark_rules(workdir)
    times: dict[str, list[float]] = defaultdict(list)
    for path in sorted((workdir / "benchmarks").rglob("*.tsv")):
        rows = list(csv.DictReader(path.open(), delimiter="\t"))
        rule = rules.get(str(path.relative_to(workdir)), path.stem)
        if rows:
            times[rule].append(float(rows[-1]["s"]))
    return dict(times)


def wall_seconds(workdir: Path) -> float | None:
    """First to last timestamp of the newest Snakemake log that ran jobs."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    ran = [log.read_text() for log in logs if "Finished jobid" in log.read_text()]
    if not ran:
        return None
    stamps = re.findall(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", ran[-1], re.M)
    if len(stamps) < 2:
        return None
    parse = [
        datetime.strptime(" ".join(s.split()), "%a %b %d %H:%M:%S %Y") for s in stamps
    ]
    return (parse[-1] - parse[0]).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path, nargs="?", default=Path("."))
    parser.add_argument("--csv", type=Path, help="also write the rows here")
    args = parser.parse_args()
    times = rule_seconds(args.workdir)
    total = sum(sum(v) for v in times.values())
    rows = [
        {
            "rule": rule,
            "jobs": len(v),
            "total_s": round(sum(v), 1),
            "max_s": round(max(v), 1),
            "share": round(sum(v) / total, 3) if total else 0.0,
        }
        for rule, v in sorted(times.items(), key=lambda kv: -sum(kv[1]))
    ]
    print(f"{'rule':24} {'jobs':>4} {'total s':>8} {'max s':>7} {'share':>6}")
    for r in rows:
        print(
            f"{r['rule']:24} {r['jobs']:>4} {r['total_s']:>8} {r['max_s']:>7} "
            f"{r['share']:>6.1%}"
        )
    wall = wall_seconds(args.workdir)
    print(f"all jobs: {total:.0f} s of job time; wall time of the last run: {wall} s")
    if args.csv:
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
