"""Per-speaker accuracy and confusion matrix of an evaluation (speech datasets).

Files written into a run folder (atomically):

    speaker_report.json     {"split", "accuracy", "n_samples", "per_speaker":
                             {speaker: {"n": int, "accuracy": float}},
                             "confusion": [[int]] (rows: true class, columns: predicted)}
    confusion_matrix.png    the confusion matrix, rows normalised
    speaker_accuracy.png    bar chart of accuracy per speaker
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spikeforge.atomic import atomic_path, write_text_atomic  # noqa: E402

REPORT_JSON = "speaker_report.json"


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts int64 [n_classes, n_classes]: entry (i, j) = samples of class i predicted j."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
    return matrix


def speaker_report(
    labels: np.ndarray, predictions: np.ndarray, speakers: np.ndarray, n_classes: int,
    split: str = "test",
) -> dict[str, Any]:  # fmt: skip
    """Report dictionary (see module docstring); every speaker in ``speakers`` is listed."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    speakers = np.asarray(speakers)
    correct = labels == predictions
    per_speaker = {
        str(int(s)): {"n": int(np.sum(speakers == s)),
                      "accuracy": float(np.mean(correct[speakers == s]))}
        for s in np.unique(speakers)
    }
    return {
        "split": split,
        "accuracy": float(np.mean(correct)) if correct.size else 0.0,
        "n_samples": int(labels.size),
        "per_speaker": per_speaker,
        "confusion": confusion_matrix(labels, predictions, n_classes).tolist(),
    }


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_speaker_report(report: dict[str, Any], out: Path) -> None:
    """Write the JSON and both PNGs of ``report`` into folder ``out``."""
    out = Path(out)
    write_text_atomic(out / REPORT_JSON, json.dumps(report, indent=2) + "\n")
    matrix = np.asarray(report["confusion"], dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = 3 + 0.25 * len(matrix)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    ax.set(xlabel="predicted class", ylabel="true class",
           title=f"{report['split']} confusion (accuracy {report['accuracy']:.3f})")
    fig.tight_layout()
    _save(fig, out / "confusion_matrix.png")
    speakers = list(report["per_speaker"])
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(speakers) + 2), 3.5))
    ax.bar(speakers, [report["per_speaker"][s]["accuracy"] for s in speakers], color="C0")
    ax.axhline(report["accuracy"], color="k", lw=1, ls="--", label="all speakers")
    ax.set(xlabel="speaker", ylabel="accuracy", ylim=(0, 1),
           title=f"{report['split']} accuracy per speaker")
    ax.legend(loc="lower right")
    fig.tight_layout()
    _save(fig, out / "speaker_accuracy.png")


def report_evaluation(result: Any, dataset: Any, out: Path, split: str = "test"
                      ) -> dict[str, float] | None:
    """For a dataset with speakers: write the report of ``result`` (an ``EvalResult``) into
    ``out`` and return {speaker: accuracy}; for other datasets do nothing, return None."""
    if getattr(dataset, "speakers", None) is None:
        return None
    report = speaker_report(result.labels, result.predictions, dataset.speakers,
                            dataset.n_classes, split)
    write_speaker_report(report, out)
    return {s: v["accuracy"] for s, v in report["per_speaker"].items()}
