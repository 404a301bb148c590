"""Deeper networks learn with the defaults: every hidden layer after the first is calibrated
to train.calibrate_hz before epoch 1, per-layer rates reach metrics.jsonl and the epoch
line, and a layer that is silent in training warns once, naming its position."""

import io
import json
import warnings

import pytest
import torch
from rich.console import Console

from export_helpers import cli
from spikeforge.data import iterate_batches
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import load_config
from spikeforge.experiments.loading import load_splits, run_network, run_trainer
from spikeforge.experiments.runner import train_run
from spikeforge.nn.init import calibrate_

SMALL = {"train.epochs": 2, "train.batch_size": 128, "train.threads": 1}


def _train(tmp_path, **overrides):
    config = load_config(None, {**SMALL, **overrides})
    text = io.StringIO()
    results = train_run(config, tmp_path / "run", console=Console(file=text, width=80))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    return results, rows, text.getvalue()


def test_per_layer_rates_in_metrics_and_epoch_line(tmp_path):
    results, rows, text = _train(tmp_path, **{"model.hidden": [32, 24]})
    assert [row["epoch"] for row in rows] == [1, 2]
    for row in rows:
        rates = row["layer_rates_hz"]
        assert len(rates) == 2 and all(0 < rate < 1000 for rate in rates)
        # the existing field is the neuron-weighted mean of the per-layer rates
        assert row["hidden_rate_hz"] == pytest.approx((32 * rates[0] + 24 * rates[1]) / 56)
        assert "readout_rate_hz" not in row  # LI readout
        assert f"layers {rates[0]:.1f}/{rates[1]:.1f} Hz" in text
    assert "calibrated layers.1: " in text and "layers.0" not in text.split("epoch")[0]
    assert 0 < results["hidden_rate_hz"] < 1000


def test_spiking_readout_rate_is_its_own_field(tmp_path):
    _, rows, text = _train(tmp_path, **{"model.hidden": [16], "train.loss": "first_spike",
                                        "train.epochs": 1})
    (row,) = rows
    assert len(row["layer_rates_hz"]) == 1
    assert 0 <= row["readout_rate_hz"] < 1000
    assert f"readout {row['readout_rate_hz']:.1f} Hz" in text


def test_silent_layer_warns_once_naming_its_position(tmp_path):
    # the second hidden layer is driven hard negative and not calibrated: only it is silent
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, rows, _ = _train(tmp_path, **{"model.hidden": [16, 16], "train.calibrate": "none",
                                         "model.hidden_weight_mean": -50.0})
    silent = [str(w.message) for w in caught if "emitted no spike" in str(w.message)]
    assert len(silent) == 1, silent  # one warning per layer, not per batch or epoch
    assert silent[0].startswith(
        "spikeforge layer layers.1 (hidden layer 2 of 2, LIF(16 -> 16)) emitted no spike")
    assert all(row["layer_rates_hz"][1] == 0 and row["layer_rates_hz"][0] > 0 for row in rows)


def test_huge_threshold_from_the_cli_warns_for_each_layer(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = cli("train", "--set", "model.hidden=[16,16]", "--set",
                             "model.threshold=1e6", "--set", "train.epochs=2", "--set",
                             "train.batch_size=128", "--set", "train.threads=1", "--out",
                             str(tmp_path / "run"), "--json")
    assert code == 0
    silent = sorted(str(w.message).split(" emitted")[0] for w in caught
                    if "emitted no spike" in str(w.message))
    assert silent == ["spikeforge layer layers.0 (hidden layer 1 of 2, LIF(64 -> 16))",
                      "spikeforge layer layers.1 (hidden layer 2 of 2, LIF(16 -> 16))"]
    assert "target not reached" in err  # nothing to scale up: the input of layers.1 is silent
    assert json.loads(out.splitlines()[-1])["hidden_rate_hz"] == 0.0


def _calibrated(hidden, **overrides):
    config = load_config(None, {"model.hidden": hidden, **overrides})
    splits = load_splits(config)
    trainer = run_trainer(config, splits, run_network(config, splits))
    before = [layer.weight.detach().clone() for layer in trainer.network.layers]
    report = trainer.calibrate()
    return trainer, before, report


def _rates_on_first_batch(trainer) -> list[float]:
    events, _ = next(iterate_batches(trainer.splits.train, trainer.settings.batch_size, True,
                                     trainer.settings.seed * 100_003))
    with torch.no_grad():
        trainer.network.eval()
        trainer.network(events)
    return [r.events.n_events / (r.events.n_batch * r.events.n_steps * r.events.n_units)
            * 1000.0 / trainer.dt for r in trainer.network.spike_records()]


def test_calibrated_deep_layers_fire_near_the_target_and_the_first_is_kept():
    trainer, before, report = _calibrated([128, 128, 128])
    assert [layer.name for layer in report] == ["layers.1", "layers.2"]
    assert all(layer.mode == "scale" and layer.reached for layer in report)
    assert report[1].rate_before_hz < 2.0  # silent-ish before: why deep defaults failed
    target = trainer.settings.calibrate_hz
    rates = _rates_on_first_batch(trainer)
    assert rates[0] > 50  # the first layer keeps model.input_weight_mean (about 100 Hz)
    assert all(target / 1.5 < rate < target * 1.5 for rate in rates[1:]), rates
    layers = trainer.network.layers
    assert torch.equal(layers[0].weight, before[0]) and torch.equal(layers[3].weight, before[3])
    assert not torch.equal(layers[1].weight, before[1])
    # deterministic for the seed: a second network calibrates to the same weights
    again, _, _ = _calibrated([128, 128, 128])
    for a, b in zip(trainer.network.parameters(), again.network.parameters(), strict=True):
        assert torch.equal(a, b)


def test_single_layer_default_and_none_leave_the_weights_alone():
    for hidden, mode in (([128], "deep"), ([32, 32], "none")):
        trainer, before, report = _calibrated(hidden, **{"train.calibrate": mode})
        assert report == []
        for layer, weight in zip(trainer.network.layers, before, strict=True):
            assert torch.equal(layer.weight, weight)


def test_calibrate_all_and_other_targets():
    trainer, _, report = _calibrated([32, 32], **{"train.calibrate": "all",
                                                  "train.calibrate_hz": 50.0})
    assert [layer.name for layer in report] == ["layers.0", "layers.1"]
    assert all(45 <= rate <= 55 for rate in _rates_on_first_batch(trainer))


def test_calibrate_bad_settings_are_config_errors():
    for key, value, fragment in (("train.calibrate", "first", "train.calibrate"),
                                 ("train.calibrate_hz", 0, "train.calibrate_hz")):
        with pytest.raises(SpikeforgeError, match=fragment):
            load_config(None, {key: value})


def test_calibrate_layers_argument_and_bptt_layers():
    import spikeforge.nn as snn

    torch.manual_seed(0)
    x = (torch.rand(8, 60, 20) < 0.1).float()
    model = torch.nn.Sequential(snn.LIF(20, 32, weight_mean=0.5), snn.LIF(32, 16),
                                snn.LI(16, 3))
    first = model[0].weight.detach().clone()
    (layer,) = calibrate_(model, x, target_hz=30.0, mode="scale", layers=["1"])
    assert layer.name == "1" and layer.reached and torch.equal(model[0].weight, first)
    with pytest.raises(SpikeforgeError, match="'2' is not a spiking layer"):
        calibrate_(model, x, layers=["2"])
    bptt = torch.nn.Sequential(snn.LIF(20, 32, method="bptt"), snn.LI(32, 3, method="bptt"))
    (layer,) = calibrate_(bptt, x, target_hz=30.0)
    assert layer.reached and abs(layer.rate_after_hz - 30.0) <= 3.0


@pytest.mark.slow
@pytest.mark.parametrize(("hidden", "minimum"), [([128, 128], 0.9), ([128, 128, 128], 0.85)])
def test_deep_defaults_learn_digits(tmp_path, hidden, minimum):
    config = load_config(None, {"model.hidden": hidden, "train.threads": 1})
    results = train_run(config, tmp_path / "run", console=Console(file=io.StringIO()))
    assert results["test_accuracy"] >= minimum
