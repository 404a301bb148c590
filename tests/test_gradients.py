"""EventProp gradients against closed forms and finite differences."""

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

import spikeforge.nn as snn
from gradcheck_utils import compare, fd_gradient
from spikeforge.engine import Events
from spikeforge.train import first_spike_times, readout_loss

TAU_MEM, TAU_SYN = 20.0, 5.0


def _psp(t):
    return TAU_SYN / (TAU_SYN - TAU_MEM) * (np.exp(-t / TAU_SYN) - np.exp(-t / TAU_MEM))


def _dpsp(t):
    scale = TAU_SYN / (TAU_SYN - TAU_MEM)
    return scale * (-np.exp(-t / TAU_SYN) / TAU_SYN + np.exp(-t / TAU_MEM) / TAU_MEM)


@pytest.mark.parametrize("w", [7.0, 10.0, 20.0])
def test_single_neuron_spike_time_gradient_matches_closed_form(w):
    """One input spike of weight w at t=0: t* solves w*psp(t*) = 1, dt*/dw = -psp/(w psp')."""
    dt = 0.001
    t_star = brentq(lambda t: w * _psp(t) - 1.0, 1e-9, 9.0)
    expected = -_psp(t_star) / (w * _dpsp(t_star))
    layer = snn.LIF(1, 1, dt=dt).double()
    with torch.no_grad():
        layer.weight.fill_(w)
    x = torch.zeros(1, int(15 / dt), 1, dtype=torch.float64)
    x[0, 0, 0] = 1.0
    t_first = first_spike_times(layer(x))
    assert abs(t_first.item() - t_star) < 2 * dt
    t_first.sum().backward()
    assert layer.weight.grad.item() == pytest.approx(expected, rel=2e-3)


def _input_events(rng, n_batch, n_inputs, dt, n_steps, window_ms=15.0):
    samples = []
    for _ in range(n_batch):
        times = rng.uniform(0.0, window_ms, size=2 * n_inputs)
        samples.append((np.round(times / dt).astype(int), np.repeat(np.arange(n_inputs), 2)))
    return Events.from_lists(samples, n_steps, n_inputs, np.float64)


def _net(hidden_sizes, recurrent, dt, n_inputs, n_classes, seed, means=(2.2, 1.2)):
    torch.manual_seed(seed)
    layers, n_in = [], n_inputs
    for size, mean in zip(hidden_sizes, means, strict=False):
        layers.append(snn.LIF(n_in, size, recurrent=recurrent, dt=dt, weight_mean=mean,
                              weight_std=0.9, recurrent_std=0.6, dense_output=False))
        n_in = size
    layers.append(snn.LI(n_in, n_classes, dt=dt, weight_std=2.0))
    return torch.nn.Sequential(*layers).double()


CASES = {
    "feedforward": dict(hidden=[5], recurrent=False, seed=1, half_width=0.01),
    "recurrent": dict(hidden=[5], recurrent=True, seed=2, half_width=0.01),
    # moderate activity keeps the FD quantisation noise (~ dt / half_width per spike) low
    "two_hidden": dict(hidden=[5, 4], recurrent=False, seed=5, half_width=0.01,
                       means=(1.2, 1.8)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_eventprop_matches_finite_differences(case):
    cfg = CASES[case]
    dt, n_inputs, n_classes = 2e-4, 6, 3
    n_steps = int(40 / dt)
    rng = np.random.default_rng(cfg["seed"])
    events = _input_events(rng, 2, n_inputs, dt, n_steps)
    net = _net(cfg["hidden"], cfg["recurrent"], dt, n_inputs, n_classes, cfg["seed"],
               cfg.get("means", (2.2, 1.2)))
    labels = torch.tensor([0, 2])

    def loss_and_counts():
        v = net(snn.event_input(events, torch.float64))
        counts = np.concatenate(
            [m.last_record.events.counts().ravel() for m in net if isinstance(m, snn.LIF)]
        )
        return readout_loss(v, labels, "sum_exp").item(), counts

    _, counts = loss_and_counts()
    assert counts.min() >= 1, "every hidden neuron must spike for a meaningful check"
    net.zero_grad()
    loss = readout_loss(net(snn.event_input(events, torch.float64)), labels, "sum_exp")
    loss.backward()
    for name, param in net.named_parameters():
        numeric, changed = fd_gradient(loss_and_counts, param.data, cfg["half_width"])
        assert changed == 0, f"{name}: perturbation changed spike counts"
        cosine, rel = compare(param.grad, numeric)
        assert cosine > 0.99, f"{name}: cosine {cosine:.4f}"
        assert rel < 0.05, f"{name}: relative error {rel:.4f}"


def _long_window_grad(dt: float, spikes_ms: np.ndarray, labels: torch.Tensor):
    """Hidden-weight EventProp gradient of 100 -> 32 LIF -> 5 LI over the whole window,
    the 1 ms input spike grid placed on a ``dt`` grid (same seed: same weights)."""
    per_ms = int(round(1.0 / dt))
    x = np.zeros((spikes_ms.shape[0], spikes_ms.shape[1] * per_ms, spikes_ms.shape[2]))
    x[:, ::per_ms] = spikes_ms
    torch.manual_seed(0)
    hidden = snn.LIF(100, 32, dt=dt, weight_mean=0.6).double()
    readout = snn.LI(32, 5, dt=dt, weight_std=20.0).double()
    x = torch.from_numpy(x)

    def loss():
        return readout_loss(readout(hidden(x)), labels, "sum_exp")

    loss().backward()
    return hidden, loss, hidden.weight.grad.clone()


def test_coarse_grid_gradient_follows_the_fine_grid_over_a_long_window():
    """At dt = 1 ms over 1,000 steps (~110 Hz) the EventProp gradient must point the same
    way as at dt = 0.1 ms and downhill for the simulated loss (with the continuous-time
    timing drive it was anti-aligned: cosine -0.5, uphill)."""
    rng = np.random.default_rng(0)
    spikes_ms = (rng.random((8, 1000, 100)) < 0.01).astype(np.float64)
    labels = torch.tensor(rng.integers(0, 5, 8))
    hidden, loss, coarse = _long_window_grad(1.0, spikes_ms, labels)
    _, _, fine = _long_window_grad(0.1, spikes_ms, labels)
    cosine = float((coarse * fine).sum() / (coarse.norm() * fine.norm()))
    assert cosine > 0.8
    direction = coarse / coarse.norm()
    with torch.no_grad():
        hidden.weight += 0.03 * direction
        plus = loss().item()
        hidden.weight -= 0.06 * direction
        minus = loss().item()
    assert (plus - minus) / 0.06 > 0.2
