"""First-spike-time training: the silent-output drive and an end-to-end run."""

import numpy as np
import torch

import spikeforge.nn as snn
from gradcheck_utils import compare, fd_gradient
from spikeforge.experiments.config import load_config
from spikeforge.experiments.runner import train_run
from spikeforge.train import first_spike_times, silent_output_penalty


def _input(n_steps=60, n_in=6, seed=0):
    rng = np.random.default_rng(seed)
    x = torch.zeros(2, n_steps, n_in, dtype=torch.float64)
    for b in range(2):
        for u in range(n_in):
            x[b, rng.integers(0, n_steps // 2), u] = 1.0
    return x


def test_subthreshold_voltage_is_the_voltage_of_silent_neurons():
    layer = snn.LIF(6, 3, threshold=1.0).double()
    with torch.no_grad():
        layer.weight.fill_(0.05)  # far below threshold: every neuron silent
    x = _input()
    assert layer(x).sum().item() == 0
    reference = snn.LI(6, 3).double()
    with torch.no_grad():
        reference.weight.copy_(layer.weight)
    v = layer.subthreshold_voltage(x)
    assert torch.allclose(v, reference(x))
    assert v.max().item() > 0.01  # the input does move the voltage


def test_silent_output_penalty_gradient_matches_finite_differences():
    layer = snn.LIF(6, 3).double()
    with torch.no_grad():
        layer.weight.uniform_(0.0, 0.3)
    x, labels = _input(), torch.tensor([0, 2])

    def loss_value():
        spikes = layer(x)
        t_first = first_spike_times(spikes)
        loss = silent_output_penalty(layer.subthreshold_voltage(x), t_first, labels,
                                     t_silent=x.shape[1] * layer.dt, threshold=1.0)
        return loss, spikes.sum(dim=1).detach().numpy()

    loss, _ = loss_value()
    assert loss.item() > 0
    loss.backward()
    numeric, changed = fd_gradient(loss_value, layer.weight, half_width=1e-4)
    assert changed == 0
    cosine, rel = compare(layer.weight.grad, numeric)
    assert cosine > 0.999 and rel < 1e-3
    assert layer.weight.grad[1].abs().sum() == 0  # class 1 is nobody's label


def test_silent_output_penalty_makes_the_correct_neuron_fire():
    layer = snn.LIF(6, 3).double()
    with torch.no_grad():
        layer.weight.fill_(0.05)
    x, labels = _input(), torch.tensor([1, 1])
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    for _ in range(200):
        optimizer.zero_grad()
        spikes = layer(x)
        t_first = first_spike_times(spikes)
        if (t_first[:, 1] < x.shape[1] * layer.dt).all():
            break
        silent_output_penalty(layer.subthreshold_voltage(x), t_first, labels,
                              t_silent=x.shape[1] * layer.dt, threshold=1.0).backward()
        optimizer.step()
    assert (first_spike_times(layer(x))[:, 1] < x.shape[1] * layer.dt).all()


def test_first_spike_loss_trains_from_the_cli_config(tmp_path):
    config = load_config(None, {"train.loss": "first_spike", "train.epochs": 4})
    result = train_run(config, tmp_path / "run")
    assert result["test_accuracy"] > 0.5  # chance is 0.1; 60 epochs reach ~0.82
