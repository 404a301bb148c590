"""calibrate_: silent default layers fire near the target rate afterwards and then train."""

import math

import numpy as np
import pytest
import torch

import spikeforge.nn as snn
from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events
from spikeforge.model import LayerSpec, LIFParams, NetworkSpec
from spikeforge.nn.init import calibrate_

N_IN, N_STEPS, N_BATCH = 700, 200, 16


def _shd_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """SHD-density input: Bernoulli p = 0.015 per 1 ms step, [16, 200, 700]; labels."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(N_BATCH, N_STEPS, N_IN, generator=g) < 0.015).float()
    return x, torch.randint(0, 20, (N_BATCH,), generator=g)


def _rate_hz(layer: snn.LIF) -> float:
    events = layer.last_record.events
    return events.n_events / (events.n_batch * events.n_steps * events.n_units * 1e-3)


def _losses(model, hidden, x, y, n_steps: int) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(n_steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x).mean(dim=1), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_default_layer_is_silent_then_calibrated_and_trains():
    torch.manual_seed(0)
    x, y = _shd_batch()
    hidden, readout = snn.LIF(N_IN, 256, recurrent=True), snn.LI(256, 20)
    model = torch.nn.Sequential(hidden, readout)
    with torch.no_grad():
        model(x)
    assert hidden.last_record.events.n_events == 0  # the default init is silent here

    report = calibrate_(model, x, target_hz=10.0)

    assert [r.name for r in report] == ["0"]  # the LI readout is left alone
    (layer,) = report
    assert layer.rate_before_hz == 0.0 and layer.reached
    assert layer.adjustment > 0 and layer.forward_passes <= 40
    assert abs(layer.rate_after_hz - 10.0) <= 1.0
    with torch.no_grad():
        model(x)
    assert _rate_hz(hidden) == pytest.approx(layer.rate_after_hz)
    assert hidden.weight.grad is None and model.training
    losses = _losses(model, hidden, x, y, 5)
    assert losses[0] < math.log(20) - 0.001  # the readout sees spikes
    assert losses[-1] < losses[0] - 0.05
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))


def test_spiking_network_layers_in_forward_order():
    spec = NetworkSpec(n_inputs=40, layers=(
        LayerSpec(30, LIFParams(20.0, 5.0)), LayerSpec(25, LIFParams(10.0, 3.0)),
        LayerSpec(5, LIFParams(20.0, 5.0, spiking=False))), dt=1.0)
    torch.manual_seed(1)
    network = snn.SpikingNetwork(spec)
    rng = np.random.default_rng(1)
    events = Events.from_dense((rng.random((8, 150, 40)) < 0.05).astype(np.float32))

    report = calibrate_(network, events, target_hz=20.0, tol=0.05)

    assert [r.name for r in report] == ["layers.0", "layers.1"]
    assert all(r.reached and abs(r.rate_after_hz - 20.0) <= 1.0 for r in report)
    with torch.no_grad():
        network(events)
    rates = [r.events.n_events / (8 * 150 * r.events.n_units * 1e-3)
             for r in network.spike_records()]
    np.testing.assert_allclose(rates, [r.rate_after_hz for r in report])


def test_too_active_layer_is_shifted_down():
    torch.manual_seed(2)
    x, _ = _shd_batch(2)
    hidden = snn.LIF(N_IN, 64, weight_mean=1.0)
    model = torch.nn.Sequential(hidden, snn.LI(64, 4))
    (layer,) = calibrate_(model, x[:4], target_hz=15.0)
    assert layer.rate_before_hz > 100.0
    assert layer.adjustment < 0 and layer.reached
    assert abs(layer.rate_after_hz - 15.0) <= 1.5


def test_scale_mode_keeps_the_sign_pattern():
    torch.manual_seed(3)
    x, _ = _shd_batch(3)
    hidden = snn.LIF(N_IN, 64)
    before = hidden.weight.detach().clone()
    (layer,) = calibrate_(torch.nn.Sequential(hidden, snn.LI(64, 4)), x[:4], target_hz=5.0,
                          mode="scale")
    assert layer.reached and layer.adjustment > 1.0
    torch.testing.assert_close(hidden.weight.detach(), before * layer.adjustment)


def test_unreachable_target_reports_not_reached():
    x = torch.zeros(2, 30, 10)  # no input: no weight makes the layer fire
    hidden = snn.LIF(10, 8)
    (layer,) = calibrate_(torch.nn.Sequential(hidden, snn.LI(8, 2)), x, max_passes=12)
    assert not layer.reached and layer.rate_after_hz == 0.0 and layer.forward_passes == 13


def test_bad_arguments_are_sentences():
    x, _ = _shd_batch()
    model = torch.nn.Sequential(snn.LIF(N_IN, 8), snn.LI(8, 2))
    with pytest.raises(SpikeforgeError, match="unknown mode 'gain'"):
        calibrate_(model, x, mode="gain")
    with pytest.raises(SpikeforgeError, match="target_hz must be a positive rate"):
        calibrate_(model, x, target_hz=0.0)
    with pytest.raises(SpikeforgeError, match="no spiking spikeforge layer"):
        calibrate_(torch.nn.Sequential(snn.LI(N_IN, 3)), x)
    zero = snn.LIF(N_IN, 8, weight_std=0.0)
    with pytest.raises(SpikeforgeError, match="all-zero input weights.*mode='shift'"):
        calibrate_(torch.nn.Sequential(zero, snn.LI(8, 2)), x, mode="scale")
