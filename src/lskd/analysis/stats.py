"""Paired statistics over seeds: the one place where intervals are computed.

Every comparison in lskd's analysis (a regularizer's benefit Δ(T), the claims, the
diffusion metrics) is made between runs that share a seed: for each seed s both sides
were trained from the same initialisation and data order, so the per-seed difference
``d_s = left_s - right_s`` removes the seed-to-seed variation the two sides have in
common. Over the n seeds present on both sides:

- ``mean = (1/n) Σ_s d_s``;
- the 95 % interval is the Student-t interval over the paired seed differences,
  ``mean ± t_{0.975, n-1} · sd(d) / sqrt(n)`` with the sample standard deviation
  (ddof 1) and Student's t quantile with n - 1 degrees of freedom
  (``scipy.stats.t.ppf``);
- with n = 1 there is no spread to estimate: the interval is NaN.

``interval`` is the same Student-t interval for one sample (a cell's mean over seeds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

from lskd.errors import DataError

LEVEL = 0.95
INTERVAL_TEXT = (
    "95 % Student-t interval over seeds (mean ± t_{0.975, n-1}·sd/√n; none for n = 1)"
)
PAIRED_TEXT = (
    "paired by seed: the mean of the per-seed differences and its 95 % Student-t "
    "interval over them (mean ± t_{0.975, n-1}·sd/√n; none for n = 1)"
)


@dataclass(frozen=True)
class Estimate:
    """Mean of ``values`` with its Student-t interval ``[low, high]`` (NaN for
    n = 1)."""

    mean: float
    low: float
    high: float
    n: int
    values: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()
    unpaired: tuple[int, ...] = ()  # seeds present on one side only (paired only)

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.low)

    def contains_zero(self) -> bool:
        """``low <= 0 <= high`` (False without an interval)."""
        return self.has_interval and self.low <= 0.0 <= self.high


def interval(values: Iterable[float], level: float = LEVEL) -> Estimate:
    """Mean and Student-t interval of one sample (module docstring); n = 0 gives an
    all-NaN estimate."""
    x = np.asarray(list(values), dtype=np.float64)
    n = len(x)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1, (float(x[0]),))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(x.std(ddof=1))
    half /= math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n, tuple(float(v) for v in x))


def paired(
    left: Mapping[int, float], right: Mapping[int, float], level: float = LEVEL
) -> Estimate:
    """``left - right`` paired by seed (the mappings' keys): mean and Student-t
    interval of the per-seed differences over the seeds both sides have (ascending);
    ``unpaired`` lists the seeds only one side has."""
    seeds = sorted(set(left) & set(right))
    diffs = [float(left[s]) - float(right[s]) for s in seeds]
    unpaired = tuple(sorted(set(left) ^ set(right)))
    est = interval(diffs, level)
    return Estimate(
        est.mean, est.low, est.high, est.n, est.values, tuple(seeds), unpaired
    )


def format_estimate(est: Estimate, digits: int = 2, signed: bool = True) -> str:
    """``+0.42 [-0.10, +0.94]``; ``+0.42`` without an interval; ``–`` for n = 0."""
    if est.n == 0:
        return "–"
    spec = f"+.{digits}f" if signed else f".{digits}f"
    text = format(est.mean, spec)
    if est.has_interval:
        text += f" [{format(est.low, spec)}, {format(est.high, spec)}]"
    return text


# (role, regularizer, objective, T) -> {seed: value}: `RunId.method_key` cells
Cells = dict[tuple, dict[int, float]]


def seed_cells(runs: Iterable, value: str = "top1") -> Cells:
    """``{run.key: {seed: run.<value>}}`` of parsed runs (``records.Run``; the key is
    ``RunId.method_key``: role, regularizer, objective, T); two runs of one cell with
    one seed are an error naming both."""
    cells: Cells = {}
    sources: dict[tuple, str] = {}
    for run in runs:
        key = run.key
        if (*key, run.seed) in sources:
            raise DataError(
                f"{run.source}: seed {run.seed} of this cell also in "
                f"{sources[(*key, run.seed)]}"
            )
        sources[(*key, run.seed)] = run.source
        cells.setdefault(key, {})[run.seed] = float(getattr(run, value))
    return cells


def half_width(sd: float, n: int, level: float = LEVEL) -> float:
    """The half-width of the Student-t interval of a mean of n paired differences of
    standard deviation ``sd``: t_{(1+level)/2, n-1} · sd / √n."""
    if n < 2:
        raise ValueError(f"an interval needs n >= 2 seeds, got {n}")
    return float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)


def seeds_for(sd: float, target: float, level: float = LEVEL, most: int = 1000) -> int:
    """The fewest paired seeds n >= 2 whose interval half-width (`half_width`) is at
    most ``target`` for paired differences of standard deviation ``sd``: how many seeds
    a study needs, given the spread a pilot measured (config/README.md)."""
    if sd < 0 or target <= 0:
        raise ValueError(f"need sd >= 0 and target > 0, got {sd}, {target}")
    for n in range(2, most + 1):
        if half_width(sd, n, level) <= target:
            return n
    raise ValueError(f"more than {most} seeds for sd {sd} and half-width {target}")
