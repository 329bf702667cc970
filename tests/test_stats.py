"""Paired statistics over seeds (lskd.analysis.stats) against hand computations."""

import math

import pytest

from conftest import make_metrics
from lskd.analysis.records import parse_run
from lskd.analysis.stats import (
    format_estimate,
    half_width,
    interval,
    paired,
    seed_cells,
    seeds_for,
)
from lskd.errors import DataError
from lskd.identity import DEFAULT_OBJECTIVE, Choice

# Student's t quantiles t_{0.975, df} from printed tables.
T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824}


def test_interval_of_three_values_by_hand():
    # values 1, 2, 3: mean 2, sample sd 1, half-width t_{.975,2} * 1 / sqrt(3)
    est = interval([1.0, 2.0, 3.0])
    half = T975[2] / math.sqrt(3)  # 2.4841
    assert est.n == 3 and est.mean == pytest.approx(2.0)
    assert est.low == pytest.approx(2.0 - half, abs=1e-4)
    assert est.high == pytest.approx(2.0 + half, abs=1e-4)
    assert est.contains_zero()


def test_one_value_has_no_interval_and_none_is_empty():
    one = interval([0.7])
    assert one.mean == 0.7 and one.n == 1
    assert math.isnan(one.low) and math.isnan(one.high) and not one.has_interval
    assert not one.contains_zero()
    none = interval([])
    assert none.n == 0 and math.isnan(none.mean)
    assert format_estimate(none) == "–"
    assert format_estimate(one) == "+0.70"


def test_paired_by_seed_not_by_order():
    # left and right given in different orders; seed 9 only on the left.
    left = {2: 71.0, 0: 70.5, 1: 72.0, 9: 50.0}
    right = {0: 70.0, 1: 70.0, 2: 70.5}
    est = paired(left, right)
    # per-seed differences (seeds 0, 1, 2): 0.5, 2.0, 0.5 -> mean 1.0
    # sd = sqrt(((-.5)^2 + 1^2 + (-.5)^2) / 2) = sqrt(0.75) = 0.8660
    half = T975[2] * math.sqrt(0.75) / math.sqrt(3)  # 2.1514
    assert est.seeds == (0, 1, 2) and est.values == (0.5, 2.0, 0.5)
    assert est.unpaired == (9,)
    assert est.mean == pytest.approx(1.0)
    assert est.low == pytest.approx(1.0 - half, abs=1e-4)
    assert est.high == pytest.approx(1.0 + half, abs=1e-4)
    assert format_estimate(est) == f"+1.00 [{1 - half:+.2f}, {1 + half:+.2f}]"


def test_paired_removes_the_shared_seed_effect():
    # Seeds differ by a lot, the pair difference is constant: zero-width interval.
    est = paired({0: 60.0, 1: 80.0}, {0: 59.0, 1: 79.0})
    assert (est.mean, est.low, est.high) == pytest.approx((1.0, 1.0, 1.0))


def test_two_seeds_by_hand():
    # differences 1 and 3: mean 2, sd sqrt(2), half = 12.7062 * sqrt(2) / sqrt(2)
    est = paired({0: 3.0, 1: 5.0}, {0: 2.0, 1: 2.0})
    assert est.low == pytest.approx(2.0 - T975[1], abs=1e-4)
    assert est.high == pytest.approx(2.0 + T975[1], abs=1e-4)


def _run(role, alpha, T, seed, top1, source):
    return parse_run(make_metrics(role, alpha, T, seed, top1), source)


def test_seed_cells_and_duplicate_seed():
    runs = [
        _run("student", 0.1, 1.0, 0, 70.0, "a.json"),
        _run("student", 0.1, 1.0, 1, 71.0, "b.json"),
        _run("teacher", 0.0, None, 0, 80.0, "c.json"),
    ]
    cells = seed_cells(runs)
    ls, ce = Choice.from_alpha(0.1), Choice.from_alpha(0.0)
    assert cells == {  # keyed by RunId.method_key: role, regularizer, objective, T
        ("student", ls, DEFAULT_OBJECTIVE, 1.0): {0: 70.0, 1: 71.0},
        ("teacher", ce, None, None): {0: 80.0},
    }
    assert [run.key for run in runs] == [run.id.method_key for run in runs]
    with pytest.raises(
        DataError, match=r"d\.json: seed 1 of this cell also in b\.json"
    ):
        seed_cells([*runs, _run("student", 0.1, 1.0, 1, 72.0, "d.json")])


def test_seeds_for_a_half_width_by_hand():
    # sd 0.5, target 0.4: n = 8 gives 2.3646 * 0.5 / sqrt(8) = 0.418 > 0.4,
    # n = 9 gives 2.3060 * 0.5 / 3 = 0.384 <= 0.4 (t_{0.975, 7}, t_{0.975, 8}: tables)
    assert half_width(0.5, 8) == pytest.approx(2.3646 * 0.5 / math.sqrt(8), abs=1e-4)
    assert half_width(0.5, 9) == pytest.approx(2.3060 * 0.5 / 3, abs=1e-4)
    assert seeds_for(0.5, 0.4) == 9
    # the pilot of n = 3 itself: 4.3027 * sd / sqrt(3) = 2.48 sd
    assert half_width(1.0, 3) == pytest.approx(2.4841, abs=1e-4)
    assert seeds_for(0.0, 0.4) == 2  # no spread: the smallest n with an interval
    with pytest.raises(ValueError, match="n >= 2"):
        half_width(0.5, 1)
