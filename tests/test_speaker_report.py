"""Per-speaker accuracy and confusion matrix written for speech datasets (final test and
every epoch's validation)."""

import json

import numpy as np
import pytest

from spikeforge.data.registry import load_data
from spikeforge.data.synthetic_shd import synthesize_shd
from spikeforge.experiments.config import load_config
from spikeforge.experiments.runner import train_run
from spikeforge.experiments.speaker_report import (
    VAL_KEY,
    confusion_matrix,
    report_evaluation,
    report_validation,
    speaker_report,
)
from spikeforge.train.trainer import EvalResult


def test_confusion_and_per_speaker_accuracy():
    labels = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 1, 1, 1, 0, 2])
    speakers = np.array([7, 7, 7, 9, 9, 4])
    np.testing.assert_array_equal(confusion_matrix(labels, preds, 3),
                                  [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    report = speaker_report(labels, preds, speakers, 3)
    assert report["accuracy"] == 4 / 6 and report["n_samples"] == 6
    assert report["per_speaker"] == {"4": {"n": 1, "accuracy": 1.0},
                                     "7": {"n": 3, "accuracy": 2 / 3},
                                     "9": {"n": 2, "accuracy": 0.5}}


def test_report_files_only_for_speaker_datasets(tmp_path):
    class DS:
        speakers = np.array([1, 2, 2])
        n_classes = 2

    result = EvalResult(0.1, 2 / 3, np.array([0, 1, 0]), np.array([0, 1, 1]), 3.0)
    per_speaker = report_evaluation(result, DS(), tmp_path)
    assert per_speaker == {"1": 1.0, "2": 0.5}
    saved = json.loads((tmp_path / "speaker_report.json").read_text())
    assert saved["confusion"] == [[1, 0], [1, 1]]
    for name in ("confusion_matrix.png", "speaker_accuracy.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    DS.speakers = None
    other = tmp_path / "other"
    other.mkdir()
    assert report_evaluation(result, DS(), other) is None and not list(other.iterdir())


def test_report_validation_writes_latest_epoch_only(tmp_path):
    class DS:
        speakers = np.array([3, 3, 5, 5, 5, 8])
        n_classes = 2

    labels = np.array([0, 1, 0, 1, 0, 1])
    rows = []
    for epoch, preds in enumerate([np.array([0, 0, 0, 0, 0, 0]),
                                   np.array([0, 1, 0, 1, 1, 1])], start=1):
        result = EvalResult(0.1, float(np.mean(preds == labels)), preds, labels, 1.0)
        per_speaker = report_validation(result, DS(), tmp_path, rows, epoch)
        rows.append({"epoch": epoch, "val_accuracy": result.accuracy, VAL_KEY: per_speaker})
    assert rows[0][VAL_KEY] == {"3": 0.5, "5": 2 / 3, "8": 0.0}
    assert rows[1][VAL_KEY] == {"3": 1.0, "5": 2 / 3, "8": 1.0}
    saved = json.loads((tmp_path / "val_speaker_report.json").read_text())
    assert saved["epoch"] == 2 and saved["split"] == "validation"
    assert saved["confusion"] == [[2, 1], [0, 3]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "val_confusion_matrix.png", "val_speaker_accuracy_epochs.png",
        "val_speaker_report.json"]  # one file of each, replaced every epoch
    DS.speakers = None
    assert report_validation(result, DS(), tmp_path / "none", rows, 3) is None


@pytest.fixture(scope="module")
def tiny_shd(tmp_path_factory):
    return synthesize_shd(tmp_path_factory.mktemp("shd"), n_train=60, n_test=20, n_classes=3,
                          n_speakers=6, n_test_speakers=1, n_channels=40,
                          spikes_per_sample=60, duration_s=0.1)


def test_every_epoch_records_validation_accuracy_per_speaker(tiny_shd, tmp_path):
    config = load_config(None, {
        "data.name": "shd", "data.data_dir": str(tiny_shd), "data.n_channels": 40,
        "data.max_time_ms": 120, "data.val_fraction": 0.4, "model.hidden": [16],
        "model.input_weight_mean": 0.5, "model.readout_weight_std": 5.0, "train.lr": 0.05,
        "train.loss": "max", "train.epochs": 3, "train.batch_size": 8, "train.threads": 1})
    splits = load_data(config.data)
    val_speakers = {str(s) for s in np.unique(splits.val.speakers)}
    assert len(val_speakers) >= 2 and val_speakers.isdisjoint(
        str(s) for s in np.unique(splits.train.speakers))
    out = tmp_path / "run"
    train_run(config, out, splits=splits)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    counts = {str(s): int(np.sum(splits.val.speakers == s)) for s in np.unique(
        splits.val.speakers)}
    for row in rows:
        per_speaker = row[VAL_KEY]
        assert set(per_speaker) == val_speakers
        # the speakers' accuracies, weighted by their sample counts, give val_accuracy
        pooled = sum(counts[s] * a for s, a in per_speaker.items()) / len(splits.val)
        assert pooled == pytest.approx(row["val_accuracy"], abs=1e-12)
    assert rows[0][VAL_KEY] != rows[-1][VAL_KEY]  # measured per epoch (it learns here)
    saved = json.loads((out / "val_speaker_report.json").read_text())
    assert saved["epoch"] == 3 and saved["n_samples"] == len(splits.val)
    assert {s: v["accuracy"] for s, v in saved["per_speaker"].items()} == rows[-1][VAL_KEY]
    for name in ("val_confusion_matrix.png", "val_speaker_accuracy_epochs.png",
                 "speaker_report.json", "confusion_matrix.png"):
        assert (out / name).is_file(), name
    assert len(list(out.glob("*.png"))) == 6  # no per-epoch files: learning curves, raster,
    # test confusion + speaker bars, validation confusion + per-speaker epochs


def test_datasets_without_speakers_record_no_speaker_results(tmp_path):
    config = load_config(None, {"model.hidden": [8], "train.epochs": 1,
                                "train.batch_size": 64, "train.threads": 1})
    splits = load_data(config.data)
    assert splits.val.speakers is None
    out = tmp_path / "run"
    train_run(config, out, splits=splits)
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert VAL_KEY not in row and not list(out.glob("val_*"))
