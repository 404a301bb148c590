"""Heterogeneous (per-neuron) and trainable time constants for both training methods."""

import numpy as np
import pytest
import torch

import spikeforge.nn as snn
from gradcheck_utils import compare
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import load_config
from spikeforge.train import readout_loss


def _x(seed, n_batch=3, n_steps=80, n_in=6):
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.random((n_batch, n_steps, n_in)) < 0.1).astype(np.float64))


def test_spread_draws_reproducible_per_neuron_taus():
    torch.manual_seed(0)
    a = snn.LIF(4, 50, tau_mem=20.0, tau_syn=5.0, tau_spread=0.4)
    torch.manual_seed(0)
    b = snn.LIF(4, 50, tau_mem=20.0, tau_syn=5.0, tau_spread=0.4)
    tau_mem = a.log_tau_mem.exp()
    assert torch.equal(a.log_tau_mem, b.log_tau_mem)
    assert tau_mem.min() >= 12.0 and tau_mem.max() <= 28.0 and tau_mem.std() > 1.0
    assert {"log_tau_mem", "log_tau_syn"} <= set(a.state_dict())
    assert "log_tau_mem" not in dict(a.named_parameters())  # fixed: a buffer
    assert set(snn.LIF(4, 5).state_dict()) == {"weight"}  # homogeneous: unchanged


def test_heterogeneous_lif_forward_identical_for_both_methods():
    layers = []
    for method in ("eventprop", "bptt"):
        torch.manual_seed(2)
        layers.append(snn.LIF(6, 8, recurrent=True, weight_mean=1.5, tau_spread=0.5,
                              method=method).double())
    assert torch.equal(layers[0].log_tau_mem, layers[1].log_tau_mem)
    s_ev, s_bp = layers[0](_x(1)), layers[1](_x(1))
    assert s_ev.sum() > 20
    assert torch.equal(s_ev, s_bp)


def test_heterogeneous_li_eventprop_gradient_equals_exact_bptt():
    """An LI readout has no spikes, so BPTT is exact; EventProp with per-neuron decays must
    give the same weight gradient (checks the per-neuron arrays in the adjoint)."""
    layers = []
    for method in ("eventprop", "bptt"):
        torch.manual_seed(3)
        layers.append(snn.LI(6, 4, tau_spread=0.5, weight_std=2.0, method=method).double())
    labels = torch.tensor([0, 3, 1])
    for layer in layers:
        readout_loss(layer(_x(2)), labels, "sum_exp").backward()
    torch.testing.assert_close(layers[0].weight.grad, layers[1].weight.grad,
                               rtol=1e-9, atol=1e-12)


def test_trainable_tau_gradient_matches_finite_differences():
    torch.manual_seed(4)
    layer = snn.LI(6, 4, tau_spread=0.3, train_tau=True, weight_std=2.0, method="bptt").double()
    labels = torch.tensor([0, 3, 1])
    x = _x(3)

    def loss():
        return readout_loss(layer(x), labels, "sum_exp")

    loss().backward()
    for param in (layer.log_tau_mem, layer.log_tau_syn):
        numeric = torch.zeros_like(param)
        with torch.no_grad():
            for index in range(param.numel()):
                original = param[index].item()
                param[index] = original + 1e-6
                up = loss().item()
                param[index] = original - 1e-6
                down = loss().item()
                param[index] = original
                numeric[index] = (up - down) / 2e-6
        cosine, rel = compare(param.grad, numeric)
        assert cosine > 0.99999 and rel < 1e-4, (cosine, rel)


def test_trainable_lif_taus_move_under_training():
    torch.manual_seed(5)
    layer = snn.LIF(6, 10, weight_mean=1.5, train_tau=True, method="bptt")
    readout = snn.LI(10, 3, method="bptt", weight_std=3.0)
    before = layer.log_tau_mem.detach().clone()
    opt = torch.optim.Adam([*layer.parameters(), *readout.parameters()], lr=0.05)
    for _ in range(3):
        opt.zero_grad()
        readout_loss(readout(layer(_x(4).float())), torch.tensor([0, 1, 2]), "sum").backward()
        assert layer.log_tau_mem.grad.abs().sum() > 0
        opt.step()
    assert not torch.equal(before, layer.log_tau_mem.detach())


def test_tau_option_errors():
    with pytest.raises(SpikeforgeError, match="trainable taus need train.method=bptt"):
        snn.LIF(3, 3, train_tau=True)
    with pytest.raises(SpikeforgeError, match="tau_spread must be in"):
        snn.LIF(3, 3, tau_spread=1.5)
    with pytest.raises(SpikeforgeError, match="smallest tau_syn"):
        load_config(None, {"model.tau_spread": 0.9})
    config = load_config(None, {"model.tau_spread": 0.2, "model.train_tau": True,
                                "train.method": "bptt"})
    assert config.model.train_tau
