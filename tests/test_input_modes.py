"""Sparse (event scatter) and dense (GEMM) input formulations give the same results."""

import numpy as np
import pytest
import torch

import spikeforge.nn as snn
from spikeforge.engine import Events
from spikeforge.engine import api as engine
from spikeforge.model import LIFParams

B, T, N_IN, N = 3, 60, 12, 7


def _inputs(density=0.3, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((B, T, N_IN)) < density) * rng.uniform(0.5, 2.0, (B, T, N_IN))
    w_in = rng.normal(0.3, 0.5, (N_IN, N))
    w_rec = rng.normal(0.0, 0.3, (N, N))
    return x, w_in, w_rec


def _neurons(spiking=True):
    return engine.NeuronArrays.from_params(LIFParams(20.0, 5.0, 1.0, spiking), N, 1.0,
                                           np.float64)


@pytest.mark.parametrize("backend", ["event", "reference"])
def test_lif_dense_input_matches_events(backend):
    x, w_in, w_rec = _inputs()
    results = []
    for inputs in (Events.from_dense(x), x):
        spikes = engine.forward(inputs, w_in, w_rec, _neurons(), backend)
        assert spikes.n_events > 20
        dldt = np.linspace(-1.0, 1.0, spikes.n_events)
        grads = engine.backward(inputs, w_in, w_rec, _neurons(), spikes, dldt,
                                want_input_timing=False, want_trace=True, backend=backend)
        results.append((spikes.to_dense(), spikes.isyn, grads.grad_w_in, grads.grad_w_rec,
                        grads.lam_i_trace))
    for sparse, dense in zip(*results, strict=True):
        np.testing.assert_allclose(dense, sparse, rtol=1e-10, atol=1e-12)


def test_li_dense_input_matches_events():
    x, w_in, _ = _inputs()
    grad_v = np.random.default_rng(1).normal(size=(B, T, N))
    results = []
    for inputs in (Events.from_dense(x), x):
        v = engine.forward(inputs, w_in, None, _neurons(False))
        grads = engine.backward(inputs, w_in, None, _neurons(False), grad_v=grad_v,
                                want_trace=True)
        results.append((v, grads.grad_w_in, grads.lam_i_trace))
    for sparse, dense in zip(*results, strict=True):
        np.testing.assert_allclose(dense, sparse, rtol=1e-10, atol=1e-12)


def test_choose_input_switches_at_the_density_threshold():
    x, _, _ = _inputs(density=0.05)
    assert isinstance(engine.choose_input(x), Events)
    assert isinstance(engine.choose_input(x, density_threshold=0.01), np.ndarray)
    dense_x, _, _ = _inputs(density=0.6)
    assert isinstance(engine.choose_input(dense_x), np.ndarray)


def test_layer_gradients_do_not_depend_on_the_input_formulation(monkeypatch):
    """Same LIF layer, dense analogue input: event path vs forced GEMM path."""
    x, _, _ = _inputs(density=0.5)
    x = torch.from_numpy(x).requires_grad_(True)
    grads = []
    for threshold in (2.0, 0.0):  # 2.0: never dense; 0.0: always dense
        monkeypatch.setattr(engine, "DENSE_INPUT_DENSITY", threshold)
        monkeypatch.setattr(engine.choose_input, "__defaults__", (threshold,))
        torch.manual_seed(0)
        layer = snn.LIF(N_IN, N, recurrent=True, weight_mean=0.5).double()
        x.grad = None
        readout = snn.LI(N, 3).double()
        loss = readout(layer(x)).pow(2).sum()
        loss.backward()
        grads.append((layer.weight.grad.clone(), layer.recurrent_weight.grad.clone(),
                      x.grad.clone()))
    for event_grad, dense_grad in zip(*grads, strict=True):
        assert event_grad.abs().sum() > 0
        torch.testing.assert_close(dense_grad, event_grad, rtol=1e-9, atol=1e-12)
