"""The torch (CUDA) path: same spikes and EventProp gradients as the compiled CPU path."""

from functools import partial

import numpy as np
import pytest
import torch

import spikeforge.nn as snn
from spikeforge.engine import Events, alif_reference, torch_kernels
from spikeforge.engine import layers as engine
from spikeforge.engine.alif_layers import AdaptArrays
from spikeforge.model import ALIFParams, LIFParams
from spikeforge.train import readout_loss, spike_count_penalty

B, T, N_IN, N = 3, 80, 10, 8


def _x(seed=0, density=0.2):
    rng = np.random.default_rng(seed)
    return (rng.random((B, T, N_IN)) < density).astype(np.float64)


def test_kernels_match_the_reference_engine():
    rng = np.random.default_rng(1)
    x = _x()
    w_in, w_rec = rng.normal(0.4, 0.5, (N_IN, N)), rng.normal(0.0, 0.3, (N, N))
    arrays = engine.NeuronArrays.from_params(LIFParams(20.0, 5.0, 1.0), N, 1.0, np.float64)
    spikes = engine.lif_forward(x, w_in, w_rec, arrays, "reference")
    dldt = np.linspace(-1.0, 1.0, spikes.n_events)
    ref = engine.lif_backward(x, spikes, w_in, w_rec, arrays, dldt, False, True,
                              backend="reference")
    xt = torch.from_numpy(x)
    neurons = torch_kernels.DeviceNeurons.from_arrays(arrays, xt)
    t_spikes, t_isyn, no_adapt = torch_kernels.lif_forward(xt, torch.from_numpy(w_in.T.copy()),
                                                 torch.from_numpy(w_rec.T.copy()), neurons)
    assert no_adapt is None
    np.testing.assert_array_equal(t_spikes.numpy(), spikes.to_dense() > 0)
    dense_dldt = torch.zeros(B, T, N, dtype=torch.float64)
    dense_dldt[spikes.sample_index(), spikes.step, spikes.unit] = torch.from_numpy(dldt)
    grads = torch_kernels.lif_backward(xt, torch.from_numpy(w_in.T.copy()),
                                       torch.from_numpy(w_rec.T.copy()), t_spikes, t_isyn,
                                       dense_dldt, neurons, engine.DEFAULT_MIN_VDOT, True)
    np.testing.assert_allclose(grads.grad_w_in.numpy().T, ref.grad_w_in, rtol=1e-10)
    np.testing.assert_allclose(grads.grad_w_rec.numpy().T, ref.grad_w_rec, rtol=1e-10)
    np.testing.assert_allclose(grads.lam_i_trace.numpy(), ref.lam_i_trace, rtol=1e-10,
                               atol=1e-14)


def test_alif_kernels_match_the_alif_reference():
    rng = np.random.default_rng(2)
    x = _x(density=0.3)
    w_in, w_rec = rng.normal(0.5, 0.5, (N_IN, N)), rng.normal(0.0, 0.3, (N, N))
    arrays = engine.NeuronArrays.from_params(LIFParams(20.0, 5.0, 1.0), N, 1.0, np.float64)
    adapt = AdaptArrays.from_params(ALIFParams(20.0, 5.0, 1.0, tau_adapt=50.0, beta=0.5),
                                    N, 1.0, np.float64)
    per_neuron = (arrays.alpha_mem, arrays.alpha_syn, arrays.syn_gain, arrays.threshold)
    spikes, isyn, a_spk = alif_reference.alif_forward(x, w_in, w_rec, *per_neuron,
                                                      adapt.alpha_adapt, adapt.beta)
    assert spikes.sum() > 20 and a_spk.max() > 0  # adaptation is active
    dldt = np.where(spikes > 0, rng.normal(size=spikes.shape), 0.0)
    ref = alif_reference.alif_backward(
        x, w_in, w_rec, spikes, isyn, a_spk, dldt, *per_neuron, adapt.alpha_adapt,
        adapt.beta, arrays.tau_mem, arrays.dt, adapt.tau_adapt, engine.DEFAULT_MIN_VDOT,
    )  # fmt: skip
    xt = torch.from_numpy(x)
    neurons = torch_kernels.DeviceNeurons.from_arrays(arrays, xt)
    device_adapt = torch_kernels.DeviceAdaptation.from_arrays(adapt, xt)
    w_in_t, w_rec_t = torch.from_numpy(w_in.T.copy()), torch.from_numpy(w_rec.T.copy())
    t_spikes, t_isyn, t_a = torch_kernels.lif_forward(xt, w_in_t, w_rec_t, neurons, device_adapt)
    np.testing.assert_array_equal(t_spikes.numpy(), spikes > 0)
    np.testing.assert_allclose(t_isyn.numpy(), isyn, rtol=1e-12)
    np.testing.assert_allclose(t_a.numpy(), a_spk, rtol=1e-12)
    grads = torch_kernels.lif_backward(xt, w_in_t, w_rec_t, t_spikes, t_isyn,
                                       torch.from_numpy(dldt), neurons,
                                       engine.DEFAULT_MIN_VDOT, True, device_adapt, t_a)
    np.testing.assert_allclose(grads.grad_w_in.numpy().T, ref[0], rtol=1e-10)
    np.testing.assert_allclose(grads.grad_w_rec.numpy().T, ref[1], rtol=1e-10)
    np.testing.assert_allclose(grads.in_dldt.numpy(), ref[2], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads.lam_i_trace.numpy(), ref[3], rtol=1e-10, atol=1e-14)


def _two_layer_grads(backend: str, device: str = "cpu", regularise: bool = False,
                     neuron: str = "lif"):
    torch.manual_seed(0)
    kind = {"lif": snn.LIF, "alif": partial(snn.ALIF, tau_adapt=50.0, beta=0.5)}[neuron]
    hidden = kind(N_IN, N, recurrent=True, weight_mean=0.6, backend=backend,
                  dense_output=False).double().to(device)
    readout = snn.LI(N, 3, backend=backend).double().to(device)
    x = torch.from_numpy(_x())
    inputs = snn.event_input(Events.from_dense(x.numpy()), torch.float64) \
        if backend != "torch" and device == "cpu" else x.to(device)
    spikes = hidden(inputs)
    assert spikes.device.type == device
    loss = readout_loss(readout(spikes), torch.tensor([0, 1, 2], device=device), "sum_exp")
    if regularise:
        loss = loss + spike_count_penalty(spikes, 5.0, 0.5)
    loss.backward()
    return [p.grad.detach().cpu().clone() for p in (hidden.weight, hidden.recurrent_weight,
                                                    readout.weight)]


@pytest.mark.parametrize(("regularise", "neuron"),
                         [(False, "lif"), (True, "lif"), (False, "alif"), (True, "alif")])
def test_torch_backend_gradients_equal_the_event_kernels(regularise, neuron):
    expected = _two_layer_grads("event", regularise=regularise, neuron=neuron)
    got = _two_layer_grads("torch", regularise=regularise, neuron=neuron)
    for a, b in zip(expected, got, strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("neuron", ["lif", "alif"])
def test_cuda_tensors_select_the_torch_path_and_match_the_cpu(neuron):
    expected = _two_layer_grads("event", neuron=neuron)
    got = _two_layer_grads("auto", device="cuda", neuron=neuron)
    for a, b in zip(expected, got, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-10)
