"""Energy accounting: operation counts checked against a brute-force dense count."""

import numpy as np
import pytest
import torch

from spikeforge.energy import count_network_ops, dense_macs, fan_out, sops_from_counts
from spikeforge.engine import Events
from spikeforge.engine import reference as ref
from spikeforge.errors import SpikeforgeError
from spikeforge.model import LayerSpec, LIFParams, NetworkSpec
from spikeforge.nn import SpikingNetwork


def _net(recurrent=False):
    spec = NetworkSpec(
        n_inputs=12,
        layers=(LayerSpec(16, LIFParams(20.0, 5.0, 1.0), recurrent=recurrent, weight_mean=1.5),
                LayerSpec(4, LIFParams(20.0, 5.0, spiking=False))),
        dt=1.0,
    )
    torch.manual_seed(1)
    return SpikingNetwork(spec)


def _events(n_batch=3, n_steps=30, n_units=12, p=0.15, seed=0):
    rng = np.random.default_rng(seed)
    return Events.from_dense((rng.random((n_batch, n_steps, n_units)) < p).astype(np.float32))


def test_fan_out_and_sops_from_counts():
    w = np.array([[1.0, 0.0, 2.0], [0.5, 0.0, 0.0]])  # [out=2, in=3]
    assert fan_out(w).tolist() == [2, 0, 1]
    counts = np.array([[1, 5, 2], [0, 1, 3]])
    assert sops_from_counts(counts, fan_out(w)).tolist() == [1 * 2 + 2 * 1, 3]
    assert sops_from_counts(counts, 4).tolist() == [32, 16]
    with pytest.raises(SpikeforgeError, match="2-D"):
        fan_out(np.zeros(3))


@pytest.mark.parametrize("recurrent", [False, True])
def test_network_ops_match_dense_brute_force(recurrent):
    net, ev = _net(recurrent), _events()
    with torch.no_grad():
        net.layers[0].weight[0, 3] = 0.0  # one pruned synapse: fan-out of input 3 is 15
    ops = count_network_ops(net, ev)
    x = ev.to_dense(np.float64)
    lif = net.layers[0]
    w_in = lif.weight.detach().double().numpy().T
    w_rec = lif.recurrent_weight.detach().double().numpy().T if recurrent else None
    d = lif.params.decays(1.0)
    spikes, _ = ref.lif_forward(x, w_in, w_rec, d.alpha_mem, d.alpha_syn, d.syn_gain, 1.0)
    # brute force: every (sample, step, unit) event times the non-zero weights it drives
    expect_in = (x.sum(axis=1) * (w_in != 0).sum(axis=1)).sum(axis=1).mean()
    hidden_counts = spikes.sum(axis=1)
    expect_rec = (hidden_counts * (w_rec != 0).sum(axis=1)).sum(axis=1).mean() if recurrent else 0
    expect_out = (hidden_counts * 4).sum(axis=1).mean()
    assert spikes.sum() > 0
    assert ops.layers[0].sops == pytest.approx(expect_in + expect_rec)
    assert ops.layers[0].spikes == pytest.approx(spikes.sum() / 3)
    assert ops.layers[1].sops == pytest.approx(expect_out)
    assert ops.layers[1].spikes == 0.0
    assert ops.input_events == pytest.approx(x.sum() / 3)
    assert ops.sops == pytest.approx(expect_in + expect_rec + expect_out)
    assert ops.macs_per_inference == dense_macs(12, 16, recurrent) + 16 * 4
    assert ops.macs_per_step == ops.macs_per_inference * 30
    assert ops.neuron_updates == (16 + 4) * 30
