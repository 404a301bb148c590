"""The torch (CUDA) path: same spikes and EventProp gradients as the compiled CPU path."""

from functools import partial

import numpy as np
import pytest
import torch

import spikeforge.nn as snn
from spikeforge.engine import Events, dense_loop
from spikeforge.engine import api as engine
from spikeforge.model import ALIFParams, LIFParams
from spikeforge.train import readout_loss, spike_count_penalty

B, T, N_IN, N = 3, 80, 10, 8


def _x(seed=0, density=0.2):
    rng = np.random.default_rng(seed)
    return (rng.random((B, T, N_IN)) < density).astype(np.float64)


def _device_run(x, w_in, w_rec, arrays: engine.NeuronArrays):
    """The torch path's dense loop on CPU tensors (weights [pre, post])."""
    table = torch.from_numpy(arrays.table)
    run = dense_loop.simulate(arrays.model, table, torch.from_numpy(x) @ torch.from_numpy(w_in),
                              torch.from_numpy(w_rec))
    return table, run


def test_kernels_match_the_reference_engine():
    rng = np.random.default_rng(1)
    x = _x()
    w_in, w_rec = rng.normal(0.4, 0.5, (N_IN, N)), rng.normal(0.0, 0.3, (N, N))
    arrays = engine.NeuronArrays.from_params(LIFParams(20.0, 5.0, 1.0), N, 1.0, np.float64)
    spikes = engine.forward(x, w_in, w_rec, arrays, "reference")
    dldt = np.linspace(-1.0, 1.0, spikes.n_events)
    ref = engine.backward(x, w_in, w_rec, arrays, spikes, dldt, want_trace=True,
                          backend="reference")
    xt = torch.from_numpy(x)
    table, run = _device_run(x, w_in, w_rec, arrays)
    t_spikes = run.out > 0
    np.testing.assert_array_equal(t_spikes.numpy(), spikes.to_dense() > 0)
    dense_dldt = torch.zeros(B, T, N, dtype=torch.float64)
    dense_dldt[spikes.sample_index(), spikes.step, spikes.unit] = torch.from_numpy(dldt)
    grads = dense_loop.adjoint(arrays.model, table, 1.0, xt, torch.from_numpy(w_in),
                               torch.from_numpy(w_rec), run.out, run.x1, run.x2, dense_dldt,
                               min_vdot=engine.DEFAULT_MIN_VDOT, want_input_timing=True)
    np.testing.assert_allclose(grads.grad_w_in.numpy(), ref.grad_w_in, rtol=1e-10)
    np.testing.assert_allclose(grads.grad_w_rec.numpy(), ref.grad_w_rec, rtol=1e-10)
    np.testing.assert_allclose(grads.lam_i_trace.numpy(), ref.lam_i_trace, rtol=1e-10,
                               atol=1e-14)


def test_alif_kernels_match_the_alif_reference():
    rng = np.random.default_rng(2)
    x = _x(density=0.3)
    w_in, w_rec = rng.normal(0.5, 0.5, (N_IN, N)), rng.normal(0.0, 0.3, (N, N))
    arrays = engine.NeuronArrays.from_params(ALIFParams(20.0, 5.0, 1.0, tau_adapt=50.0,
                                                        beta=0.5), N, 1.0, np.float64)
    run = dense_loop.simulate(arrays.model, arrays.table, x @ w_in, w_rec)
    spikes, isyn, a_spk = run.out, run.x1, run.x2
    assert spikes.sum() > 20 and a_spk.max() > 0  # adaptation is active
    dldt = np.where(spikes > 0, rng.normal(size=spikes.shape), 0.0)
    grads_np = dense_loop.adjoint(arrays.model, arrays.table, 1.0, x, w_in, w_rec, spikes, isyn,
                                  a_spk, dldt, min_vdot=engine.DEFAULT_MIN_VDOT,
                                  want_input_timing=True)
    ref = (grads_np.grad_w_in, grads_np.grad_w_rec, grads_np.in_dldt, grads_np.lam_i_trace)
    xt = torch.from_numpy(x)
    table, t_run = _device_run(x, w_in, w_rec, arrays)
    t_spikes, t_isyn, t_a = t_run.out, t_run.x1, t_run.x2
    np.testing.assert_array_equal(t_spikes.numpy(), spikes > 0)
    np.testing.assert_allclose(t_isyn.numpy(), isyn, rtol=1e-12)
    np.testing.assert_allclose(t_a.numpy(), a_spk, rtol=1e-12)
    grads = dense_loop.adjoint(arrays.model, table, 1.0, xt, torch.from_numpy(w_in),
                               torch.from_numpy(w_rec), t_spikes, t_isyn, t_a,
                               torch.from_numpy(dldt), min_vdot=engine.DEFAULT_MIN_VDOT,
                               want_input_timing=True)
    np.testing.assert_allclose(grads.grad_w_in.numpy(), ref[0], rtol=1e-10)
    np.testing.assert_allclose(grads.grad_w_rec.numpy(), ref[1], rtol=1e-10)
    np.testing.assert_allclose(grads.in_dldt.numpy(), ref[2], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads.lam_i_trace.numpy(), ref[3], rtol=1e-10, atol=1e-14)
    # the compiled CPU driver agrees with the dense oracle
    events = engine.forward(Events.from_dense(x), w_in, w_rec, arrays)
    np.testing.assert_array_equal(events.to_dense() > 0, spikes > 0)
    np.testing.assert_allclose(events.extra, a_spk[events.sample_index(), events.step,
                                                   events.unit], rtol=1e-12)


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
