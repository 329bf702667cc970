"""Chance-level runs: the bound by hand, the metrics.json field and the log warning of
a real run that learned nothing, and the table mark."""

from __future__ import annotations

import json
import logging
import math

import pytest

from conftest import make_metrics, make_toy_npz, write_metrics
from lskd.analysis.claims import VERDICTS, evaluate_claims
from lskd.analysis.delta import write_delta
from lskd.analysis.tables import CHANCE_MARK, build_table, table_caption
from lskd.errors import DataError
from lskd.train.chance import chance_level
from lskd.train.job import RunSpec, train_teacher
from lskd.train.recipe import Recipe


def test_margin_is_three_binomial_deviations_or_two_points():
    # K = 10, n = 1000: sd = 100 * sqrt(0.1 * 0.9 / 1000) = 0.948683 points; 3 sd
    small = chance_level(12.84, 10, 1000)
    assert small["level"] == 10.0
    assert small["margin"] == pytest.approx(3 * 0.9486833, abs=1e-6)
    assert small["at_chance"] and not chance_level(12.85, 10, 1000)["at_chance"]
    # n = 10000: 3 sd = 0.95 points < the 2-point floor
    assert chance_level(11.99, 10, 10000)["margin"] == 2.0
    assert chance_level(11.99, 10, 10000)["at_chance"]
    assert not chance_level(12.0, 10, 10000)["at_chance"]
    # ImageNet-sized: 100/K = 0.1 %, 3 sd = 0.042 points, so the floor applies
    big = chance_level(2.09, 1000, 50000)
    assert big["level"] == 0.1 and big["margin"] == 2.0 and big["at_chance"]
    assert 3 * 100 * math.sqrt(0.001 * 0.999 / 50000) < 0.05


def _run(tmp_path, lr: float, epochs: int) -> RunSpec:
    return RunSpec(
        task="toy", data=make_toy_npz(tmp_path / "toy.npz", 300, 60), arch="mlp128",
        seed=0, recipe=Recipe.from_dict({"epochs": epochs, "batch_size": 50, "lr": lr}),
        model_out=tmp_path / "run" / "model.pt",
        metrics_out=tmp_path / "run" / "metrics.json",
    )  # fmt: skip


def test_run_that_learned_nothing_is_flagged(tmp_path, caplog):
    spec = _run(tmp_path, lr=1e-9, epochs=1)  # the random init, in effect
    with caplog.at_level(logging.WARNING, logger="lskd"):
        train_teacher(spec, alpha=0.0)
    metrics = json.loads(spec.metrics_out.read_text())
    assert metrics["chance"] == chance_level(metrics["top1"], 10, 60)
    assert metrics["chance"]["at_chance"], metrics["top1"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "at chance level" in warnings[0]
    assert f"{metrics['top1']:.2f} %" in warnings[0]


def test_run_that_learned_is_not_flagged(tmp_path, caplog):
    spec = _run(tmp_path, lr=0.1, epochs=2)
    with caplog.at_level(logging.WARNING, logger="lskd"):
        train_teacher(spec, alpha=0.0)
    metrics = json.loads(spec.metrics_out.read_text())
    assert metrics["top1"] > 50 and not metrics["chance"]["at_chance"]
    assert not [r for r in caplog.records if "chance" in r.getMessage()]


def _metrics(alpha: float, top1: float, at_chance: bool | None) -> dict:
    m = {
        "role": "teacher", "task": "toy", "arch": "mlp128", "alpha": alpha,
        "seed": 0, "selection": "last", "eval_split": "test",
        "top1": top1, "top5": 50.0,
    }  # fmt: skip
    if at_chance is not None:  # None: a metrics.json written before the field
        m["chance"] = {"at_chance": at_chance}
    return m


def test_table_marks_the_chance_cell_and_explains_the_mark():
    runs = [_metrics(0.0, 10.1, True), _metrics(0.1, 80.0, False)]
    table = build_table(runs)
    assert table.loc["Teacher mlp128", "CE"] == f"10.10 / 50.00 {CHANCE_MARK}"
    assert table.loc["Teacher mlp128", "LS α = 0.1"] == "80.00 / 50.00"
    assert f"{CHANCE_MARK} marks a cell with a run at chance level" in table_caption(
        runs
    )


def test_table_without_chance_runs_has_no_mark():
    runs = [_metrics(0.0, 10.1, None), _metrics(0.1, 80.0, False)]
    assert CHANCE_MARK not in build_table(runs).to_string()
    assert CHANCE_MARK not in table_caption(runs)


@pytest.mark.parametrize("chance", [{"at_chance": "yes"}, {}, [True]])
def test_bad_chance_field_names_the_file(chance):
    runs = [{**_metrics(0.0, 10.1, None), "chance": chance}]
    with pytest.raises(DataError, match=r"^metrics\[0\]: key 'chance"):
        build_table(runs)


# --- Δ(T), its summary and figure, and the claims: a run at chance is marked, and
# what rests on it is not judged (issue 27: students at chance fed the verdicts).


def _pair_runs(chance_T: float | None) -> list[dict]:
    """ce and ls α = 0.1 teachers and KD students at T = 1, 64, three seeds; the
    ls teacher's students at `chance_T` (if any) are at chance level (10.1 %)."""
    runs = [
        make_metrics("teacher", a, None, s, 85.0 + a, chance={"at_chance": False})
        for a in (0.0, 0.1)
        for s in range(3)
    ]
    for alpha in (0.0, 0.1):
        for T in (1.0, 64.0):
            for s in range(3):
                low = alpha == 0.1 and T == chance_T
                top1 = 10.1 if low else 70.0 + s + alpha * 10 * (T == 1.0)
                runs.append(
                    make_metrics(
                        "student", alpha, T, s, top1, chance={"at_chance": low}
                    )
                )
    return runs


def test_delta_marks_a_student_at_chance_and_does_not_judge_it(tmp_path):
    paths = write_metrics(tmp_path / "runs", _pair_runs(chance_T=64.0))
    out = tmp_path / "out"
    files = {ext: out / f"d.{ext}" for ext in ("csv", "md", "tex", "html", "png")}
    table = write_delta(
        paths,
        *files.values(),
        summary_md=out / "s.md",
        summary_html_path=out / "s.html",
    )
    assert table.set_index("T")["at_chance"].to_dict() == {1.0: False, 64.0: True}
    md = files["md"].read_text(encoding="utf-8")
    assert f" {CHANCE_MARK} |" in md and md.count(CHANCE_MARK) == 2  # cell, caption
    assert f"{CHANCE_MARK} marks a Δ with a student at chance level" in md
    summary = (out / "s.md").read_text(encoding="utf-8")
    assert (
        f"T = 64: Δ = -60.90 [-63.38, -58.42] {CHANCE_MARK} (n = 3): not judged: a "
        f"student at chance level {CHANCE_MARK}" in summary
    )
    assert "T = 1: Δ = +1.00 [+1.00, +1.00] (n = 3): the LS α = 0.1 teacher's " in (
        summary
    )
    # C4 (the two students at the largest T) rests on them: not judged, in words
    assert (
        "C4 not judged: the KD students of the LS α = 0.1 teacher at T = 64 at chance"
        in summary
    )


def test_claims_resting_on_a_run_at_chance_are_not_judged():
    claims = evaluate_claims(_pair_runs(chance_T=64.0)).set_index("claim_id")
    at_64 = "not judged: the KD students of the LS α = 0.1 teacher at T = 64 at chance"
    assert claims.loc["C4", "verdict"] == at_64
    assert "† a run at chance level has not learned" in claims.loc["C4", "note"]
    assert claims.loc["C1", "verdict"] in VERDICTS  # the teachers learned
    clean = evaluate_claims(_pair_runs(chance_T=None))
    assert set(clean["verdict"]) <= set(VERDICTS)
