"""Learning-rate ease-in (train.lr_warmup=ease_in): per-batch values and exact resume."""

import json
import math

import numpy as np
import pytest
import torch

from spikeforge.data import DatasetSplits, SpikeDataset
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import load_config
from spikeforge.experiments.loading import run_trainer
from spikeforge.experiments.runner import train_run
from spikeforge.train.lr_schedule import EASE_IN_BATCHES, ease_in_factor, warmup_factor


def _splits(n_train=40, seed=0) -> DatasetSplits:
    """Three classes on three channel bands of 30 channels, 40 steps."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = np.arange(n) % 3
        samples = []
        for c in labels:
            steps = np.sort(rng.integers(0, 30, 25))
            samples.append((steps, 10 * c + rng.integers(0, 10, 25)))
        return SpikeDataset(samples, labels.astype(np.int64), 30, 3, 40, 1.0)

    return DatasetSplits("tiny", make(n_train), make(12), make(12))


def _config(**train):
    overrides = {"model.hidden": [12], "model.input_weight_mean": 0.3,
                 "model.readout_weight_std": 5.0, "train.batch_size": 8, "train.epochs": 3,
                 "train.lr": 0.01, "train.lr_schedule": "constant", "train.threads": 1,
                 "train.lr_warmup": "ease_in"}
    overrides.update({k.replace("data_", "data.") if k.startswith("data_") else f"train.{k}": v
                      for k, v in train.items()})
    return load_config(None, overrides)


def test_ease_in_factor_sequence():
    assert EASE_IN_BATCHES == 142
    for k in range(EASE_IN_BATCHES):
        assert ease_in_factor(k) == pytest.approx(1e-3 * 1.05**k, rel=1e-12)
        assert ease_in_factor(k) < 1.0
    assert ease_in_factor(0) == pytest.approx(1e-3)
    assert ease_in_factor(141) == pytest.approx(0.97206, abs=1e-5)  # last ramp value
    assert [ease_in_factor(k) for k in (142, 143, 10_000, 10**9)] == [1.0] * 4  # capped
    # the batch count is global: epoch e, batch b -> k = e * batches_per_epoch + b
    assert warmup_factor("ease_in", 2, 3, 50) == ease_in_factor(103)
    assert warmup_factor("none", 0, 0, 50) == 1.0
    with pytest.raises(ValueError, match="unknown lr warm-up"):
        warmup_factor("linear", 0, 0, 1)


def test_trainer_sets_eased_lr_every_batch_across_epochs():
    splits = _splits(n_train=40)
    config = _config(lr_schedule="step", epochs=6)  # step: x0.1 from epoch 2 (6 // 3)
    trainer = run_trainer(config, splits)
    seen = []
    step = trainer.optimizer.step

    def recording_step(*args, **kwargs):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        return step(*args, **kwargs)

    trainer.optimizer.step = recording_step
    rows = [trainer.train_epoch(epoch) for epoch in range(3)]
    assert len(seen) == 15  # 3 epochs x ceil(40 / 8) batches
    expected = [0.01 * (0.1 if k >= 10 else 1.0) * 1e-3 * 1.05**k for k in range(15)]
    np.testing.assert_allclose(seen, expected, rtol=1e-12)
    assert [r["lr"] for r in rows] == [seen[4], seen[9], seen[14]]  # metrics: last batch


def test_ease_in_with_appended_blends_counts_the_longer_epoch():
    splits = _splits(n_train=40)
    config = _config(data_augment=[{"name": "blend", "p": 1.0, "mode": "append"}])
    trainer = run_trainer(config, splits)
    seen = []
    step = trainer.optimizer.step
    trainer.optimizer.step = lambda *a, **k: (seen.append(
        trainer.optimizer.param_groups[0]["lr"]), step(*a, **k))[1]
    trainer.train_epoch(0)
    trainer.train_epoch(1)
    assert len(seen) == 20  # (40 + 40 blends) / 8 per epoch
    np.testing.assert_allclose(seen, [0.01e-3 * 1.05**k for k in range(20)], rtol=1e-12)


def test_kill_and_resume_mid_ramp_gives_identical_weights(tmp_path):
    splits = _splits()
    augment = [{"name": "shift", "max_shift": 3}, {"name": "blend", "p": 0.5, "mode": "append"}]
    config = _config(data_augment=augment)  # appended blends must resume exactly too
    reference = train_run(config, tmp_path / "ref", splits=splits)

    class KilledError(Exception):
        pass

    def kill_after_first(row):
        if row["epoch"] == 1:
            raise KilledError

    out = tmp_path / "killed"
    with pytest.raises(KilledError):
        train_run(config, out, on_epoch=kill_after_first, splits=splits)
    assert not (out / "results.json").exists() and (out / "checkpoint.pt").is_file()
    resumed = train_run(config, out, splits=splits)  # epochs 2-3 still inside the ramp
    assert resumed["test_accuracy"] == reference["test_accuracy"]
    a = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)["model"]
    b = torch.load(out / "model.pt", weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    n_batches = math.ceil(1.5 * len(splits.train) / 8)  # 40 originals + 20 blends
    assert [r["lr"] for r in rows] == pytest.approx(
        [0.01 * 1e-3 * 1.05 ** ((e + 1) * n_batches - 1) for e in range(3)], rel=1e-12)
    # the warm-up matters: without it the same run ends elsewhere
    plain = train_run(_config(lr_warmup="none", data_augment=augment), tmp_path / "plain",
                      splits=splits)
    c = torch.load(tmp_path / "plain" / "model.pt", weights_only=True)["model"]
    assert plain["run_dir"] != reference["run_dir"]
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_bad_warmup_is_one_line_error():
    with pytest.raises(SpikeforgeError, match="invalid config value train.lr_warmup"):
        load_config(None, {"train.lr_warmup": "linear"})
