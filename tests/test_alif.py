"""Adaptive LIF: kernel vs reference, EventProp adjoint vs finite differences, BPTT."""

import numpy as np
import pytest
import torch

import spikeforge.nn as snn
from gradcheck_utils import compare, fd_gradient
from spikeforge.engine import Events, NeuronArrays, backward, forward
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import load_config
from spikeforge.model import ALIFParams, LIFParams
from spikeforge.neurons import alif
from spikeforge.nn.bptt_layers import bptt_loop
from spikeforge.train import readout_loss


class alif_engine:  # noqa: N801 - the ALIF engine calls as the tests read them
    """ALIF layer calls of the generic engine: the adaptation before each spike is the
    spikes' ``extra`` per-spike value."""

    @staticmethod
    def alif_forward(inputs, w_in, w_rec, neurons, adapt, backend="event"):
        spikes = forward(inputs, w_in, w_rec, neurons, backend)
        return spikes, spikes.extra

    @staticmethod
    def alif_backward(inputs, spikes, spike_adapt, w_in, w_rec, neurons, adapt, dldt,
                      want_input_timing, want_trace, backend="event"):
        spikes.extra = spike_adapt
        return backward(inputs, w_in, w_rec, adapt, spikes, dldt,
                        want_input_timing=want_input_timing, want_trace=want_trace,
                        backend=backend)


class lif_engine:  # noqa: N801
    @staticmethod
    def lif_forward(inputs, w_in, w_rec, neurons):
        return forward(inputs, w_in, w_rec, NeuronArrays.from_params(
            LIFParams(20.0, 5.0, 1.0), neurons.size, neurons.dt, neurons.table.dtype))

    @staticmethod
    def lif_backward(inputs, spikes, w_in, w_rec, neurons, dldt, timing, trace):
        lif = NeuronArrays.from_params(LIFParams(20.0, 5.0, 1.0), neurons.size, neurons.dt,
                                       neurons.table.dtype)
        return backward(inputs, w_in, w_rec, lif, spikes, dldt, want_input_timing=timing,
                        want_trace=trace)


def without_adaptation(neurons: NeuronArrays) -> NeuronArrays:
    """The same ALIF population with beta = 0 in its factor table."""
    table = neurons.table.copy()
    table[alif.BETA] = 0.0
    return NeuronArrays(neurons.model, table, neurons.dt, neurons.spiking)

PARAMS = ALIFParams(tau_mem=20.0, tau_syn=5.0, threshold=1.0, tau_adapt=30.0, beta=0.6)


def _engine_setup(seed, recurrent, n_in=6, n_out=5, n_batch=3, n_steps=120, beta=0.6):
    rng = np.random.default_rng(seed)
    x = (rng.random((n_batch, n_steps, n_in)) < 0.08).astype(np.float64)
    w_in = rng.normal(0.9, 0.6, (n_in, n_out))
    w_rec = rng.normal(0.0, 0.4, (n_out, n_out)) if recurrent else None
    params = ALIFParams(20.0, 5.0, 1.0, tau_adapt=30.0, beta=beta)
    neurons = NeuronArrays.from_params(params, n_out, 1.0, np.float64)
    return Events.from_dense(x), w_in, w_rec, neurons, neurons, rng


@pytest.mark.parametrize("recurrent", [False, True])
def test_alif_kernels_match_reference(recurrent):
    inputs, w_in, w_rec, neurons, adapt, rng = _engine_setup(0, recurrent)
    out = {}
    for backend in ("event", "reference"):
        out[backend] = alif_engine.alif_forward(inputs, w_in, w_rec, neurons, adapt, backend)
    (sp_e, a_e), (sp_r, a_r) = out["event"], out["reference"]
    assert sp_e.n_events > 30
    assert np.array_equal(sp_e.to_dense(), sp_r.to_dense())
    np.testing.assert_allclose(sp_e.isyn, sp_r.isyn, rtol=1e-12)
    np.testing.assert_allclose(a_e, a_r, rtol=1e-12)
    assert a_e.max() > 0.5, "adaptation must be active"
    dldt = rng.normal(size=sp_e.n_events)
    grads = {}
    for backend in ("event", "reference"):
        for timing in (True, False):
            grads[backend, timing] = alif_engine.alif_backward(
                inputs, sp_e, a_e, w_in, w_rec, neurons, adapt, dldt,
                want_input_timing=timing, want_trace=not timing, backend=backend,
            )  # fmt: skip
    for timing in (True, False):
        ge, gr = grads["event", timing], grads["reference", timing]
        np.testing.assert_allclose(ge.grad_w_in, gr.grad_w_in, rtol=1e-9, atol=1e-12)
        if recurrent:
            np.testing.assert_allclose(ge.grad_w_rec, gr.grad_w_rec, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["event", True].input_dldt,
                               grads["reference", True].input_dldt, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["event", False].lam_i_trace,
                               grads["reference", False].lam_i_trace, rtol=1e-9, atol=1e-12)


def test_alif_with_beta_zero_is_lif():
    inputs, w_in, w_rec, neurons, adapt, rng = _engine_setup(1, True, beta=0.0)
    spikes, spike_adapt = alif_engine.alif_forward(inputs, w_in, w_rec, neurons, adapt)
    lif_spikes = lif_engine.lif_forward(inputs, w_in, w_rec, neurons)
    assert np.array_equal(spikes.to_dense(), lif_spikes.to_dense())
    dldt = rng.normal(size=spikes.n_events)
    g_alif = alif_engine.alif_backward(inputs, spikes, spike_adapt, w_in, w_rec, neurons,
                                       adapt, dldt, True, False)
    g_lif = lif_engine.lif_backward(inputs, lif_spikes, w_in, w_rec, neurons, dldt, True, False)
    np.testing.assert_allclose(g_alif.grad_w_in, g_lif.grad_w_in, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g_alif.grad_w_rec, g_lif.grad_w_rec, rtol=1e-9, atol=1e-12)


def _fd_events(seed, n_batch, n_inputs, dt, n_steps, window_ms=12.0):
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_batch):
        times = rng.uniform(0.0, window_ms, size=3 * n_inputs)
        samples.append((np.round(times / dt).astype(int), np.repeat(np.arange(n_inputs), 3)))
    return Events.from_lists(samples, n_steps, n_inputs, np.float64)


FD_CASES = {
    "feedforward": dict(recurrent=False, seed=3, tau_spread=0.0),
    "recurrent": dict(recurrent=True, seed=4, tau_spread=0.0),
    "heterogeneous_taus": dict(recurrent=False, seed=5, tau_spread=0.3),
}


@pytest.mark.parametrize("case", [
    "feedforward", "recurrent", pytest.param("heterogeneous_taus", marks=pytest.mark.slow),
])  # fmt: skip
def test_alif_eventprop_matches_finite_differences(case):
    cfg = FD_CASES[case]
    dt, n_inputs, n_hidden, n_classes = 2.5e-4, 4, 4, 2
    n_steps = int(35 / dt)
    events = _fd_events(cfg["seed"], 2, n_inputs, dt, n_steps)
    torch.manual_seed(cfg["seed"])
    hidden = snn.ALIF(n_inputs, n_hidden, recurrent=cfg["recurrent"], dt=dt, tau_adapt=15.0,
                      beta=0.5, weight_mean=2.5, weight_std=0.8, recurrent_std=0.5,
                      dense_output=False, tau_spread=cfg["tau_spread"])
    net = torch.nn.Sequential(hidden, snn.LI(n_hidden, n_classes, dt=dt, weight_std=2.0))
    net = net.double()
    labels = torch.tensor([0, 1])

    def loss_and_counts():
        v = net(snn.event_input(events, torch.float64))
        return readout_loss(v, labels, "sum_exp").item(), hidden.last_record.events.counts()

    _, counts = loss_and_counts()
    assert counts.min() >= 2, "every neuron must spike repeatedly (adaptation active)"
    net.zero_grad()
    readout_loss(net(snn.event_input(events, torch.float64)), labels, "sum_exp").backward()
    for name, param in net.named_parameters():
        numeric, changed = fd_gradient(loss_and_counts, param.data, 0.01, n_points=5)
        assert changed == 0, f"{name}: perturbation changed spike counts"
        cosine, rel = compare(param.grad, numeric)
        assert cosine > 0.99, f"{name}: cosine {cosine:.4f}"
        assert rel < 0.05, f"{name}: relative error {rel:.4f}"


def test_alif_adaptation_changes_the_gradient():
    """The adjoint's adaptation terms matter: dropping them (LIF adjoint on ALIF spikes)
    gives a different input-weight gradient."""
    inputs, w_in, w_rec, neurons, adapt, rng = _engine_setup(2, False)
    spikes, spike_adapt = alif_engine.alif_forward(inputs, w_in, w_rec, neurons, adapt)
    dldt = rng.normal(size=spikes.n_events)
    full = alif_engine.alif_backward(inputs, spikes, spike_adapt, w_in, None, neurons, adapt,
                                     dldt, False, False)
    no_adapt = without_adaptation(adapt)
    plain = alif_engine.alif_backward(inputs, spikes, spike_adapt, w_in, None, neurons,
                                      no_adapt, dldt, False, False)
    assert not np.allclose(full.grad_w_in, plain.grad_w_in, rtol=1e-3)


@pytest.mark.parametrize("recurrent", [False, True])
def test_alif_bptt_and_eventprop_forward_identical(recurrent):
    x = torch.from_numpy(
        (np.random.default_rng(6).random((3, 150, 6)) < 0.1).astype(np.float64))
    layers = []
    for method in ("eventprop", "bptt"):
        torch.manual_seed(0)
        layers.append(snn.ALIF(6, 5, recurrent=recurrent, weight_mean=1.5, tau_adapt=40.0,
                               beta=0.8, method=method, tau_spread=0.2).double())
    s_ev, s_bp = layers[0](x), layers[1](x)
    assert s_ev.sum() > 30
    assert torch.equal(s_ev, s_bp)


def test_alif_bptt_loop_gradients_match_finite_differences():
    """With a smooth spike function the BPTT loop is an ordinary differentiable map, so
    its autograd gradients (weights, recurrent weights, taus) must equal central finite
    differences: this checks the adaptation chain and the tau derivatives of the loop."""
    torch.manual_seed(0)
    n_batch, n_steps, n_in, n_out = 2, 40, 3, 4
    h0 = (torch.rand(n_batch, n_steps, n_in, dtype=torch.float64) < 0.3).double()
    w_in = (torch.randn(n_out, n_in, dtype=torch.float64) * 0.8 + 1.0).requires_grad_(True)
    w_rec = (torch.randn(n_out, n_out, dtype=torch.float64) * 0.3).requires_grad_(True)
    tau_mem = torch.tensor([15.0, 20.0, 25.0, 18.0], dtype=torch.float64, requires_grad=True)
    tau_syn = torch.tensor([4.0, 5.0, 6.0, 3.0], dtype=torch.float64, requires_grad=True)
    readout = torch.randn(n_out, dtype=torch.float64)

    def smooth(x):
        return torch.sigmoid(8.0 * x)

    def loss():
        params = ALIFParams(tau_adapt=-1.0 / np.log(0.95), beta=0.4)
        table = torch.stack(alif.MODEL.factors(
            params, 1.0, {"tau_mem": tau_mem, "tau_syn": tau_syn}, torch))
        s = bptt_loop(alif.MODEL, table, h0 @ w_in.t(), w_rec, detach_reset=False,
                      spike_fn=smooth)
        weights = torch.linspace(1.0, 0.2, n_steps, dtype=torch.float64)[None, :, None]
        return (s * weights * readout).sum()

    loss().backward()
    for param in (w_in, w_rec, tau_mem, tau_syn):
        numeric = torch.zeros_like(param)
        eps = 1e-6
        with torch.no_grad():
            flat = param.view(-1)
            for index in range(flat.numel()):
                original = flat[index].item()
                flat[index] = original + eps
                up = loss().item()
                flat[index] = original - eps
                down = loss().item()
                flat[index] = original
                numeric.view(-1)[index] = (up - down) / (2 * eps)
        torch.testing.assert_close(param.grad, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("overrides, message", [
    ({"model.neuron": "alif", "model.tau_adapt": -5.0}, "tau_adapt must be"),
    ({"model.neuron": "alif", "model.adapt_beta": -0.1}, "beta must be >= 0"),
    ({"model.neuron": "adex"}, "model.neuron"),
])  # fmt: skip
def test_invalid_alif_config_fails_at_load(overrides, message):
    with pytest.raises(SpikeforgeError, match=message):
        load_config(None, overrides)


def test_alif_network_from_config_trains_both_methods():
    from spikeforge.data import load_dataset
    from spikeforge.experiments.loading import run_network, run_trainer

    splits = load_dataset("digits", 1.0)
    small = type(splits)(splits.name, splits.train.subset(np.arange(64)), splits.val,
                         splits.test)
    for method in ("eventprop", "bptt"):
        config = load_config(None, {"model.neuron": "alif", "model.hidden": [16],
                                    "train.method": method, "train.epochs": 1})
        network = run_network(config, small)
        assert isinstance(network.layers[0], snn.ALIF)
        before = network.layers[0].weight.detach().clone()
        row = run_trainer(config, small, network).train_epoch(0)
        assert np.isfinite(row["train_loss"])
        assert not torch.equal(before, network.layers[0].weight.detach())
