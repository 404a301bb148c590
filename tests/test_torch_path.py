"""The torch (CUDA) path: same spikes and EventProp gradients as the compiled CPU path."""

import numpy as np
import pytest
import torch

import spikeforge.nn as snn
from spikeforge.engine import Events, torch_kernels
from spikeforge.engine import layers as engine
from spikeforge.model import LIFParams
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
    t_spikes, t_isyn = torch_kernels.lif_forward(xt, torch.from_numpy(w_in.T.copy()),
                                                 torch.from_numpy(w_rec.T.copy()), neurons)
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


def _two_layer_grads(backend: str, device: str = "cpu", regularise: bool = False):
    torch.manual_seed(0)
    hidden = snn.LIF(N_IN, N, recurrent=True, weight_mean=0.6, backend=backend,
                     dense_output=False).double().to(device)
    readout = snn.LI(N, 3, backend=backend).double().to(device)
    x = torch.from_numpy(_x())
    inputs = snn.event_input(Events.from_dense(x.numpy()), torch.float64) \
        if backend != "torch" and device == "cpu" else x.to(device)
    spikes = hidden(inputs)
    loss = readout_loss(readout(spikes), torch.tensor([0, 1, 2], device=device), "sum_exp")
    if regularise:
        loss = loss + spike_count_penalty(spikes, 5.0, 0.5)
    loss.backward()
    return [p.grad.detach().cpu().clone() for p in (hidden.weight, hidden.recurrent_weight,
                                                    readout.weight)]


@pytest.mark.parametrize("regularise", [False, True])
def test_torch_backend_gradients_equal_the_event_kernels(regularise):
    expected = _two_layer_grads("event", regularise=regularise)
    got = _two_layer_grads("torch", regularise=regularise)
    for a, b in zip(expected, got, strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_tensors_select_the_torch_path_and_match_the_cpu():
    expected = _two_layer_grads("event")
    got = _two_layer_grads("auto", device="cuda")
    for a, b in zip(expected, got, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-10)
