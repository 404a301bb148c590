"""The one run loader: a delay-line SHD recipe run is rebuilt exactly as it was trained
(every data option applied), and export / energy / evaluate read it through the loader.
One dt per network: data binned at another step is refused where a network meets it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from export_helpers import cli
from spikeforge.data import DatasetSplits, SpikeDataset
from spikeforge.data.registry import load_data
from spikeforge.data.synthetic_shd import synthesize_shd
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import load_config
from spikeforge.experiments.loading import (
    load_run,
    load_splits,
    open_run,
    run_network,
    run_trainer,
)
from spikeforge.train.checkpoint import load_checkpoint

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "shd_eventprop.yaml"
HIDDEN, WINDOW_MS, CLASSES, COPIES, SPACING_MS, CHANNELS = 8, 200, 3, 10, 30.0, 700
SETTINGS = [f"model.hidden=[{HIDDEN}]", "train.epochs=1", "train.batch_size=8",
            f"data.max_time_ms={WINDOW_MS}", "train.lr_warmup=none", "train.threads=1"]


@pytest.fixture(scope="module")
def shd_run(tmp_path_factory):
    """The SHD recipe (recurrent LIF, shift + blend, delay lines x10) trained for one
    epoch on a small SHD-format set written here; returns (run folder, data folder)."""
    root = tmp_path_factory.mktemp("shd_loading")
    data = synthesize_shd(root / "data", n_train=30, n_test=9, n_classes=CLASSES,
                          n_speakers=5, n_test_speakers=2, spikes_per_sample=150,
                          duration_s=0.15)
    run = root / "run"
    args = ["train", "--config", str(RECIPE), "--data-dir", str(data), "--out", str(run)]
    for item in SETTINGS:
        args += ["--set", item]
    cli(*args, "--json")
    return run, data


def _expanded_events(dataset: SpikeDataset, n: int) -> int:
    """Events of the first ``n`` samples after delay-line expansion, counted from the
    stored (unexpanded) samples: copy k is shifted by k * spacing and cut at the window."""
    shifts = np.round(np.arange(COPIES) * SPACING_MS / dataset.dt).astype(int)
    return int(sum(np.count_nonzero(dataset.samples[i][0][None, :] + shifts[:, None]
                                    < dataset.n_steps) for i in range(n)))


def test_loader_rebuilds_data_and_weights_as_trained(shd_run):
    run, data = shd_run
    loaded = open_run(run)
    assert loaded.config.data.data_dir == str(data.resolve())
    assert loaded.config.data.delay_lines.copies == COPIES
    for split in (loaded.splits.train, loaded.splits.val, loaded.splits.test):
        assert split.n_inputs == CHANNELS * COPIES and split.n_channels == CHANNELS
        assert split.n_steps == WINDOW_MS and split.dt == 1.0 and split.n_classes == CLASSES
    # the same splits as training reads (registry.load_data on the data section)
    trained = load_data(loaded.config.data)
    assert len(loaded.splits.train) + len(loaded.splits.val) == 30
    assert len(loaded.splits.test) == len(trained.test) == 9
    for mine, theirs in zip(loaded.splits.test.samples, trained.test.samples, strict=True):
        np.testing.assert_array_equal(mine[0], theirs[0])
        np.testing.assert_array_equal(mine[1], theirs[1])
    # the network: spec from the config sized by the data, weights from model.pt
    spec = loaded.network.spec
    assert spec.n_inputs == CHANNELS * COPIES and spec.dt == 1.0
    assert [layer.size for layer in spec.layers] == [HIDDEN, CLASSES]
    assert spec.layers[0].recurrent and not loaded.network.training
    state = load_checkpoint(run / "model.pt")["model"]
    for name, value in loaded.network.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0)
    assert loaded.model().readout == "sum_exp" and loaded.model(False).splits is None


def test_evaluate_through_the_loader_matches_training(shd_run):
    run, _ = shd_run
    results = json.loads((run / "results.json").read_text())
    _, out, _ = cli("evaluate", str(run), "--json")
    again = json.loads(out.strip().splitlines()[-1])
    assert again["test_accuracy"] == results["test_accuracy"]
    assert again["test_loss"] == pytest.approx(results["test_loss"], rel=1e-6)


def test_export_nir_of_delay_line_run(shd_run, tmp_path):
    nir = pytest.importorskip("nir")
    run, _ = shd_run
    path = tmp_path / "shd.nir"
    _, out, _ = cli("export", str(run), "--to", "nir", "--out", str(path), "--check",
                    "--samples", "4", "--json")
    result = json.loads(out.strip().splitlines()[-1])
    graph = nir.read(str(path))
    assert graph.nodes["input"].input_type["input"].tolist() == [CHANNELS * COPIES]
    assert np.asarray(graph.nodes["fc0"].weight).shape == (HIDDEN, CHANNELS * COPIES)
    assert np.asarray(graph.nodes["rec0"].weight).shape == (HIDDEN, HIDDEN)
    assert np.asarray(graph.nodes["fc1"].weight).shape == (CLASSES, HIDDEN)
    np.testing.assert_allclose(np.asarray(graph.nodes["fc0"].weight),
                               load_run(run).network.layers[0].weight.detach().numpy())
    # the spikeforge re-import only: snnTorch's NIR import is not run on recurrent graphs
    assert [row["target"] for row in result["agreement"]] == ["nir (spikeforge re-import)"]
    reimport = result["agreement"][0]
    assert reimport["n_samples"] == 4 and reimport["class_agreement"] == 1.0
    assert reimport["max_abs_readout_difference"] < 1e-4


def test_default_export_location_is_inside_the_run(shd_run):
    run, _ = shd_run
    _, out, _ = cli("export", str(run), "--to", "nir", "--json")
    assert json.loads(out.strip().splitlines()[-1])["files"] == [str(run / "model.nir")]
    assert (run / "model.nir").stat().st_size > 0


def test_energy_of_delay_line_run_counts_the_loaded_network(shd_run):
    run, _ = shd_run
    _, out, _ = cli("energy", str(run), "--samples", "4", "--repeats", "1", "--json")
    report = json.loads(out.strip().splitlines()[-1])
    counts = report["counts"]
    model = load_run(run)
    n_in = model.network.spec.n_inputs
    assert n_in == CHANNELS * COPIES
    assert (counts["n_samples"], counts["n_steps"], counts["dt_ms"]) == (4, WINDOW_MS, 1.0)
    hidden, readout = counts["layers"]
    assert (hidden["n_in"], hidden["size"], hidden["recurrent"]) == (n_in, HIDDEN, True)
    assert (readout["n_in"], readout["size"], readout["recurrent"]) == (HIDDEN, CLASSES, False)
    assert counts["macs_per_inference"] == n_in * HIDDEN + HIDDEN * HIDDEN + HIDDEN * CLASSES
    assert counts["macs_per_step"] == counts["macs_per_inference"] * WINDOW_MS
    assert counts["neuron_updates"] == (HIDDEN + CLASSES) * WINDOW_MS
    expected = _expanded_events(model.splits.test, 4) / 4
    assert expected > 0 and counts["input_events"] == pytest.approx(expected)
    assert readout["input_events"] == pytest.approx(hidden["spikes"])
    saved = json.loads((run / "energy.json").read_text())
    assert saved["counts"] == counts and saved["run_dir"] == str(run)


def test_every_shd_data_option_reaches_the_network(shd_run):
    """channel_stride and max_time_ms (not in the run) change the data and the spec."""
    _, data = shd_run
    config = load_config(RECIPE, {"data.data_dir": str(data), "data.channel_stride": 7,
                                  "data.max_time_ms": 120.0, "model.hidden": [4]})
    splits = load_splits(config)
    assert splits.test.n_channels == 100 and splits.test.n_inputs == 100 * COPIES
    assert splits.test.n_steps == 120
    assert run_network(config, splits).spec.n_inputs == 100 * COPIES


def test_missing_runs_are_one_line_errors(tmp_path):
    with pytest.raises(SpikeforgeError, match="not a spikeforge run folder"):
        load_run(tmp_path)
    code, _, err = cli("energy", str(tmp_path / "nothing"), check=False)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


# -- one dt per network ------------------------------------------------------------------

def _splits(dt: float, n_steps: int = 30) -> DatasetSplits:
    rng = np.random.default_rng(0)

    def make(n):
        samples = [(np.sort(rng.integers(0, n_steps, 20)), rng.integers(0, 12, 20))
                   for _ in range(n)]
        return SpikeDataset(samples, np.arange(n) % 3, 12, 3, n_steps, dt)

    return DatasetSplits("tiny", make(12), make(6), make(6))


def _config(dt: float = 1.0):
    return load_config(None, {"data.dt": dt, "model.hidden": [6], "train.epochs": 1,
                              "train.batch_size": 6, "train.threads": 1})


def test_network_meeting_data_of_another_dt_is_refused(tmp_path):
    config = _config(dt=1.0)
    coarse = _splits(dt=2.0)
    message = r"binned at dt=2 ms but the network steps at dt=1 ms; .*data\.dt=1"
    with pytest.raises(SpikeforgeError, match=message):
        run_network(config, coarse)
    network = run_network(config, _splits(dt=1.0))
    with pytest.raises(SpikeforgeError, match=message):
        run_trainer(config, coarse, network)
    trainer = run_trainer(config, _splits(dt=1.0), network)
    assert np.isfinite(trainer.evaluate(trainer.splits.test).loss)
    with pytest.raises(SpikeforgeError, match=message):
        trainer.evaluate(coarse.test)
    trainer.splits = coarse
    with pytest.raises(SpikeforgeError, match=message):
        trainer.train_epoch(0)
    from spikeforge.experiments.runner import train_run

    with pytest.raises(SpikeforgeError, match=message):
        train_run(config, tmp_path / "run", splits=coarse)
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_trainer_reads_dt_from_the_network_spec():
    config = _config(dt=0.5)
    splits = _splits(dt=0.5, n_steps=40)
    trainer = run_trainer(config, splits)
    assert trainer.dt == 0.5 == trainer.network.spec.dt
    result = trainer.evaluate(splits.test)
    records = trainer.network.spike_records()[:1]
    spikes = sum(r.events.n_events for r in records)
    # rate over 6 samples x 6 neurons x 40 steps of 0.5 ms (the spec's dt, not 1 ms)
    assert result.hidden_rate_hz == pytest.approx(spikes / (6 * 6 * 40 * 0.5 / 1000.0))
