"""Per-speaker accuracy and confusion matrix written for speech datasets."""

import json

import numpy as np

from spikeforge.experiments.speaker_report import (
    confusion_matrix,
    report_evaluation,
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
