"""Every training job of a config as the plan spells it: {output path: its params}.

Works on the plan of this version and of the one before methods were choices (commit
ca82052, teachers keyed by the `alpha` wildcard, one objective), so that
tests/data/before_methods/plan.json, written by this module with that commit's package
from its config files (copied beside it: ``PYTHONPATH=<ca82052>/src python
tests/plan_listing.py tests/data/before_methods/{config,paper}.yaml``), can be compared
with today's plan of the same files (tests/test_upgrade.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from lskd.plan import jobs
from lskd.plan.config import validate_config
from lskd.plan.grid import Grid
from lskd.plan.paths import METRICS, MODEL, NMT_STUDENT, NMT_TEACHER, STUDENT, TEACHER


def _teachers(grid: Grid) -> list[dict]:
    """The wildcards of every teacher (`alpha` before methods, `reg` after)."""
    key, values = (
        ("reg", grid.regs) if hasattr(grid, "regs") else ("alpha", grid.alphas)
    )
    return [
        {"task": w["task"], "tarch": w["tarch"], key: v, "tseed": s}
        for w in grid.pairs()
        for v in values
        for s in grid.seeds
    ]


def plan_listing(config_file: Path) -> dict[str, str]:
    grid = Grid(validate_config(yaml.safe_load(Path(config_file).read_text())))
    listing = {}
    for w in _teachers(grid):
        listing[f"{TEACHER.format(**w)}/{MODEL}"] = jobs.run_args(grid, w, "teacher")
    objs = getattr(grid, "objs", [None])
    for pair in grid.pairs():
        for w in _teachers(grid):
            if (w["task"], w["tarch"]) != (pair["task"], pair["tarch"]):
                continue
            for obj in objs:
                s = w | pair | {"seed": w["tseed"]} | ({"obj": obj} if obj else {})
                first = STUDENT.format(**s, T=grid.temps[0])
                listing[f"{first}/{METRICS}"] = jobs.run_args(grid, s, "students")
    nmt = getattr(grid, "nmt_alphas", None) or getattr(grid, "alphas", [])
    for pair in grid.nmt_pairs:
        for a in nmt:
            for s in grid.nmt_seeds:
                w = {"ntask": grid.nmt_task, "pair": pair, "alpha": a, "tseed": s}
                teacher = NMT_TEACHER.format(**w)
                listing[teacher] = jobs.nmt_run_args(grid, w, "teacher")
                if pair in grid.nmt_student_pairs:
                    student = NMT_STUDENT.format(**w, T=grid.temps[0])
                    listing[student] = jobs.nmt_run_args(grid, w, "student")
    return dict(sorted(listing.items()))


if __name__ == "__main__":
    listings = {Path(f).name: plan_listing(Path(f)) for f in sys.argv[1:]}
    print(json.dumps(listings, indent=1))
