"""Surrogate-gradient BPTT: same forward as EventProp, gradients of the torch loop."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import spikeforge.nn as snn
from gradcheck_utils import compare
from spikeforge.engine import Events, NeuronArrays
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import load_config
from spikeforge.model import LayerSpec, LIFParams, NetworkSpec
from spikeforge.nn.bptt import dense_spike_count_penalty, surrogate_derivative, surrogate_spike
from spikeforge.train import readout_loss


def _inputs(seed, n_batch=3, n_steps=60, n_in=8, rate=0.12):
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.random((n_batch, n_steps, n_in)) < rate).astype(np.float64))


def _pair(cls, method_kwargs=None, seed=1, **kwargs):
    """Two layers with identical weights: EventProp and BPTT."""
    layers = []
    for method in ("eventprop", "bptt"):
        torch.manual_seed(seed)
        layers.append(cls(**kwargs, method=method, **(method_kwargs or {})).double())
    return layers


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lif_forward_spikes_identical(recurrent, dtype):
    ev, bp = _pair(snn.LIF, in_features=8, out_features=6, recurrent=recurrent,
                   weight_mean=1.5)
    ev, bp = ev.to(dtype), bp.to(dtype)
    x = _inputs(0).to(dtype)
    s_ev, s_bp = ev(x), bp(x)
    assert s_ev.sum() > 20, "the check needs spikes"
    assert torch.equal(s_ev, s_bp)
    # the event-token input path gives the same spikes too
    token = snn.event_input(Events.from_dense(x.numpy()), dtype)
    assert torch.equal(bp(token), s_ev)
    assert bp.last_record.events.n_events == int(s_ev.sum())


def test_network_forward_identical_and_li_voltages_match():
    spec = NetworkSpec(n_inputs=8, layers=(
        LayerSpec(10, LIFParams(), recurrent=True, weight_mean=1.5),
        LayerSpec(7, LIFParams(tau_mem=15.0, tau_syn=3.0), weight_mean=0.5),
        LayerSpec(3, LIFParams(spiking=False), weight_std=3.0),
    ), dt=1.0)  # fmt: skip
    torch.manual_seed(3)
    ev = snn.SpikingNetwork(spec).double()
    bp = snn.SpikingNetwork(spec, method="bptt", surrogate="arctan").double()
    bp.load_state_dict(ev.state_dict())
    events = Events.from_dense(_inputs(4).numpy())
    v_ev, v_bp = ev(events), bp(events)
    for rec_ev, rec_bp in zip(ev.spike_records(), bp.spike_records(), strict=True):
        assert rec_ev.events.n_events > 0
        assert np.array_equal(rec_ev.events.to_dense(), rec_bp.events.to_dense())
    torch.testing.assert_close(v_bp, v_ev, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "arctan"])
def test_surrogate_derivative_is_derivative_of_its_primitive(surrogate):
    slope = 7.0
    primitives = {
        "fast_sigmoid": lambda x: x / (1 + slope * x.abs()),
        "arctan": lambda x: 2 / (math.pi * slope) * torch.atan(0.5 * math.pi * slope * x),
    }
    x = torch.linspace(-1.0, 1.0, 41, dtype=torch.float64, requires_grad=True)
    spikes = surrogate_spike(x, surrogate, slope)
    assert torch.equal(spikes, (x >= 0).double())
    (grad,) = torch.autograd.grad(spikes.sum(), x)
    (expected,) = torch.autograd.grad(primitives[surrogate](x).sum(), x)
    torch.testing.assert_close(grad, expected)
    assert surrogate_derivative(torch.zeros(1), surrogate, slope).item() == 1.0


def _naive_lif(x, w_in, w_rec, alpha_mem, alpha_syn, syn_gain, threshold, slope):
    """Straightforward loop (h[:, t] indexing, straight-through surrogate) to check the
    production loop's autograd: H(x) forward, d/dx of x/(1+slope|x|) backward."""
    h = x @ w_in.t()
    v = torch.zeros(x.shape[0], w_in.shape[0], dtype=x.dtype)
    i = torch.zeros_like(v)
    out = []
    for t in range(x.shape[1]):
        v = alpha_mem * v + syn_gain * i
        i = alpha_syn * i
        z = v - threshold
        smooth = z / (1 + slope * z.abs())
        s = (z >= 0).to(x.dtype) + smooth - smooth.detach()
        v = torch.where(s.detach() > 0, torch.zeros_like(v), v)
        i = i + h[:, t] + s @ w_rec.t()
        out.append(s)
    return torch.stack(out, 1)


def _decays(params):
    """The exact step factors of a one-neuron population (scalars)."""
    neurons = NeuronArrays.from_params(params, 1, 1.0, np.float64)
    return SimpleNamespace(**{name: float(neurons.factor(name)[0])
                              for name in ("alpha_mem", "alpha_syn", "syn_gain")})


def test_bptt_gradients_equal_autograd_of_a_naive_loop():
    torch.manual_seed(0)
    layer = snn.LIF(8, 6, recurrent=True, weight_mean=1.5, method="bptt",
                    surrogate_slope=5.0).double()
    x = _inputs(5)
    readout = torch.randn(6, dtype=torch.float64)
    (layer(x) * readout).sum().backward()
    d = _decays(layer.params)
    w_in = layer.weight.detach().clone().requires_grad_(True)
    w_rec = layer.recurrent_weight.detach().clone().requires_grad_(True)
    spikes = _naive_lif(x, w_in, w_rec, d.alpha_mem, d.alpha_syn, d.syn_gain, 1.0, 5.0)
    (spikes * readout).sum().backward()
    assert spikes.sum() > 20
    torch.testing.assert_close(layer.weight.grad, w_in.grad)
    torch.testing.assert_close(layer.recurrent_weight.grad, w_rec.grad)
    assert layer.weight.grad.abs().sum() > 0


def test_li_readout_gradient_is_exact_and_equals_eventprop():
    """Without spikes BPTT is exact: readout weight gradients agree with EventProp."""
    ev, bp = _pair(snn.LI, in_features=8, out_features=3, weight_std=2.0)
    x = _inputs(6)
    labels = torch.tensor([0, 2, 1])
    for layer in (ev, bp):
        readout_loss(layer(x), labels, "sum_exp").backward()
    torch.testing.assert_close(bp.weight.grad, ev.weight.grad, rtol=1e-9, atol=1e-12)


def test_bptt_and_eventprop_hidden_gradients_point_the_same_way():
    """Surrogate gradients are not exact, but on a small net they must correlate with
    the exact EventProp gradient (sanity check of the whole BPTT chain)."""
    spec = NetworkSpec(n_inputs=8, layers=(
        LayerSpec(12, LIFParams(), weight_mean=1.2),
        LayerSpec(3, LIFParams(spiking=False), weight_std=3.0),
    ), dt=1.0)  # fmt: skip
    torch.manual_seed(7)
    ev = snn.SpikingNetwork(spec).double()
    bp = snn.SpikingNetwork(spec, method="bptt", surrogate_slope=5.0).double()
    bp.load_state_dict(ev.state_dict())
    events = Events.from_dense(_inputs(8, n_batch=16).numpy())
    labels = torch.arange(16) % 3
    for net in (ev, bp):
        readout_loss(net(events), labels, "sum_exp").backward()
    cosine, _ = compare(bp.layers[0].weight.grad, ev.layers[0].weight.grad)
    assert cosine > 0.5, cosine
    cosine_out, _ = compare(bp.layers[1].weight.grad, ev.layers[1].weight.grad)
    assert cosine_out > 0.999999


def test_bptt_training_steps_reduce_loss():
    torch.manual_seed(0)
    spec = NetworkSpec(n_inputs=8, layers=(
        LayerSpec(16, LIFParams(), weight_mean=1.2),
        LayerSpec(3, LIFParams(spiking=False), weight_std=5.0),
    ))  # fmt: skip
    net = snn.SpikingNetwork(spec, method="bptt")
    x = _inputs(9, n_batch=12).float()
    labels = torch.arange(12) % 3
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = readout_loss(net(x), labels, "sum")
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_dense_spike_count_penalty_lowers_activity_above_target():
    torch.manual_seed(0)
    layer = snn.LIF(8, 10, weight_mean=2.0, method="bptt")
    x = _inputs(10, n_batch=8).float()
    opt = torch.optim.SGD(layer.parameters(), lr=0.2)
    counts = []
    for _ in range(10):
        opt.zero_grad()
        spikes = layer(x)
        counts.append(spikes.sum().item())
        dense_spike_count_penalty(spikes, target_rate_hz=10.0, strength=1.0, dt=1.0).backward()
        opt.step()
    assert counts[-1] < 0.5 * counts[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bptt_runs_on_cuda_and_matches_cpu():
    torch.manual_seed(0)
    cpu = snn.LIF(8, 6, recurrent=True, weight_mean=1.5, method="bptt").double()
    gpu = snn.LIF(8, 6, recurrent=True, weight_mean=1.5, method="bptt").double().cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = _inputs(2)
    s_cpu, s_gpu = cpu(x), gpu(x.cuda())
    assert torch.equal(s_cpu, s_gpu.cpu())
    s_gpu.sum().backward()
    assert gpu.weight.grad.is_cuda
    # sparse event input: the CSR product runs on the device, same spikes and gradient
    token = snn.event_input(Events.from_dense(x.numpy()), torch.float64)
    s_ev = gpu(token)
    assert torch.equal(s_ev.cpu(), s_cpu)
    grad_gpu = gpu.weight.grad.clone()
    gpu.zero_grad()
    s_ev.sum().backward()
    torch.testing.assert_close(gpu.weight.grad, grad_gpu, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("overrides, message", [
    ({"train.method": "bptt", "train.surrogate": "tanh"}, "train.surrogate"),
    ({"train.method": "bptt", "train.surrogate_slope": 0}, "train.surrogate_slope"),
    ({"train.method": "sgd"}, "train.method"),
    ({"model.train_tau": True}, "trainable taus need train.method=bptt"),
    ({"train.method": "bptt", "train.loss": "first_spike"}, "first_spike needs"),
])  # fmt: skip
def test_incompatible_options_fail_at_config_time(overrides, message):
    with pytest.raises(SpikeforgeError, match=message):
        load_config(None, overrides)


def test_layer_level_errors():
    with pytest.raises(SpikeforgeError, match="unknown training method"):
        snn.LIF(2, 2, method="stdp-ish")
    with pytest.raises(SpikeforgeError, match="unknown surrogate"):
        snn.LIF(2, 2, method="bptt", surrogate="relu")
    with pytest.raises(SpikeforgeError, match="slope must be a positive"):
        snn.LIF(2, 2, method="bptt", surrogate_slope=-1.0)
    ev = snn.LIF(2, 3, dense_output=False)
    bp = snn.LIF(3, 2, method="bptt")
    with pytest.raises(SpikeforgeError, match="same method"):
        bp(ev(torch.ones(1, 5, 2)))


@pytest.mark.parametrize("recurrent", [False, True])
def test_event_input_currents_equal_the_dense_gemm_with_the_same_gradients(recurrent):
    """BPTT's sparse input projection (CSR events x weights) against the dense GEMM:
    same currents, spikes, loss and weight gradients; counts above 1 and an empty
    sample included."""
    from spikeforge.nn.bptt_layers import event_currents

    x = _inputs(5, n_batch=4, n_steps=50, n_in=9, rate=0.2)
    x[1] = 0.0  # a sample without events
    x[2, 10, 3] = 2.0  # a count of two
    events = Events.from_dense(x.numpy())
    torch.manual_seed(2)
    w = torch.randn(6, 9, dtype=torch.float64, requires_grad=True)
    g = torch.randn(4, 50, 6, dtype=torch.float64)
    dense = x @ w.t()
    (grad_dense,) = torch.autograd.grad((dense * g).sum(), w)
    sparse = event_currents(events, w)
    (grad_sparse,) = torch.autograd.grad((sparse * g).sum(), w)
    torch.testing.assert_close(sparse, dense, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_sparse, grad_dense, rtol=1e-12, atol=1e-12)

    layers = []
    for _ in range(2):
        torch.manual_seed(3)
        layers.append(snn.LIF(9, 7, recurrent=recurrent, weight_mean=1.5,
                              method="bptt").double())  # fmt: skip
    out_dense = layers[0](x)
    out_events = layers[1](snn.event_input(events, torch.float64))
    assert out_dense.sum() > 20, "the check needs spikes"
    assert torch.equal(out_dense, out_events)
    target = torch.randn_like(out_dense)
    for out in (out_dense, out_events):
        ((out * target).sum()).backward()
    for a, b in zip(layers[0].parameters(), layers[1].parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)
    assert layers[1].weight.grad.abs().sum() > 0
