"""Per-speaker accuracy and confusion matrix of an evaluation (speech datasets).

Files written into a run folder (atomically):

    speaker_report.json     {"split", "accuracy", "n_samples", "per_speaker":
                             {speaker: {"n": int, "accuracy": float}},
                             "confusion": [[int]] (rows: true class, columns: predicted)}
    confusion_matrix.png    the confusion matrix, rows normalised
    speaker_accuracy.png    bar chart of accuracy per speaker

After every training epoch, for a validation split with speakers (:func:`report_validation`):

    val_speaker_report.json          the same report of the latest epoch (plus "epoch")
    val_confusion_matrix.png         its confusion matrix
    val_speaker_accuracy_epochs.png  validation accuracy of every speaker over the epochs
                                     (from the ``val_per_speaker_accuracy`` of metrics.jsonl)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from spikeforge.atomic import atomic_path, write_text_atomic  # noqa: E402

REPORT_JSON = "speaker_report.json"
VAL_REPORT_JSON = "val_speaker_report.json"
VAL_CONFUSION_PNG = "val_confusion_matrix.png"
VAL_EPOCHS_PNG = "val_speaker_accuracy_epochs.png"
VAL_KEY = "val_per_speaker_accuracy"
"""Key of the {speaker: accuracy} dictionary in a metrics.jsonl row."""


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
    plot_confusion(report, out / "confusion_matrix.png")
    plot_speaker_bars(report, out / "speaker_accuracy.png")


def plot_confusion(report: dict[str, Any], path: Path) -> None:
    """Row-normalised confusion matrix of ``report`` as a PNG (atomic)."""
    matrix = np.asarray(report["confusion"], dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = 3 + 0.25 * len(matrix)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    epoch = f", epoch {report['epoch']}" if "epoch" in report else ""
    ax.set(xlabel="predicted class", ylabel="true class",
           title=f"{report['split']} confusion{epoch}\naccuracy {report['accuracy']:.3f}")
    if len(matrix) <= 40:  # every class labelled
        ax.set_xticks(range(len(matrix)))
        ax.set_yticks(range(len(matrix)))
        ax.tick_params(labelsize=7 if len(matrix) > 12 else 9)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    _save(fig, path)


def plot_speaker_bars(report: dict[str, Any], path: Path) -> None:
    """Bar chart of accuracy per speaker of ``report`` as a PNG (atomic)."""
    speakers = list(report["per_speaker"])
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(speakers) + 2), 3.5))
    ax.bar(speakers, [report["per_speaker"][s]["accuracy"] for s in speakers], color="C0")
    ax.axhline(report["accuracy"], color="k", lw=1, ls="--", label="all speakers")
    ax.set(xlabel="speaker", ylabel="accuracy", ylim=(0, 1),
           title=f"{report['split']} accuracy per speaker")
    ax.legend(loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def plot_speaker_epochs(rows: list[dict[str, Any]], path: Path) -> None:
    """Validation accuracy per speaker (one line each) and overall (dashed) against the
    epoch, from metrics rows carrying ``val_per_speaker_accuracy``; a PNG (atomic)."""
    rows = [r for r in rows if VAL_KEY in r]
    epochs = [r["epoch"] for r in rows]
    speakers = sorted({s for r in rows for s in r[VAL_KEY]}, key=_speaker_order)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, speaker in enumerate(speakers):
        acc = [r[VAL_KEY].get(speaker, np.nan) for r in rows]
        ax.plot(epochs, acc, marker="o", ms=3, lw=1, color=f"C{i % 10}",
                label=f"speaker {speaker}" if i < 20 else None)
    if all("val_accuracy" in r for r in rows):
        ax.plot(epochs, [r["val_accuracy"] for r in rows], "k--", lw=1.5, label="all")
    ax.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1.02),
           title="validation accuracy per speaker")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="lower right", fontsize=7, ncol=2)
    fig.tight_layout()
    _save(fig, path)


def _speaker_order(speaker: str) -> tuple[int, str]:
    return (int(speaker), speaker) if speaker.lstrip("-").isdigit() else (1 << 62, speaker)


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


def report_validation(result: Any, dataset: Any, out: Path, rows: list[dict[str, Any]],
                      epoch: int) -> dict[str, float] | None:
    """After a training epoch: for a validation set with speakers, write
    ``val_speaker_report.json`` and ``val_confusion_matrix.png`` of ``result`` (replacing the
    previous epoch's) and ``val_speaker_accuracy_epochs.png`` from the earlier metrics
    ``rows`` plus this epoch; return {speaker: accuracy} for the metrics row. For other
    datasets do nothing and return None."""
    if getattr(dataset, "speakers", None) is None:
        return None
    out = Path(out)
    report = speaker_report(result.labels, result.predictions, dataset.speakers,
                            dataset.n_classes, "validation")
    report = {"epoch": int(epoch), **report}
    per_speaker = {s: v["accuracy"] for s, v in report["per_speaker"].items()}
    write_text_atomic(out / VAL_REPORT_JSON, json.dumps(report, indent=2) + "\n")
    plot_confusion(report, out / VAL_CONFUSION_PNG)
    current = {"epoch": int(epoch), "val_accuracy": report["accuracy"], VAL_KEY: per_speaker}
    plot_speaker_epochs([*[r for r in rows if r.get("epoch", 0) < epoch], current],
                        out / VAL_EPOCHS_PNG)
    return per_speaker
