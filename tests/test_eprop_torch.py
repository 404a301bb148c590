"""e-prop's torch loop (what a network on a GPU trains with) against the compiled CPU
driver: the same gradients, loss, predictions and online updates, run here on the CPU
with ``backend="torch"``."""

from __future__ import annotations

import pytest
import torch

from spikeforge.errors import SpikeforgeError
from spikeforge.neurons import ALIFParams, LIFParams
from spikeforge.train.eprop import EpropLearner, EpropSettings
from test_eprop import DT, tiny_batch, tiny_network


def _network(neuron, recurrent: bool):
    from spikeforge.model import LayerSpec, NetworkSpec
    from spikeforge.nn import build_network

    torch.manual_seed(0)
    return build_network(NetworkSpec(n_inputs=6, dt=DT, layers=(
        LayerSpec(size=12, neuron=neuron, recurrent=recurrent, weight_mean=0.5),
        LayerSpec(size=2, neuron=LIFParams(spiking=False), weight_std=3.0))))


def _grads(network):
    return [p.grad.detach().clone() for p in network.parameters() if p.grad is not None]


@pytest.mark.parametrize("neuron", [LIFParams(), ALIFParams()], ids=["lif", "alif"])
@pytest.mark.parametrize("recurrent", [True, False])
@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_torch_loop_gives_the_compiled_drivers_gradients(neuron, recurrent, feedback):
    events, labels = tiny_batch()
    results = {}
    for backend in ("compiled", "torch"):
        network = _network(neuron, recurrent)
        learner = EpropLearner(network, EpropSettings(
            feedback=feedback, reg_strength=1e-3, reg_target_hz=20.0, seed=4,
            backend=backend))
        loss, predictions = learner.step(events, labels)
        results[backend] = (loss, predictions, _grads(network), learner.last_counts)
    (loss_c, pred_c, grads_c, counts_c), (loss_t, pred_t, grads_t, counts_t) = (
        results["compiled"], results["torch"])
    assert counts_c.sum() > 0
    assert (counts_c == counts_t).all()
    assert torch.equal(pred_c, pred_t)
    assert float(loss_t) == pytest.approx(float(loss_c), rel=1e-5)
    assert len(grads_c) == len(grads_t) == (3 if recurrent else 2)
    for a, b in zip(grads_c, grads_t, strict=True):
        assert float(a.abs().max()) > 0
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6 * float(a.abs().max()))


def test_torch_loop_online_updates_match_the_compiled_driver():
    events, labels = tiny_batch(n_steps=30)
    final = {}
    for backend in ("compiled", "torch"):
        network = tiny_network()
        learner = EpropLearner(network, EpropSettings(update="step", update_every=7,
                                                      backend=backend))
        optimizer = torch.optim.Adam(network.parameters(), lr=2e-2)
        for _ in range(3):
            optimizer.zero_grad()
            learner.step(events, labels, optimizer.step)
            optimizer.step()
        final[backend] = [p.detach().clone() for p in network.parameters()]
    for a, b in zip(final["compiled"], final["torch"], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_unknown_backend_is_refused():
    with pytest.raises(SpikeforgeError, match="unknown e-prop backend 'cuda'"):
        EpropLearner(tiny_network(), EpropSettings(backend="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_eprop_on_a_gpu_matches_the_cpu_driver():
    events, labels = tiny_batch()
    grads = {}
    for device in ("cpu", "cuda"):
        network = tiny_network().to(device)
        learner = EpropLearner(network, EpropSettings())
        assert learner.torch_loop == (device == "cuda")
        dense = torch.from_numpy(events.to_dense()).to(device)
        learner.step(dense if device == "cuda" else events, labels)
        grads[device] = [g.cpu() for g in _grads(network)]
    for a, b in zip(grads["cpu"], grads["cuda"], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5)
