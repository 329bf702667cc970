"""Training curves (lskd.analysis.curves, `lskd curves`) drawn from made-up
metrics.json histories: the points are the per-epoch means over seeds with their
intervals, validation only at validated epochs, and chance-level and diverged runs are
flagged."""

from __future__ import annotations

import math

import pytest

from conftest import make_metrics, write_metrics
from lskd.analysis.curves import curves, plot_curves
from lskd.analysis.records import parse_run
from lskd.analysis.stats import interval
from lskd.cli.main import main


def _history(losses, vals=None):
    vals = vals or {}
    return [
        {"epoch": e, "train_loss": loss, "val_top1": vals.get(e)}
        for e, loss in enumerate(losses, start=1)
    ]


def _runs():
    """Teachers alpha 0 / 0.1 and students at T = 1 of both, seeds 0 and 1."""
    runs = []
    for seed in (0, 1):
        for alpha in (0.0, 0.1):
            base = 1.0 + alpha + seed  # a teacher's loss: base, base/2, base/4
            runs.append(
                make_metrics(
                    "teacher",
                    alpha,
                    seed=seed,
                    history=_history([base, base / 2, base / 4], {3: 80.0 + seed}),
                )
            )
            runs.append(
                make_metrics(
                    "student",
                    alpha,
                    1.0,
                    seed,
                    history=_history([2.0 + seed, 1.0 + seed], {2: 70.0 + 2 * seed}),
                )
            )
    return runs


def _parsed(runs):
    return [(parse_run(m, f"m{i}"), m["history"]) for i, m in enumerate(runs)]


def test_each_line_is_the_mean_and_interval_over_seeds_per_epoch():
    loss = curves(_parsed(_runs()), "train_loss")
    assert list(loss) == ["teachers", "KD students"]
    ce, ls = loss["teachers"]
    assert (ce.label, ls.label) == ("CE teacher", "LS α = 0.1 teacher")
    assert ce.epochs == [1, 2, 3]
    # CE teachers: seed 0 starts at 1.0, seed 1 at 2.0, both halving per epoch
    halving = ((1.0, 2.0), (0.5, 1.0), (0.25, 0.5))
    for epoch, pair in zip(ce.epochs, halving, strict=True):
        est = interval(pair)
        i = ce.epochs.index(epoch)
        assert (ce.means[i], ce.lows[i], ce.highs[i]) == pytest.approx(
            (est.mean, est.low, est.high)
        )
    students = loss["KD students"]
    assert [c.label for c in students] == ["CE, T = 1", "LS α = 0.1, T = 1"]
    assert students[0].means == pytest.approx([2.5, 1.5])
    val = curves(_parsed(_runs()), "val_top1")
    assert val["teachers"][0].epochs == [3]  # validated only at epoch 3
    assert val["teachers"][0].means == pytest.approx([80.5])
    assert val["KD students"][1].epochs == [2]
    assert val["KD students"][1].means == pytest.approx([71.0])


def test_chance_and_divergence_are_flagged():
    runs = _runs()
    runs[1]["chance"] = {"at_chance": True}  # a CE student of seed 0
    runs[3]["history"][1]["train_loss"] = math.nan  # an LS student of seed 0
    students = curves(_parsed(runs), "train_loss")["KD students"]
    assert students[0].label == "CE, T = 1 † at chance"
    assert students[1].label == "LS α = 0.1, T = 1 ‡ diverged"
    # the diverged epoch keeps the other seed's finite value alone (no band)
    assert students[1].means == pytest.approx([2.5, 2.0])
    assert math.isnan(students[1].lows[1])


def test_cli_writes_the_figure(tmp_path):
    paths = write_metrics(tmp_path / "runs", _runs())
    out = tmp_path / "curves.png"
    assert main(["curves", *map(str, paths), "--png", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    drawn = plot_curves(paths, tmp_path / "again.png", title="t")
    assert set(drawn) == {"train_loss", "val_top1"}
