"""Embedded datasets and encoders."""

import numpy as np
import pytest

from spikeforge.data import load_dataset
from spikeforge.data.encoding import latency_encode, poisson_encode
from spikeforge.data.yinyang import generate, yinyang_class
from spikeforge.errors import SpikeforgeError


def test_latency_encoding_linear():
    samples = latency_encode(np.array([[0.0, 0.5, 1.0]]), t_max_ms=20.0, dt=1.0)
    steps, units = samples[0]
    np.testing.assert_array_equal(units, [1, 2])
    np.testing.assert_array_equal(steps, [10, 0])
    with pytest.raises(SpikeforgeError, match="values in"):
        latency_encode(np.array([[2.0]]), 20.0, 1.0)


def test_poisson_rate_matches():
    samples = poisson_encode(np.full((1, 50), 0.5), 2000, 1.0, max_rate_hz=100.0, seed=0)
    rate = len(samples[0][0]) / (50 * 2.0)
    assert rate == pytest.approx(50.0, rel=0.05)


def test_digits_splits_are_fixed_and_disjoint():
    a, b = load_dataset("digits", 1.0), load_dataset("digits", 1.0)
    assert (len(a.train), len(a.val), len(a.test)) == (1259, 269, 269)
    np.testing.assert_array_equal(a.test.labels, b.test.labels)
    assert np.bincount(a.test.labels).min() >= 25


def test_yinyang_is_balanced_and_labels_are_consistent():
    points, labels = generate(300, seed=1)
    assert np.bincount(labels).tolist() == [100, 100, 100]
    assert all(yinyang_class(x, y) == c for (x, y), c in zip(points, labels, strict=True))
    assert np.all(np.hypot(points[:, 0] - 0.5, points[:, 1] - 0.5) <= 0.5)


def test_unknown_dataset():
    with pytest.raises(SpikeforgeError, match="unknown dataset"):
        load_dataset("mnist-nope", 1.0)
