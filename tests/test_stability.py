"""Reconstructed stability metric (PAPER.md §6) on hand-made probability vectors."""

import numpy as np
import pytest

from lskd.analysis.stability import softmax, stability_reconstructed
from lskd.errors import DataError


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
    assert stability_reconstructed(probs, labels) == 1.0


def test_known_spread_gives_hand_computed_value():
    # class 0: [1, 0], [0, 1] -> mean [.5, .5]; each ||p - mean||^2 = .25 + .25 = .5;
    #          class mean of distances = 0.5
    # class 1: [.2, .8] twice -> 0
    # S = 1 - (0.5 + 0) / 2 = 0.75
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 0.8], [0.2, 0.8]])
    labels = np.array([0, 0, 1, 1])
    assert stability_reconstructed(probs, labels) == pytest.approx(0.75, abs=1e-12)


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
    assert stability_reconstructed(probs, labels) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.983333, abs=1e-6)


def test_softmax_rows_are_accepted():
    # softmax([0, ln 3]) = [.25, .75]; softmax([ln 3, 0]) = [.75, .25]; one class:
    # mean [.5, .5], distances .0625 * 2 = .125 each -> S = 1 - .125 = 0.875
    probs = softmax(np.array([[0.0, np.log(3.0)], [np.log(3.0), 0.0]]))
    assert probs[0] == pytest.approx([0.25, 0.75])
    assert stability_reconstructed(probs, np.array([1, 1])) == pytest.approx(0.875)


def test_bad_inputs_raise():
    good = np.array([[0.5, 0.5], [0.2, 0.8]])
    labels = np.array([0, 1])
    with pytest.raises(DataError, match="row 1 sums to 1.1"):
        stability_reconstructed(np.array([[0.5, 0.5], [0.3, 0.8]]), labels)
    with pytest.raises(DataError, match="row 0 sums to 3, not 1.*not logits"):
        stability_reconstructed(np.array([[2.0, 1.0], [0.0, 1.0]]), labels)
    with pytest.raises(DataError, match="negative entry"):
        stability_reconstructed(np.array([[1.5, -0.5], [0.2, 0.8]]), labels)
    with pytest.raises(DataError, match=r"labels must lie in \[0, 1\]"):
        stability_reconstructed(good, np.array([0, 2]))
    with pytest.raises(DataError, match="labels have shape"):
        stability_reconstructed(good, np.array([0]))
    with pytest.raises(DataError, match="integers"):
        stability_reconstructed(good, np.array([0.0, 1.0]))
    with pytest.raises(DataError, match="non-finite"):
        stability_reconstructed(np.array([[np.nan, 0.5], [0.2, 0.8]]), labels)
    # within the 1e-4 tolerance is fine
    near = np.array([[0.50004, 0.5], [0.2, 0.8]])
    assert stability_reconstructed(near, labels) == 1.0
