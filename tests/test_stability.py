"""Shen et al.'s stability (Shen et al. 2021, Eq. (2)) on hand-made probability vectors:
the direct formula (the float64 reference below, tested against hand computations)
and the streaming sums the training jobs use (`lskd.train.stability_sums`), tested
against it.

    S = 1 - (1/K) * sum_c (1/n_c) * sum_{i in class c} ||p_i - pbar_c||^2

p_i = softmax output (T = 1, over all classes) of image i, pbar_c its class mean, K the
number of classes with at least one image.
"""

import numpy as np
import pytest
import torch

from lskd.train.distributed import Context
from lskd.train.stability_sums import StabilitySums

CPU = Context(rank=0, world=1, device=torch.device("cpu"))


def softmax(logits: np.ndarray, T: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / T)`` in float64 (shifted by the row max)."""
    z = np.asarray(logits, dtype=np.float64) / T
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def stability(probs: np.ndarray, labels: np.ndarray) -> float:
    """Shen et al.'s S of softmax outputs ``probs`` (n, classes) with integer class
    ``labels`` (n,), directly from the formula, in float64 (the reference the
    streaming sums of the training jobs are tested against; test_engine.py too)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    spreads = [
        float(np.mean(np.sum((p - p.mean(axis=0)) ** 2, axis=1)))
        for p in (probs[labels == k] for k in np.unique(labels))
    ]
    return 1.0 - float(np.mean(spreads))


def test_identical_vectors_per_class_give_one():
    # Every class's outputs equal their class mean -> all distances 0 -> S = 1 - 0.
    probs = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.7, 0.2, 0.1],
            [0.1, 0.8, 0.1],
            [0.1, 0.8, 0.1],
            [0.1, 0.8, 0.1],
        ]
    )
    labels = np.array([0, 0, 1, 1, 1])
    assert stability(probs, labels) == 1.0


def test_known_spread_gives_hand_computed_value():
    # class 0: [1, 0], [0, 1] -> mean [.5, .5]; each ||p - mean||^2 = .25 + .25 = .5;
    #          class mean of distances = 0.5
    # class 1: [.2, .8] twice -> 0
    # S = 1 - (0.5 + 0) / 2 = 0.75
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 0.8], [0.2, 0.8]])
    labels = np.array([0, 0, 1, 1])
    assert stability(probs, labels) == pytest.approx(0.75, abs=1e-12)


def test_unequal_class_sizes_and_absent_class():
    # 3 output classes, class 2 has no sample, so K = 2.
    # class 0: [.6,.3,.1], [.4,.5,.1], [.5,.4,.1] -> mean [.5,.4,.1];
    #   distances .01+.01, .01+.01, 0 -> mean (.02 + .02 + 0) / 3 = 0.0133333
    # class 1: [.1,.9,0], [.3,.7,0] -> mean [.2,.8,0]; distances .02, .02 -> 0.02
    # S = 1 - (0.0133333 + 0.02) / 2 = 1 - 0.0166667 = 0.9833333
    probs = np.array(
        [
            [0.6, 0.3, 0.1],
            [0.4, 0.5, 0.1],
            [0.5, 0.4, 0.1],
            [0.1, 0.9, 0.0],
            [0.3, 0.7, 0.0],
        ]
    )
    labels = np.array([0, 0, 0, 1, 1])
    expected = 1 - (0.04 / 3 + 0.02) / 2
    assert stability(probs, labels) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.983333, abs=1e-6)


def test_softmax_rows_are_accepted():
    # softmax([0, ln 3]) = [.25, .75]; softmax([ln 3, 0]) = [.75, .25]; one class:
    # mean [.5, .5], distances .0625 * 2 = .125 each -> S = 1 - .125 = 0.875
    probs = softmax(np.array([[0.0, np.log(3.0)], [np.log(3.0), 0.0]]))
    assert probs[0] == pytest.approx([0.25, 0.75])
    assert stability(probs, np.array([1, 1])) == pytest.approx(0.875)


def _streamed(logits: np.ndarray, labels: np.ndarray, batch: int) -> float:
    sums = StabilitySums(torch.device("cpu"))
    for start in range(0, len(labels), batch):
        sums.add(
            torch.from_numpy(logits[start : start + batch]),
            torch.from_numpy(labels[start : start + batch]),
        )
    sums.reduce(CPU)
    return sums.value()


def test_streaming_sums_give_the_hand_computed_value():
    # the probabilities of test_unequal_class_sizes_and_absent_class, given as logits
    # (softmax(log p) = p), in batches of 2: S = 1 - (0.04 / 3 + 0.02) / 2
    probs = np.array(
        [
            [0.6, 0.3, 0.1],
            [0.4, 0.5, 0.1],
            [0.5, 0.4, 0.1],
            [0.1, 0.8, 0.1],
            [0.3, 0.6, 0.1],
        ]
    )
    # class 1: [.1,.8,.1], [.3,.6,.1] -> mean [.2,.7,.1]; distances .02 each -> .02
    labels = np.array([0, 0, 0, 1, 1])
    expected = 1 - (0.04 / 3 + 0.02) / 2
    assert _streamed(np.log(probs), labels, batch=2) == pytest.approx(
        expected, abs=1e-12
    )


@pytest.mark.parametrize("batch", [1, 7, 64, 1000])
def test_streaming_sums_equal_the_direct_formula(batch):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((300, 10)) * 4
    labels = rng.integers(0, 10, 300)
    labels[labels == 9] = 8  # class 9 has no image: left out of the mean
    direct = stability(softmax(logits), labels)
    assert _streamed(logits, labels, batch) == pytest.approx(direct, rel=1e-12)
    # float32 logits (what models produce) give the same within float32 rounding
    low = _streamed(logits.astype(np.float32), labels, batch)
    assert low == pytest.approx(direct, rel=1e-6)


def test_streaming_sums_split_over_ranks_add_up():
    # two "ranks" each stream their shard; adding the sums (the all-reduce) gives the
    # whole split's S
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((100, 5))
    labels = rng.integers(0, 5, 100)
    halves = [StabilitySums(torch.device("cpu")) for _ in range(2)]
    for i, part in enumerate((slice(0, 37), slice(37, 100))):
        halves[i].add(torch.from_numpy(logits[part]), torch.from_numpy(labels[part]))
    halves[0].sums += halves[1].sums
    assert halves[0].value() == pytest.approx(
        stability(softmax(logits), labels), rel=1e-12
    )
    assert np.isnan(StabilitySums(torch.device("cpu")).value())
