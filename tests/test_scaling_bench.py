"""benchmarks/scaling.py: the cost model fit and the calibration sub-batch."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scaling  # noqa: E402


def test_fit_recovers_a_known_cost_model():
    rng = np.random.default_rng(0)
    s = rng.uniform(1e5, 1e9, 20)
    n = rng.uniform(1e4, 1e8, 20)
    rows = [{"synaptic_events": a, "neuron_steps": b, "time_s": 2e-9 * a + 3e-8 * b}
            for a, b in zip(s, n, strict=True)]
    model = scaling.fit(rows)
    assert model["a_s_per_synaptic_event"] == pytest.approx(2e-9, rel=1e-6)
    assert model["b_s_per_neuron_step"] == pytest.approx(3e-8, rel=1e-6)


def test_fit_is_non_negative():
    rows = [{"synaptic_events": 1e6 * k, "neuron_steps": 1e5, "time_s": 1e-3 * k}
            for k in range(1, 6)]  # time grows with S only, with an offset-free fit
    model = scaling.fit(rows)
    assert model["b_s_per_neuron_step"] >= 0.0 and model["a_s_per_synaptic_event"] > 0


def test_subset_keeps_first_samples_and_steps():
    from spikeforge.events import Events

    rng = np.random.default_rng(1)
    x = (rng.random((5, 40, 7)) < 0.2).astype(np.float32)
    sub = scaling._subset(Events.from_dense(x), 3, 25)
    np.testing.assert_array_equal(sub.to_dense(), x[:3, :25])
