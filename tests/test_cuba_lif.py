"""The general current-based LIF model (v_leak, v_reset, bias, per-neuron values): closed
form, compiled driver against the dense oracle, and its refusals."""

import math

import numpy as np
import pytest

from spikeforge.engine import Events, NeuronArrays, forward
from spikeforge.errors import SpikeforgeError
from spikeforge.neurons import CubaLIFParams, LIFParams, cuba_lif, model_of


def test_constant_bias_follows_the_closed_form():
    """No input: I(t) = c (1 - e^(-t/ts)), V(t) = vl (1 - e^(-t/tm)) + c (1 - (ts e^(-t/ts)
    - tm e^(-t/tm)) / (ts - tm)), sampled exactly at the ends of the steps."""
    tm, ts, c, vl, dt = 10.0, 4.0, 0.7, 0.2, 0.5
    params = CubaLIFParams(tm, ts, v_leak=vl, bias=c, spiking=False)
    neurons = NeuronArrays.from_params(params, 1, dt, np.float64)
    events = Events.from_lists([(np.zeros(0, int), np.zeros(0, int))], 80, 1, np.float64)
    v = forward(events, np.zeros((1, 1)), None, neurons)[0, :, 0]
    t = dt * np.arange(1, 81)
    expected = vl * (1 - np.exp(-t / tm)) + c * (
        1 - (ts * np.exp(-t / ts) - tm * np.exp(-t / tm)) / (ts - tm))
    assert model_of(params) is cuba_lif.MODEL
    np.testing.assert_allclose(v, expected, rtol=1e-12, atol=1e-14)
    assert v[-1] == pytest.approx(vl + c, rel=0.05)  # near the steady state after 4 tau_mem


def test_reduces_to_lif_without_leak_reset_and_bias():
    rng = np.random.default_rng(1)
    x = Events.from_dense((rng.random((2, 150, 6)) < 0.1).astype(np.float64))
    w = rng.normal(0.6, 0.4, (6, 8))
    plain = NeuronArrays.from_params(LIFParams(15.0, 4.0, 0.9), 8, 1.0, np.float64)
    general = NeuronArrays.from_params(CubaLIFParams(15.0, 4.0, threshold=0.9), 8, 1.0,
                                       np.float64)
    a, b = forward(x, w, None, plain), forward(x, w, None, general)
    assert a.n_events > 30
    np.testing.assert_array_equal(a.to_dense(), b.to_dense())


def test_reset_goes_to_v_reset():
    """Constant bias above threshold: after each spike V restarts from v_reset, so the
    inter-spike intervals are all equal and longer for a lower v_reset."""
    def intervals(v_reset):
        params = CubaLIFParams(10.0, 2.0, threshold=1.0, v_reset=v_reset, bias=3.0)
        events = Events.from_lists([(np.zeros(0, int), np.zeros(0, int))], 300, 1, np.float64)
        out = forward(events, np.zeros((1, 1)), None,
                      NeuronArrays.from_params(params, 1, 0.1, np.float64))
        return np.diff(out.step)

    high, low = intervals(0.0), intervals(-2.0)
    assert len(set(high[1:])) == 1 and len(set(low[1:])) == 1
    assert low[1] > high[1]


@pytest.mark.parametrize("recurrent", [False, True])
def test_compiled_driver_matches_the_dense_oracle(recurrent):
    rng = np.random.default_rng(0)
    x = Events.from_dense((rng.random((3, 120, 7)) < 0.1).astype(np.float64))
    w_in = rng.normal(0.4, 0.3, (7, 9))
    w_rec = rng.normal(0.0, 0.3, (9, 9)) if recurrent else None
    params = CubaLIFParams(20.0, 5.0, threshold=rng.uniform(0.5, 1.5, 9), v_leak=0.2,
                           v_reset=-0.3, bias=rng.uniform(0.0, 0.5, 9),
                           tau_mem_per_neuron=rng.uniform(10.0, 30.0, 9))
    neurons = NeuronArrays.from_params(params, 9, 1.0, np.float64)
    fast, ref = forward(x, w_in, w_rec, neurons), forward(x, w_in, w_rec, neurons, "reference")
    assert fast.n_events > 40
    np.testing.assert_array_equal(fast.to_dense(), ref.to_dense())
    readout = NeuronArrays.from_params(
        CubaLIFParams(20.0, 5.0, v_leak=0.1, bias=0.3, spiking=False), 9, 1.0, np.float64)
    np.testing.assert_allclose(forward(x, w_in, None, readout),
                               forward(x, w_in, None, readout, "reference"), rtol=1e-12)


def test_bad_values_are_refused_with_the_field_name():
    with pytest.raises(SpikeforgeError, match="v_leak must be finite"):
        CubaLIFParams(v_leak=math.nan).validate(1.0)
    with pytest.raises(SpikeforgeError, match="threshold must lie above v_reset"):
        CubaLIFParams(threshold=0.5, v_reset=0.5).validate(1.0)
    with pytest.raises(SpikeforgeError, match="tau_mem_per_neuron"):
        CubaLIFParams(tau_mem_per_neuron=(5.0, 0.5)).validate(1.0)
    with pytest.raises(SpikeforgeError, match="3 values but the layer has 4 neurons"):
        NeuronArrays.from_params(CubaLIFParams(bias=(1.0, 2.0, 3.0)), 4, 1.0, np.float64)


def test_shared_maths_read_the_same_factor_rows_as_lif():
    """cuba_lif reuses lif.margin and lif.spike_values, so its threshold row must be LIF's."""
    from spikeforge.neurons import cuba_lif, lif

    assert cuba_lif.margin is lif.margin
    assert cuba_lif.FACTOR_NAMES[cuba_lif.THRESHOLD] == lif.FACTOR_NAMES[lif.THRESHOLD]
