"""e-prop per-step (online) weight updates: one window equals per-batch updates exactly,
short windows change the weights, the compiled driver matches the reference's online
mode, and online training learns digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spikeforge.engine import NeuronArrays
from spikeforge.neurons import ALIFParams, LIFParams
from spikeforge.train.eprop_reference import eprop_reference
from test_eprop import DT, problem, tables, tiny_batch, tiny_network

READOUT = LIFParams(10.0, 3.0, spiking=False)


def train(update: str, update_every: int, n_batches: int = 4):
    """A tiny recurrent network after ``n_batches`` Adam batches; returns (network,
    losses)."""
    from spikeforge.train.eprop import EpropLearner, EpropSettings

    network = tiny_network()
    learner = EpropLearner(network, EpropSettings(reg_strength=1e-3, reg_target_hz=20.0,
                                                  update=update, update_every=update_every))
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-2)
    events, labels = tiny_batch(n_steps=30)
    losses = []
    for _ in range(n_batches):
        optimizer.zero_grad()
        loss, _ = learner.step(events, labels, optimizer.step)
        optimizer.step()
        losses.append(float(loss))
    return network, losses


def weights(network):
    return [p.detach().clone() for p in network.parameters()]


def test_one_window_equals_per_batch_updates_exactly():
    batch_net, batch_losses = train("batch", 1)
    for every in (30, 31, 500):  # T = 30
        step_net, step_losses = train("step", every)
        assert step_losses == batch_losses
        for a, b in zip(weights(batch_net), weights(step_net), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_short_windows_update_within_the_batch():
    batch_net, _ = train("batch", 1, n_batches=1)
    calls = []
    from spikeforge.train.eprop import EpropLearner, EpropSettings

    network = tiny_network()
    learner = EpropLearner(network, EpropSettings(update="step", update_every=7))
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-2)
    events, labels = tiny_batch(n_steps=30)
    before = weights(network)

    def apply_update():
        calls.append([p.grad.abs().sum().item() for p in network.parameters()
                      if p.grad is not None])
        optimizer.step()

    loss, _ = learner.step(events, labels, apply_update)
    assert len(calls) == 4  # windows [0,7) [7,14) [14,21) [21,28); [28,30) left in .grad
    assert all(sum(window) > 0 for window in calls)  # every window has a gradient
    moved = [float((a - b).abs().max()) for a, b in zip(before, weights(network), strict=True)]
    assert max(moved) > 1e-3  # updated inside the batch, before the caller's step
    optimizer.step()
    differs = [float((a - b).abs().max()) for a, b in
               zip(weights(batch_net), weights(network), strict=True)]
    assert max(differs) > 1e-3
    assert np.isfinite(float(loss))


def test_update_step_without_an_update_to_apply_is_refused():
    from spikeforge.errors import SpikeforgeError
    from spikeforge.train.eprop import EpropLearner, EpropSettings

    learner = EpropLearner(tiny_network(), EpropSettings(update="step", update_every=5))
    events, labels = tiny_batch()
    with pytest.raises(SpikeforgeError, match="apply_update"):
        learner.step(events, labels)
    with pytest.raises(SpikeforgeError, match="update_every must be >= 1"):
        EpropLearner(tiny_network(), EpropSettings(update="step", update_every=0))


@pytest.mark.parametrize(("params", "recurrent", "symmetric"), [
    (LIFParams(tau_mem=20.0, tau_syn=5.0, threshold=1.0), True, True),
    (ALIFParams(tau_mem=20.0, tau_syn=5.0, threshold=0.8, tau_adapt=60.0, beta=0.5), True,
     False),
], ids=["lif-symmetric", "alif-random"])
def test_compiled_online_updates_match_the_reference(params, recurrent, symmetric):
    from spikeforge.engine.eprop_api import eprop_gradients
    from spikeforge.events import Events

    model, table, readout_table = tables(params, 4, 3)
    x, labels, w_in, w_rec, w_out = problem(5, n_batch=5)
    w_rec = w_rec if recurrent else None
    feedback = None if symmetric else torch.randn(
        4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    options = dict(surrogate="fast_sigmoid", slope=5.0, reg_strength=0.05, reg_target=2.0)
    lr, every = 20.0, 6   # large steps so that the updates change the spikes

    def sgd(result, w_in, w_rec, w_out):
        return (w_in - lr * result.grad_w_in,
                None if w_rec is None else w_rec - lr * result.grad_w_rec,
                w_out - lr * result.grad_w_out)

    ref_weights, got_weights = [(w_in, w_rec, w_out)], [(w_in.numpy(), None if w_rec is None
                                                         else w_rec.numpy(), w_out.numpy())]

    def ref_apply(result):
        ref_weights.append(sgd(result, *ref_weights[-1]))
        return ref_weights[-1]

    def got_apply(grads):
        got_weights.append(sgd(grads, *got_weights[-1]))
        return got_weights[-1]

    ref = eprop_reference(model, table, readout_table, x, labels, w_in, w_rec, w_out,
                          feedback=feedback, update_every=every, apply=ref_apply, **options)
    hidden = NeuronArrays.from_params(params, 4, DT, np.float64)
    readout = NeuronArrays.from_params(READOUT, 3, DT, np.float64)
    got = eprop_gradients(hidden, readout, Events.from_dense(x.numpy()), w_in.numpy(),
                          None if w_rec is None else w_rec.numpy(), w_out.numpy(),
                          labels.numpy(), feedback=None if feedback is None else
                          feedback.numpy(), n_chunks=2, update_every=every, apply=got_apply,
                          **options)
    assert len(ref_weights) == len(got_weights) == 6   # T = 35: windows of 6, last of 5
    for ref_w, got_w in zip(ref_weights, got_weights, strict=True):
        for a, b in zip(ref_w, got_w, strict=True):
            if a is not None:
                np.testing.assert_allclose(b, a.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.grad_w_in, ref.grad_w_in.numpy(), rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(got.grad_w_rec, ref.grad_w_rec.numpy(), rtol=1e-9,
                               atol=1e-13)
    np.testing.assert_allclose(got.grad_w_out, ref.grad_w_out.numpy(), rtol=1e-9, atol=1e-13)
    assert got.loss.sum() == pytest.approx(float(ref.loss), rel=1e-12)
    np.testing.assert_array_equal(got.counts, ref.spikes.sum(dim=1).numpy())
    # the updates changed the run: per-batch gradients give other spikes
    plain = eprop_reference(model, table, readout_table, x, labels, w_in, w_rec, w_out,
                            feedback=feedback, **options)
    assert not torch.equal(plain.spikes, ref.spikes)
    assert float(ref.spikes.sum()) > 10


@pytest.mark.slow
def test_online_eprop_learns_digits(tmp_path):
    """The digits recipe with an update every 5 of its 40 steps (8 updates per batch),
    8 epochs: 7-18 s on 2 shared cores, so slow."""
    from spikeforge.experiments.config import load_config
    from spikeforge.experiments.runner import train_run

    recipe = Path(__file__).resolve().parents[1] / "configs" / "digits_eprop.yaml"
    config = load_config(recipe, {"train.eprop_update": "step", "train.eprop_update_every": 5,
                                  "train.epochs": 8})
    results = train_run(config, tmp_path / "run")
    assert results["test_accuracy"] >= 0.85


def test_a_batch_without_time_steps_is_refused():
    from spikeforge.engine.eprop_api import eprop_gradients
    from spikeforge.errors import SpikeforgeError
    from spikeforge.events import Events

    hidden = NeuronArrays.from_params(LIFParams(), 4, DT, np.float64)
    readout = NeuronArrays.from_params(READOUT, 3, DT, np.float64)
    with pytest.raises(SpikeforgeError, match="2 samples of 0 steps"):
        eprop_gradients(hidden, readout, Events.from_dense(np.zeros((2, 0, 5))),
                        np.ones((5, 4)), None, np.ones((4, 3)), np.array([0, 1]),
                        update_every=3, apply=lambda grads: None)
