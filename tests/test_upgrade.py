"""Configs written before teacher regularizers and student objectives were grid axes
keep working unchanged: the same run paths and the same params for every training job
(Snakemake reruns a job whose params changed), so a finished study retrains nothing.

tests/data/before_methods/ holds the demo and paper configs of commit ca82052 and the
plan that commit's package made of them (tests/plan_listing.py): every teacher's
model.pt, every fused sweep's first metrics.json and every NMT run, each with its job's
command-line arguments."""

from __future__ import annotations

import json

import pytest

from conftest import REPO
from plan_listing import plan_listing

BEFORE = REPO / "tests" / "data" / "before_methods"


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_an_old_config_plans_the_same_paths_and_params(name):
    before = json.loads((BEFORE / "plan.json").read_text())[name]
    now = plan_listing(BEFORE / name)
    assert list(now) == list(before)  # the same runs at the same paths
    for path, args in before.items():
        assert now[path] == args, path
