"""Chance-level runs: a classifier whose test top-1 is no better than guessing.

Every run's metrics.json records `chance` (`lskd.train.job` writes it, with a warning
in the job's log when `at_chance`); the paper-layout tables mark such cells (`tables`).
"""

from __future__ import annotations

import math
from typing import Any

# A test top-1 below 100/K + max(CHANCE_POINTS, CHANCE_SIGMAS binomial standard
# deviations of a guessing classifier) is at chance level.
CHANCE_POINTS = 2.0
CHANCE_SIGMAS = 3.0


def chance_level(top1: float, classes: int, test_images: int) -> dict[str, Any]:
    """Is a test top-1 (%) at chance level, i.e. the run learned nothing?

    A classifier that guesses among K classes scores 100/K % on average, with a
    standard deviation of 100 * sqrt(p (1 - p) / n) points on n test images (binomial,
    p = 1/K). A run is flagged when its top-1 is below 100/K + margin, margin = the
    larger of `CHANCE_SIGMAS` such deviations (small test splits: 1,000 Fashion-MNIST
    images give 2.85 points) and `CHANCE_POINTS` points (large ones, where 3 deviations
    are tiny: 0.04 points on ImageNet's 50,000). Returns the metrics.json field
    `chance`: classes, test_images, level (100/K), margin and at_chance.
    """
    p = 1.0 / classes
    spread = 100.0 * math.sqrt(p * (1.0 - p) / test_images)
    margin = max(CHANCE_POINTS, CHANCE_SIGMAS * spread)
    return {
        "classes": classes,
        "test_images": test_images,
        "level": 100.0 * p,
        "margin": margin,
        "at_chance": top1 < 100.0 * p + margin,
    }
