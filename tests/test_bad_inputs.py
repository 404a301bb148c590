"""Bad input ends in one line ``error: ...``, exit code 2 and nothing half-written.

The README's Reliability section counts these cases."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from export_helpers import cli, small_model, untrained_digits_run
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import load_config
from spikeforge.export import to_nir, write_nir
from spikeforge.export.nir_io import from_nir


def _tree(root: Path) -> dict[str, tuple[int, float]]:
    """Every file below ``root`` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _fails_cleanly(root: Path, *args: str) -> str:
    """Run the CLI in-process; assert exit 2, one ``error:`` line, nothing written under
    ``root``; return the message."""
    before = _tree(root)
    code, _, err = cli(*args, check=False)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert _tree(root) == before, "something was written"
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return untrained_digits_run(tmp_path_factory.mktemp("run"), hidden=8)


# -- command-line options ---------------------------------------------------------------
def test_negative_seed(tmp_path):
    message = _fails_cleanly(tmp_path, "train", "--seed", "-1", "--out", str(tmp_path / "r"))
    assert "--seed must be in 0 .. 4294967295 (got -1)" in message


def test_negative_seed_in_config_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("seed: -3\n")
    message = _fails_cleanly(tmp_path, "train", "--config", str(config), "--out",
                             str(tmp_path / "r"))
    assert "invalid config value seed" in message


def test_energy_zero_threads(tmp_path, run_dir):
    message = _fails_cleanly(run_dir, "energy", str(run_dir), "--threads", "0")
    assert message == "error: --threads must be >= 1 (got 0)"


def test_export_check_zero_samples(run_dir):
    message = _fails_cleanly(run_dir, "export", str(run_dir), "--to", "nir", "--check",
                             "--samples", "0")
    assert message == "error: --samples must be >= 1 (got 0)"


def test_export_model_file_without_out(tmp_path, run_dir):
    model = tmp_path / "m.pt"
    model.write_bytes((run_dir / "model.pt").read_bytes())
    message = _fails_cleanly(tmp_path, "export", str(model), "--to", "nir")
    assert "is a model file, not a run folder: pass --out" in message


def test_import_nir_into_missing_folder(tmp_path):
    graph = tmp_path / "g.nir"
    write_nir(small_model(), graph)
    message = _fails_cleanly(tmp_path, "import-nir", str(graph), "--out",
                             str(tmp_path / "missing_dir" / "m.pt"))
    assert "folder" in message and "missing_dir does not exist" in message


# -- NIR graphs -------------------------------------------------------------------------
def _graph_with(change) -> object:
    graph = to_nir(small_model(recurrent=True))
    change(graph.nodes)
    return graph


@pytest.mark.parametrize("node, field, message", [
    ("lif0", "tau_mem", "tau_mem has 19 values but the layer has 20 neurons"),
    ("lif1", "v_threshold", "v_threshold has 19 values but the layer has 15 neurons"),
    ("out", "w_in", "w_in has 19 values but the layer has 4 neurons"),
])  # fmt: skip
def test_nir_parameter_vector_of_wrong_length(node, field, message):
    def change(nodes):
        setattr(nodes[node], field, np.ones(19))

    with pytest.raises(SpikeforgeError, match=message):
        from_nir(_graph_with(change))


def test_nir_recurrent_weight_of_wrong_shape():
    def change(nodes):
        nodes["rec0"].weight = np.zeros((20, 19))

    with pytest.raises(SpikeforgeError, match=r"rec0.*shape \[20, 19\].*needs \[20, 20\]"):
        from_nir(_graph_with(change))


def test_nir_nan_tau_is_named_as_nan_not_as_non_uniform(tmp_path):
    def change(nodes):
        nodes["lif0"].tau_syn = np.full(20, np.nan)

    with pytest.raises(SpikeforgeError, match="'lif0': tau_syn contains NaN") as info:
        from_nir(_graph_with(change))
    assert "differs" not in str(info.value)
    import nir

    path = tmp_path / "nan.nir"
    nir.write(path, _graph_with(change))
    message = _fails_cleanly(tmp_path, "import-nir", str(path), "--out", str(tmp_path / "m.pt"))
    assert "tau_syn contains NaN" in message


# -- config values ----------------------------------------------------------------------
NOT_FINITE = "NaN and infinity are not allowed; give a finite number"


@pytest.mark.parametrize("line, message", [
    ("train:\n  lr: .nan\n", "train.lr: Input should be greater than 0"),  # pydantic
    ("train:\n  lr: .inf\n", f"train.lr: {NOT_FINITE}"),
    ("model:\n  input_weight_mean: .nan\n", f"model.input_weight_mean: {NOT_FINITE}"),
    ("model:\n  readout_weight_std: .inf\n", f"model.readout_weight_std: {NOT_FINITE}"),
    ("model:\n  tau_spread: -.inf\n", f"model.tau_spread: {NOT_FINITE}"),
])  # fmt: skip
def test_nan_or_inf_config_value(tmp_path, line, message):
    config = tmp_path / "c.yaml"
    config.write_text(line)
    error = _fails_cleanly(tmp_path, "train", "--config", str(config), "--out",
                           str(tmp_path / "r"))
    assert error == f"error: invalid config value {message}"


def test_time_grid_of_millions_of_steps(tmp_path):
    message = _fails_cleanly(tmp_path, "train", "--data", "shd", "--set", "data.dt=0.001",
                             "--out", str(tmp_path / "r"))
    assert "gives 1400000 time steps per sample (at most 100000)" in message
    message = _fails_cleanly(tmp_path, "train", "--set", "data.max_time_ms=5e6", "--out",
                             str(tmp_path / "r"))
    assert "5e+06 / 1 gives 5000000 time steps" in message


# -- datasets ---------------------------------------------------------------------------
def _shd(folder: Path, n_train: int, **kwargs) -> list[str]:
    from spikeforge.data.synthetic_shd import synthesize_shd

    synthesize_shd(folder, n_train=n_train, n_test=4, n_classes=2, n_speakers=2,
                   n_test_speakers=1, n_channels=10, spikes_per_sample=20, duration_s=0.1,
                   **kwargs)
    return ["--data", "shd", "--data-dir", str(folder), "--set", "data.n_channels=10",
            "--set", "data.download=false", "--set", "data.val_split=random",
            "--set", "model.hidden=[4]", "--epochs", "1"]


def test_empty_validation_split(tmp_path):
    args = _shd(tmp_path / "shd", n_train=8)
    message = _fails_cleanly(tmp_path, "train", *args, "--set", "data.val_fraction=0.01",
                             "--out", str(tmp_path / "r"))
    assert message == ("error: dataset shd: the validation split is empty; raise "
                       "data.val_fraction or add training samples")


def test_empty_training_split(tmp_path):
    args = _shd(tmp_path / "shd", n_train=8)
    _write_empty_train(tmp_path / "shd" / "shd_train.h5")
    message = _fails_cleanly(tmp_path, "train", *args, "--out", str(tmp_path / "r"))
    assert message == "error: dataset shd: the training split is empty; add training samples"


def _write_empty_train(path: Path) -> None:
    with h5py.File(path, "w") as handle:
        handle.create_dataset("spikes/times", (0,), dtype=h5py.vlen_dtype(np.float32))
        handle.create_dataset("spikes/units", (0,), dtype=h5py.vlen_dtype(np.uint16))
        handle.create_dataset("labels", data=np.zeros(0, np.int64))
        handle.create_dataset("extra/keys", data=np.array([b"a", b"b"]))


def test_speaker_ids_stored_as_a_group(tmp_path):
    args = _shd(tmp_path / "shd", n_train=8)
    with h5py.File(tmp_path / "shd" / "shd_train.h5", "r+") as handle:
        del handle["extra/speaker"]
        handle.create_group("extra/speaker").create_dataset("ids", data=np.zeros(8, int))
    message = _fails_cleanly(tmp_path, "train", *args, "--out", str(tmp_path / "r"))
    assert "'extra/speaker' is an HDF5 group, not a dataset" in message


# -- training that turns non-finite -----------------------------------------------------
def test_nan_during_training_stops_naming_epoch_and_keeps_last_good_checkpoint(tmp_path,
                                                                                monkeypatch):
    from spikeforge.experiments import run_folder as rf
    from spikeforge.experiments.runner import train_run
    from spikeforge.train.trainer import Trainer

    original = Trainer.train_epoch

    def poisoned(self, epoch, progress=None):
        row = original(self, epoch, progress)
        if epoch == 1:  # the second epoch breaks one weight
            with torch.no_grad():
                next(self.network.parameters()).view(-1)[3] = math.nan
        return row

    monkeypatch.setattr(Trainer, "train_epoch", poisoned)
    config = load_config(None, {"train.epochs": 3, "model.hidden": [8]})
    out = tmp_path / "run"
    with pytest.raises(SpikeforgeError) as info:
        train_run(config, out)
    message = str(info.value)
    assert message.startswith("epoch 2: ")
    assert "not finite" in message and "checkpoint of epoch 1 is kept" in message
    assert "\n" not in message
    rows = rf.read_metrics(out)
    assert [r["epoch"] for r in rows] == [1]
    state = torch.load(out / rf.CHECKPOINT, weights_only=False)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (out / rf.RESULTS).exists()
