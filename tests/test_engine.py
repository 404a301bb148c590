"""The compiled event kernels agree with the dense reference implementation."""

import numpy as np
import pytest
import torch

import spikeforge.nn as snn
from spikeforge.engine import Events, NeuronArrays, backward, forward
from spikeforge.errors import SpikeforgeError
from spikeforge.model import LIFParams
from spikeforge.train import readout_loss, spike_count_penalty


def _dense_input(shape, density, seed):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) < density).astype(np.float64)


def test_events_round_trip():
    x = _dense_input((3, 20, 7), 0.2, 0) * 2.0
    ev = Events.from_dense(x)
    np.testing.assert_array_equal(ev.to_dense(), x)
    assert ev.counts().sum() == np.count_nonzero(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_event_kernels_match_reference(dtype):
    rng = np.random.default_rng(3)
    x = _dense_input((5, 80, 30), 0.05, 1).astype(dtype)
    events = Events.from_dense(x)
    w_in = rng.normal(0.3, 0.3, (30, 40)).astype(dtype)
    w_rec = rng.normal(0.0, 0.2, (40, 40)).astype(dtype)
    neurons = NeuronArrays.from_params(LIFParams(), 40, 1.0, dtype)
    out = {}
    for backend in ("event", "reference"):
        spikes = forward(events, w_in, w_rec, neurons, backend)
        dldt = np.linspace(-1, 1, spikes.n_events).astype(dtype)
        grads = backward(events, w_in, w_rec, neurons, spikes, dldt, want_input_timing=True,
                         want_trace=True, backend=backend)
        out[backend] = (spikes, grads)
    (s_e, g_e), (s_r, g_r) = out["event"], out["reference"]
    assert s_e.n_events > 50
    np.testing.assert_array_equal(s_e.step, s_r.step)
    np.testing.assert_array_equal(s_e.unit, s_r.unit)
    tol = dict(rtol=5e-3, atol=1e-3) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(s_e.isyn, s_r.isyn, **tol)
    for name in ("grad_w_in", "grad_w_rec", "input_dldt", "lam_i_trace"):
        np.testing.assert_allclose(getattr(g_e, name), getattr(g_r, name), **tol, err_msg=name)


def test_layer_backends_give_same_gradients():
    x = torch.from_numpy(_dense_input((4, 60, 12), 0.08, 2))
    labels = torch.tensor([0, 1, 2, 1])
    grads = {}
    for backend in ("event", "reference"):
        torch.manual_seed(0)
        hidden = snn.LIF(12, 16, recurrent=True, weight_mean=1.5, backend=backend).double()
        readout = snn.LI(16, 3, backend=backend).double()
        xin = x.clone().requires_grad_(True)
        h = hidden(xin)
        loss = readout_loss(readout(h), labels, "sum") + spike_count_penalty(h, 20.0, 0.1)
        loss.backward()
        grads[backend] = [hidden.weight.grad, hidden.recurrent_weight.grad,
                          readout.weight.grad, xin.grad]
    for a, b in zip(grads["event"], grads["reference"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_li_readout_integrates_exactly():
    """One input spike of weight 1: V(t) = tau_s/(tau_s-tau_m) (e^-t/tau_s - e^-t/tau_m)."""
    dt, n_steps = 0.5, 100
    events = Events.from_lists([(np.array([0]), np.array([0]))], n_steps, 1, np.float64)
    neurons = NeuronArrays.from_params(LIFParams(spiking=False), 1, dt, np.float64)
    v = forward(events, np.ones((1, 1)), None, neurons)[0, :, 0]
    t = np.arange(n_steps) * dt
    expected = 5.0 / (5.0 - 20.0) * (np.exp(-t / 5.0) - np.exp(-t / 20.0))
    np.testing.assert_allclose(v, expected, atol=1e-12)


def test_wrong_input_shape_is_a_clear_error():
    layer = snn.LIF(10, 4)
    with pytest.raises(SpikeforgeError, match=r"expected input of shape \[batch, time, 10\]"):
        layer(torch.zeros(2, 5, 9))


@pytest.mark.parametrize("kwargs, message", [
    (dict(tau_mem=-1.0), "tau_mem must be a positive"),
    (dict(tau_syn=0.5, dt=1.0), "must be smaller than tau_syn"),
    (dict(threshold=0.0), "threshold must be positive"),
])
def test_invalid_parameters_are_rejected(kwargs, message):
    with pytest.raises(SpikeforgeError, match=message):
        snn.LIF(3, 3, **kwargs)


def test_spike_regulariser_lowers_activity():
    """Gradient steps on the spike-count penalty alone reduce an over-active layer's rate."""
    torch.manual_seed(0)
    layer = snn.LIF(20, 30, weight_mean=1.0)
    x = torch.from_numpy(_dense_input((8, 100, 20), 0.1, 5)).float()
    opt = torch.optim.SGD(layer.parameters(), lr=5.0)
    counts = []
    for _ in range(5):
        opt.zero_grad()
        spikes = layer(x)
        counts.append(float(spikes.sum()))
        spike_count_penalty(spikes, target_rate_hz=5.0, strength=1.0).backward()
        opt.step()
    assert counts[-1] < 0.8 * counts[0]


def test_first_spike_times_match_dense_spikes():
    from spikeforge.train import first_spike_times

    torch.manual_seed(1)
    layer = snn.LIF(10, 6, weight_mean=1.5)
    spikes = layer((torch.rand(5, 60, 10) < 0.1).float())
    t_first = first_spike_times(spikes).detach().numpy()
    dense = spikes.detach().numpy()
    expected = np.full((5, 6), 60.0)
    for b, j in np.ndindex(5, 6):
        fired = np.flatnonzero(dense[b, :, j])
        if fired.size:
            expected[b, j] = fired[0]
    assert (expected < 60).sum() > 10
    np.testing.assert_array_equal(t_first, expected)
