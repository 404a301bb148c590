"""Learnable synaptic delays: kernels vs reference, EventProp/BPTT vs finite differences."""

import numpy as np
import pytest

from spikeforge.engine import Events, NeuronArrays
from spikeforge.engine import layers as plain
from spikeforge.engine.delay_layers import DelaySteps, delayed_backward, delayed_forward
from spikeforge.model import LIFParams


def _dense_input(shape, density, seed):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) < density).astype(np.float64)


def _delays(shape, max_ms, seed, dt=1.0, mode="interpolate", dtype=np.float64):
    rng = np.random.default_rng(seed)
    return DelaySteps.from_ms(rng.uniform(0, max_ms, shape), dt, mode, dtype)


@pytest.mark.parametrize("mode", ["interpolate", "round"])
@pytest.mark.parametrize("spiking", [True, False])
def test_delay_kernels_match_reference(mode, spiking):
    rng = np.random.default_rng(3)
    n_in, n_out = 9, 7
    events = Events.from_dense(_dense_input((3, 60, n_in), 0.08, 1))
    w_in = rng.normal(0.6, 0.5, (n_in, n_out))
    d_in = _delays((n_in, n_out), 12.0, 4, mode=mode)
    w_rec = rng.normal(0.0, 0.4, (n_out, n_out)) if spiking else None
    d_rec = _delays((n_out, n_out), 6.0, 5, mode=mode) if spiking else None
    neurons = NeuronArrays.from_params(LIFParams(spiking=spiking), n_out, 1.0, np.float64)
    results = {}
    for backend in ("event", "reference"):
        out = delayed_forward(events, w_in, d_in, w_rec, d_rec, neurons, spiking, backend)
        if spiking:
            dldt = np.linspace(-1, 1, out.n_events)
            grads = delayed_backward(events, w_in, d_in, w_rec, d_rec, neurons, 1.0, out, dldt,
                                     None, True, True, backend=backend)
        else:
            grad_v = np.random.default_rng(6).normal(size=out.shape)
            grads = delayed_backward(events, w_in, d_in, None, None, neurons, 1.0, None, None,
                                     grad_v, True, True, backend=backend)
        results[backend] = (out, grads)
    (o_e, g_e), (o_r, g_r) = results["event"], results["reference"]
    if spiking:
        assert o_e.n_events > 30
        np.testing.assert_array_equal(o_e.step, o_r.step)
        np.testing.assert_array_equal(o_e.unit, o_r.unit)
        np.testing.assert_allclose(o_e.isyn, o_r.isyn, rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_allclose(o_e, o_r, rtol=1e-10, atol=1e-12)
    names = ["grad_w_in", "grad_d_in", "input_dldt", "lam_i_trace"]
    if spiking:
        names += ["grad_w_rec", "grad_d_rec"]
    for name in names:
        value = getattr(g_e, name)
        assert np.abs(value).max() > 0, name
        np.testing.assert_allclose(value, getattr(g_r, name), rtol=1e-9, atol=1e-10,
                                   err_msg=name)


def test_zero_delays_reproduce_the_undelayed_layer():
    """Same spikes; same weight gradients for the same consumer timing (feed-forward; the
    timing sensitivities agree to O(dt): the delayed path uses the exact difference of the
    lam_I trace, the plain path its continuous-time slope)."""
    rng = np.random.default_rng(0)
    events = Events.from_dense(_dense_input((2, 50, 8), 0.1, 2))
    w_in = rng.normal(0.6, 0.5, (8, 6))
    w_rec = rng.normal(0.0, 0.4, (6, 6))
    zero_in = DelaySteps.from_ms(np.zeros((8, 6)), 1.0, "interpolate", np.float64)
    zero_rec = DelaySteps.from_ms(np.zeros((6, 6)), 1.0, "interpolate", np.float64)
    neurons = NeuronArrays.from_params(LIFParams(), 6, 1.0, np.float64)
    delayed = delayed_forward(events, w_in, zero_in, w_rec, zero_rec, neurons, True)
    undelayed = plain.lif_forward(events, w_in, w_rec, neurons)
    assert undelayed.n_events > 10
    np.testing.assert_array_equal(delayed.step, undelayed.step)
    np.testing.assert_array_equal(delayed.unit, undelayed.unit)
    spikes = delayed_forward(events, w_in, zero_in, None, None, neurons, True)
    dldt = np.linspace(-1, 1, spikes.n_events)
    g_d = delayed_backward(events, w_in, zero_in, None, None, neurons, 1.0, spikes, dldt,
                           None, False, True)
    g_u = plain.lif_backward(events, spikes, w_in, None, neurons, dldt, False, True)
    np.testing.assert_allclose(g_d.grad_w_in, g_u.grad_w_in, rtol=1e-10)
    np.testing.assert_allclose(g_d.lam_i_trace, g_u.lam_i_trace, rtol=1e-10, atol=1e-12)


def test_delay_shifts_the_response_by_whole_steps():
    events = Events.from_lists([(np.array([2]), np.array([0]))], 40, 1, np.float64)
    neurons = NeuronArrays.from_params(LIFParams(spiking=False), 1, 1.0, np.float64)
    w = np.ones((1, 1))
    v0 = delayed_forward(events, w, DelaySteps.from_ms(np.zeros((1, 1)), 1.0, "round",
                                                       np.float64), None, None, neurons, False)
    v7 = delayed_forward(events, w, DelaySteps.from_ms(np.full((1, 1), 7.0), 1.0, "round",
                                                       np.float64), None, None, neurons, False)
    np.testing.assert_allclose(v7[0, 7:, 0], v0[0, :-7, 0])
    assert np.all(v7[0, :10, 0] == 0) and v7[0, 10, 0] > 0
