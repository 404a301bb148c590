"""Learnable synaptic delays: kernels vs reference, EventProp/BPTT vs finite differences."""

import numpy as np
import pytest

from spikeforge.engine import Events, NeuronArrays, backward, forward
from spikeforge.engine.delay_layers import (
    DelayedSynapses,
    DelaySteps,
    delayed_backward,
    delayed_forward,
)
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
        out = delayed_forward(events, DelayedSynapses(w_in, d_in, w_rec, d_rec), neurons,
                              backend)
        if spiking:
            dldt = np.linspace(-1, 1, out.n_events)
            grads = delayed_backward(events, DelayedSynapses(w_in, d_in, w_rec, d_rec),
                                     neurons, out, dldt, None, True, True, backend=backend)
        else:
            grad_v = np.random.default_rng(6).normal(size=out.shape)
            grads = delayed_backward(events, DelayedSynapses(w_in, d_in), neurons, None,
                                     None, grad_v, True, True, backend=backend)
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
    delayed = delayed_forward(events, DelayedSynapses(w_in, zero_in, w_rec, zero_rec), neurons)
    undelayed = forward(events, w_in, w_rec, neurons)
    assert undelayed.n_events > 10
    np.testing.assert_array_equal(delayed.step, undelayed.step)
    np.testing.assert_array_equal(delayed.unit, undelayed.unit)
    spikes = delayed_forward(events, DelayedSynapses(w_in, zero_in), neurons)
    dldt = np.linspace(-1, 1, spikes.n_events)
    g_d = delayed_backward(events, DelayedSynapses(w_in, zero_in), neurons, spikes, dldt,
                           None, False, True)
    g_u = backward(events, w_in, None, neurons, spikes, dldt, want_trace=True)
    np.testing.assert_allclose(g_d.grad_w_in, g_u.grad_w_in, rtol=1e-10)
    np.testing.assert_allclose(g_d.lam_i_trace, g_u.lam_i_trace, rtol=1e-10, atol=1e-12)


def test_delay_shifts_the_response_by_whole_steps():
    events = Events.from_lists([(np.array([2]), np.array([0]))], 40, 1, np.float64)
    neurons = NeuronArrays.from_params(LIFParams(spiking=False), 1, 1.0, np.float64)
    w = np.ones((1, 1))
    v0 = delayed_forward(events, DelayedSynapses(w, DelaySteps.from_ms(
        np.zeros((1, 1)), 1.0, "round", np.float64)), neurons)
    v7 = delayed_forward(events, DelayedSynapses(w, DelaySteps.from_ms(
        np.full((1, 1), 7.0), 1.0, "round", np.float64)), neurons)
    np.testing.assert_allclose(v7[0, 7:, 0], v0[0, :-7, 0])
    assert np.all(v7[0, :10, 0] == 0) and v7[0, 10, 0] > 0


# -- torch layers: finite differences ---------------------------------------------------

import torch  # noqa: E402

import spikeforge.nn as snn  # noqa: E402
from gradcheck_utils import compare, fd_gradient  # noqa: E402
from spikeforge.nn.delays import DelayedLI, DelayedLIF  # noqa: E402
from spikeforge.train import readout_loss  # noqa: E402


def _events(rng, n_batch, n_inputs, dt, n_steps, window_ms=10.0, per_input=2):
    samples = []
    for _ in range(n_batch):
        times = rng.uniform(0.0, window_ms, size=per_input * n_inputs)
        samples.append((np.round(times / dt).astype(int),
                        np.repeat(np.arange(n_inputs), per_input)))
    return Events.from_lists(samples, n_steps, n_inputs, np.float64)


def _check(loss_and_counts, params, half_width, n_points=5, cos_min=0.99, rel_max=0.05):
    for name, param in params:
        numeric, changed = fd_gradient(loss_and_counts, param.data, half_width, n_points)
        assert changed == 0, f"{name}: perturbation changed spike counts"
        cosine, rel = compare(param.grad, numeric)
        assert cosine > cos_min, f"{name}: cosine {cosine:.4f}"
        assert rel < rel_max, f"{name}: relative error {rel:.4f}"


def _delay_fd_case(recurrent, seed, n_steps_ms, n_points):
    dt, n_inputs, n_hidden = 2e-4, 3, 3
    n_steps = int(n_steps_ms / dt)
    events = _events(np.random.default_rng(seed), 2, n_inputs, dt, n_steps, window_ms=8.0)
    torch.manual_seed(seed)
    hidden = DelayedLIF(n_inputs, n_hidden, recurrent=recurrent, dt=dt, max_delay=5.0,
                        weight_mean=2.5, weight_std=0.8, dense_output=False).double()
    if recurrent:  # excitatory enough that recurrent delays matter
        with torch.no_grad():
            hidden.recurrent_weight.normal_(0.4, 0.3)
    readout = snn.LI(n_hidden, 3, dt=dt, weight_std=2.0).double()
    labels = torch.tensor([0, 2])

    def loss_and_counts():
        v = readout(hidden(snn.event_input(events, torch.float64)))
        return readout_loss(v, labels, "sum_exp").item(), hidden.last_record.events.counts()

    _, counts = loss_and_counts()
    assert counts.min() >= 1, "every hidden neuron must spike for a meaningful check"
    loss = readout_loss(readout(hidden(snn.event_input(events, torch.float64))), labels,
                        "sum_exp")
    loss.backward()
    assert hidden.delay.grad.abs().max() > 0
    return hidden, loss_and_counts


def test_eventprop_delay_gradients_match_finite_differences():
    """Input and recurrent delays of a recurrent delayed LIF layer (dt = 2e-4 ms)."""
    hidden, loss_and_counts = _delay_fd_case(True, 1, 15.0, 5)
    _check(loss_and_counts, [("delay", hidden.delay),
                             ("recurrent_delay", hidden.recurrent_delay)], half_width=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("recurrent", [False, True])
def test_eventprop_delay_and_weight_gradients_match_finite_differences_full(recurrent):
    hidden, loss_and_counts = _delay_fd_case(recurrent, 2, 25.0, 9)
    params = [("delay", hidden.delay), ("weight", hidden.weight)]
    if recurrent:
        params += [("recurrent_delay", hidden.recurrent_delay),
                   ("recurrent_weight", hidden.recurrent_weight)]
    _check(loss_and_counts, params, half_width=0.01)


@pytest.mark.parametrize("method", ["eventprop", "bptt"])
def test_delayed_readout_gradients_match_finite_differences(method):
    """An LI readout has no spikes, so EventProp and BPTT are both exact here. Its input
    comes from an EventProp LIF layer; with EventProp the input-timing path back into that
    layer is checked as well (finer dt: spike times are quantised to the step)."""
    dt = 5e-4 if method == "eventprop" else 2e-2
    n_inputs, n_steps = 3, int(20 / dt)
    events = _events(np.random.default_rng(2), 2, n_inputs, dt, n_steps)
    torch.manual_seed(1)
    hidden = snn.LIF(n_inputs, 3, dt=dt, weight_mean=3.0, weight_std=0.5,
                     dense_output=method == "bptt").double()
    readout = DelayedLI(3, 2, dt=dt, max_delay=5.0, method=method, weight_std=2.0).double()
    labels = torch.tensor([1, 0])

    def loss_and_counts():
        with torch.no_grad():
            v = readout(hidden(snn.event_input(events, torch.float64)))
        return readout_loss(v, labels, "sum").item(), hidden.last_record.events.counts()

    _, counts = loss_and_counts()
    assert counts.min() >= 1
    readout_loss(readout(hidden(snn.event_input(events, torch.float64))), labels,
                 "sum").backward()
    params = [("delay", readout.delay), ("weight", readout.weight)]
    if method == "eventprop":
        params.append(("hidden.weight", hidden.weight))
    _check(loss_and_counts, params, half_width=0.02)


def test_bptt_forward_matches_eventprop_forward():
    events = _events(np.random.default_rng(4), 3, 6, 1.0, 80, window_ms=40, per_input=3)
    torch.manual_seed(0)
    layer = DelayedLIF(6, 8, recurrent=True, max_delay=10.0, weight_mean=1.5).double()
    spikes_ep = layer(snn.event_input(events, torch.float64))
    layer.method = "bptt"
    spikes_bptt = layer(snn.event_input(events, torch.float64))
    assert spikes_ep.sum() > 20
    torch.testing.assert_close(spikes_bptt.detach(), spikes_ep)


def _delayed_pair_grads(device: str, method: str = "eventprop"):
    events = _events(np.random.default_rng(5), 3, 6, 1.0, 80, window_ms=40, per_input=3)
    torch.manual_seed(0)
    hidden = DelayedLIF(6, 8, recurrent=True, max_delay=10.0, weight_mean=1.5,
                        dense_output=False, method=method).double().to(device)
    readout = DelayedLI(8, 3, max_delay=5.0, method=method).double().to(device)
    x = snn.event_input(events, torch.float64)
    v = readout(hidden(x))
    assert v.device.type == device
    readout_loss(v, torch.tensor([0, 1, 2], device=device), "sum_exp").backward()
    return [p.grad.detach().cpu() for p in (hidden.weight, hidden.delay, hidden.recurrent_weight,
                                            hidden.recurrent_delay, readout.weight, readout.delay)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("method", ["eventprop", "bptt"])
def test_delayed_layers_on_cuda_match_the_cpu(method):
    pairs = zip(_delayed_pair_grads("cpu", method), _delayed_pair_grads("cuda", method),
                strict=True)
    for a, b in pairs:
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)


def test_device_path_spikes_feed_a_delayed_layer_as_dense_input():
    """A torch-path (CUDA) LIF's dense spikes carry a device record the delayed layer
    cannot use; it takes them as dense input and returns dL/dx (no record mixing)."""
    x = torch.from_numpy(_dense_input((2, 60, 6), 0.2, 6))
    torch.manual_seed(0)
    hidden = snn.LIF(6, 8, weight_mean=1.0, backend="torch").double()
    readout = DelayedLI(8, 3, max_delay=5.0).double()
    spikes = hidden(x)
    assert spikes.sum() > 5
    readout_loss(readout(spikes), torch.tensor([0, 1]), "sum_exp").backward()
    assert hidden.weight.grad.abs().sum() > 0 and readout.delay.grad.abs().sum() > 0


# -- config, save/load, plots -------------------------------------------------------------

from spikeforge.data import load_dataset  # noqa: E402
from spikeforge.errors import SpikeforgeError  # noqa: E402
from spikeforge.experiments.config import load_config  # noqa: E402
from spikeforge.experiments.delay_plots import plot_delay_histograms  # noqa: E402
from spikeforge.experiments.loading import run_network  # noqa: E402


def _delay_config(**overrides):
    return load_config(None, {"data.name": "delay_order", "model.hidden": [6],
                              "model.recurrent": True, "model.delays.max_ms": 30.0,
                              **overrides})


def test_config_builds_delayed_network_saves_loads_and_plots(tmp_path):
    config = _delay_config()
    splits = load_dataset("delay_order", 1.0)
    net = run_network(config, splits)
    hidden = net.layers[0]
    assert isinstance(hidden, DelayedLIF) and hidden.recurrent_delay is not None
    assert 0 <= float(hidden.delay.detach().min()) <= float(hidden.delay.detach().max()) <= 30
    state = net.state_dict()
    assert {"layers.0.delay", "layers.0.recurrent_delay"} <= set(state)
    clone = run_network(_delay_config(seed=1), splits)
    assert not torch.equal(clone.layers[0].delay, hidden.delay)
    clone.load_state_dict(state)
    torch.testing.assert_close(clone.layers[0].delay, hidden.delay)
    events, _ = splits.test.collate([splits.test[i] for i in range(4)])
    torch.testing.assert_close(clone(events), net(events))
    assert plot_delay_histograms(net, tmp_path / "delays.png")
    assert (tmp_path / "delays.png").stat().st_size > 1000
    assert not plot_delay_histograms(torch.nn.Sequential(), tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


@pytest.mark.parametrize("overrides, message", [
    ({"model.delays.max_ms": 500.0}, "do not fit in the simulated window of 240 ms"),
    ({"model.delays.init": 45.0}, "outside"),
    ({"model.delays.mode": "cubic"}, "model.delays.mode"),
])
def test_bad_delay_settings_fail_before_training(overrides, message):
    with pytest.raises(SpikeforgeError, match=message):
        config = _delay_config(**overrides)
        run_network(config, load_dataset("delay_order", 1.0))


def test_delays_after_pooling_are_refused_at_build_time():
    config = load_config(None, {"model.input_shape": [1, 8, 8], "model.hidden": [4],
                                "model.conv": [{"channels": 2, "kernel": 3, "pool": 2}],
                                "model.delays.max_ms": 5.0})
    with pytest.raises(SpikeforgeError, match="delays work on dense"):
        run_network(config, load_dataset("digits", 1.0))


def test_delays_beyond_the_window_fail_in_the_layer_too():
    layer = DelayedLIF(2, 3, max_delay=50.0)
    with pytest.raises(SpikeforgeError, match="not shorter than the simulated window"):
        layer(torch.zeros(1, 40, 2))


def test_per_neuron_taus_with_delays_are_refused_not_dropped():
    from spikeforge.model import LayerSpec, NetworkSpec
    from spikeforge.model.connectivity import DelaySpec

    spec = NetworkSpec(4, (LayerSpec(6, tau_spread=0.2, delays=DelaySpec(max_ms=5.0)),
                           LayerSpec(2, LIFParams(spiking=False))))
    with pytest.raises(SpikeforgeError, match="cannot be combined with model.delays"):
        snn.build_network(spec)
