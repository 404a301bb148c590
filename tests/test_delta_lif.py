"""The delta-synapse LIF model (added as one file plus a registry line): closed form,
compiled driver against the dense oracle, BPTT gradients, and what it refuses."""

import math

import numpy as np
import pytest
import torch

import spikeforge.nn as snn
from gradcheck_utils import compare
from spikeforge.engine import Events, NeuronArrays, backward, forward
from spikeforge.errors import SpikeforgeError
from spikeforge.neurons import DeltaLIFParams, delta_lif, model_of
from spikeforge.nn.bptt_layers import bptt_loop
from spikeforge.train import readout_loss


def test_constant_drive_first_spike_matches_the_closed_form():
    """An input of weight w every step: V_n = w a (1 - a^n) / (1 - a) after n steps."""
    params = DeltaLIFParams(tau_mem=10.0, threshold=1.0)
    a, w, n_steps = math.exp(-0.1), 0.3, 60
    expected = next(n for n in range(1, n_steps)
                    if w * a * (1 - a**n) / (1 - a) >= params.threshold)
    steps = np.arange(n_steps)
    events = Events.from_lists([(steps, np.zeros(n_steps, int))], n_steps, 1, np.float64)
    spikes = forward(events, np.full((1, 1), w), None,
                     NeuronArrays.from_params(params, 1, 1.0, np.float64))
    assert model_of(params) is delta_lif.MODEL
    assert spikes.step[0] == expected  # input of step n is felt from step n + 1
    assert expected == 5  # V = 0.940 after four steps, 1.122 after five


@pytest.mark.parametrize("recurrent", [False, True])
def test_compiled_driver_matches_the_dense_oracle(recurrent):
    rng = np.random.default_rng(0)
    x = (rng.random((3, 120, 7)) < 0.1).astype(np.float64)
    w_in = rng.normal(0.4, 0.3, (7, 9))
    w_rec = rng.normal(0.0, 0.3, (9, 9)) if recurrent else None
    neurons = NeuronArrays.from_params(DeltaLIFParams(tau_mem=15.0), 9, 1.0, np.float64)
    fast = forward(Events.from_dense(x), w_in, w_rec, neurons)
    ref = forward(Events.from_dense(x), w_in, w_rec, neurons, "reference")
    assert fast.n_events > 40
    np.testing.assert_array_equal(fast.to_dense(), ref.to_dense())
    np.testing.assert_allclose(fast.isyn, ref.isyn, rtol=1e-12)


def test_bptt_loop_gradients_match_finite_differences():
    """With a smooth spike function the loop is differentiable: autograd equals central
    finite differences (weights and recurrent weights)."""
    torch.manual_seed(0)
    h0 = (torch.rand(2, 40, 3, dtype=torch.float64) < 0.3).double()
    w_in = (torch.randn(4, 3, dtype=torch.float64) * 0.5 + 0.6).requires_grad_(True)
    w_rec = (torch.randn(4, 4, dtype=torch.float64) * 0.3).requires_grad_(True)
    taus = {"tau_mem": torch.full((4,), 12.0, dtype=torch.float64)}
    table = torch.stack(delta_lif.factors(DeltaLIFParams(), 1.0, taus, torch))
    readout = torch.randn(4, dtype=torch.float64)

    def loss():
        s = bptt_loop(delta_lif.MODEL, table, h0 @ w_in.t(), w_rec, detach_reset=False,
                      spike_fn=lambda m: torch.sigmoid(8.0 * m))
        return (s.sum(dim=1) * readout).sum()

    loss().backward()
    for param in (w_in, w_rec):
        numeric = torch.zeros_like(param)
        with torch.no_grad():
            flat = param.view(-1)
            for index in range(flat.numel()):
                original = flat[index].item()
                flat[index] = original + 1e-6
                up = loss().item()
                flat[index] = original - 1e-6
                down = loss().item()
                flat[index] = original
                numeric.view(-1)[index] = (up - down) / 2e-6
        cosine, rel = compare(param.grad, numeric)
        assert cosine > 0.9999 and rel < 1e-4


def test_layer_trains_with_bptt_on_every_path():
    torch.manual_seed(1)
    x = (torch.rand(8, 60, 5) < 0.15).double()
    labels = torch.arange(8) % 2
    layers = {}
    for backend in ("event", "torch"):
        torch.manual_seed(2)
        with pytest.warns(UserWarning, match="cannot learn with method='eventprop'"):
            layers[backend] = snn.LIF(5, 12, params=DeltaLIFParams(), weight_mean=1.0,
                                      backend=backend).double()
    with torch.no_grad():
        assert torch.equal(layers["event"](x), layers["torch"](x))
    torch.manual_seed(2)
    hidden = snn.LIF(5, 12, params=DeltaLIFParams(), weight_mean=1.0, method="bptt").double()
    readout = snn.LI(12, 2, method="bptt", weight_std=3.0).double()
    optimiser = torch.optim.Adam([*hidden.parameters(), *readout.parameters()], lr=0.05)
    losses = []
    for _ in range(15):
        optimiser.zero_grad()
        loss = readout_loss(readout(hidden(x)), labels, "sum")
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_eventprop_and_readout_use_are_refused_clearly():
    with pytest.raises(SpikeforgeError, match="does not support per_neuron_tau"):
        snn.LIF(3, 4, params=DeltaLIFParams(), method="bptt", tau_spread=0.2)
    with pytest.raises(SpikeforgeError, match="must be spiking"):
        DeltaLIFParams(spiking=False).validate(1.0)
    neurons = NeuronArrays.from_params(DeltaLIFParams(), 2, 1.0, np.float64)
    events = Events.from_dense(np.ones((1, 5, 2)))
    spikes = forward(events, np.ones((2, 2)), None, neurons)
    with pytest.raises(SpikeforgeError, match="method='bptt'"):
        backward(events, np.ones((2, 2)), None, neurons, spikes, np.zeros(spikes.n_events))


def test_exports_through_its_own_nir_mapping_and_is_refused_by_simulators():
    from spikeforge.export import to_nir
    from spikeforge.export.capabilities import check_expressible
    from spikeforge.export.network_io import LoadedModel
    from spikeforge.model import LayerSpec, LIFParams, NetworkSpec

    spec = NetworkSpec(4, (LayerSpec(6, DeltaLIFParams(tau_mem=8.0, threshold=0.5)),
                           LayerSpec(2, LIFParams(spiking=False))))
    with pytest.warns(UserWarning, match="cannot learn"):
        model = LoadedModel(snn.build_network(spec), "sum")
    graph = to_nir(model)
    node = graph.nodes["lif0"]
    assert type(node).__name__ == "LIF"
    np.testing.assert_allclose(node.tau, 8e-3)
    np.testing.assert_allclose(node.r, node.tau)  # a Dirac of area w raises v by w
    np.testing.assert_allclose(node.v_threshold, 0.5)
    assert type(graph.nodes["out"]).__name__ == "CubaLI"
    for target in ("brian2", "nest"):
        with pytest.raises(SpikeforgeError, match="layer 0 uses delta-synapse LIF neurons"):
            check_expressible(model, target)
