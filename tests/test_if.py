"""The delta-synapse integrate-and-fire model (NIR IF, I, LIF / LI with leak, reset and
drive): closed forms, compiled driver against the dense oracle."""

import math

import numpy as np
import pytest

from spikeforge.engine import Events, NeuronArrays, forward
from spikeforge.neurons import DeltaLIFParams, IFParams, if_, model_of


def _silence(n_steps):
    return Events.from_lists([(np.zeros(0, int), np.zeros(0, int))], n_steps, 1, np.float64)


def test_constant_drive_without_leak_fires_regularly():
    """dV/dt = drive: V = n dt drive, a spike when it reaches the threshold, reset to 0."""
    params = IFParams(threshold=1.0, drive=0.03)  # 1 / (0.03 * 1 ms) = 33.3 -> 34 steps
    out = forward(_silence(200), np.zeros((1, 1)), None,
                  NeuronArrays.from_params(params, 1, 1.0, np.float64))
    assert model_of(params) is if_.MODEL
    np.testing.assert_array_equal(out.step, [33, 67, 101, 135, 169])


def test_leaky_readout_follows_the_closed_form():
    """V(t) = (v_leak + tau drive) (1 - e^(-t/tau)) for V(0) = 0 and no input."""
    tau, vl, drive, dt = 8.0, 0.3, 0.05, 0.5
    params = IFParams(tau_mem=tau, v_leak=vl, drive=drive, spiking=False)
    v = forward(_silence(60), np.zeros((1, 1)), None,
                NeuronArrays.from_params(params, 1, dt, np.float64))[0, :, 0]
    t = dt * np.arange(1, 61)
    np.testing.assert_allclose(v, (vl + tau * drive) * (1 - np.exp(-t / tau)), rtol=1e-12)


def test_input_spike_raises_v_by_its_weight():
    """Integrator (no leak, no threshold): V counts weighted input spikes."""
    events = Events.from_lists([(np.array([2, 5, 5]), np.array([0, 0, 1]))], 10, 2, np.float64)
    v = forward(events, np.array([[0.25], [1.5]]), None,
                NeuronArrays.from_params(IFParams(spiking=False), 1, 1.0, np.float64))[0, :, 0]
    np.testing.assert_allclose(v, [0, 0, 0, 0.25, 0.25, 0.25, 2.0, 2.0, 2.0, 2.0])


def test_reduces_to_delta_lif():
    rng = np.random.default_rng(3)
    x = Events.from_dense((rng.random((2, 100, 5)) < 0.2).astype(np.float64))
    w = rng.normal(0.5, 0.3, (5, 7))
    a = forward(x, w, None, NeuronArrays.from_params(DeltaLIFParams(12.0, 1.0), 7, 1.0,
                                                     np.float64))
    b = forward(x, w, None, NeuronArrays.from_params(IFParams(tau_mem=12.0), 7, 1.0,
                                                     np.float64))
    assert a.n_events > 30
    np.testing.assert_array_equal(a.to_dense(), b.to_dense())


@pytest.mark.parametrize("tau", [math.inf, 15.0])
def test_compiled_driver_matches_the_dense_oracle(tau):
    rng = np.random.default_rng(0)
    x = Events.from_dense((rng.random((3, 120, 7)) < 0.1).astype(np.float64))
    w_in, w_rec = rng.normal(0.3, 0.3, (7, 9)), rng.normal(0.0, 0.2, (9, 9))
    params = IFParams(tau_mem=tau, threshold=rng.uniform(0.8, 1.2, 9), v_leak=0.1,
                      v_reset=-0.2, drive=rng.uniform(0.0, 0.02, 9))
    neurons = NeuronArrays.from_params(params, 9, 1.0, np.float64)
    fast, ref = forward(x, w_in, w_rec, neurons), forward(x, w_in, w_rec, neurons, "reference")
    assert fast.n_events > 40
    np.testing.assert_array_equal(fast.to_dense(), ref.to_dense())


def test_tau_not_above_dt_is_refused():
    from spikeforge.errors import SpikeforgeError

    with pytest.raises(SpikeforgeError, match="tau_mem must be a number of ms above dt"):
        IFParams(tau_mem=0.5).validate(1.0)
