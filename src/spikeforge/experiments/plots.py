"""PNG plots of a run: learning curves and spike rasters (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from spikeforge.atomic import atomic_path  # noqa: E402
from spikeforge.data.base import SpikeDataset  # noqa: E402
from spikeforge.experiments.plot_axes import integer_epoch_axis  # noqa: E402


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_learning_curves(metrics: list[dict[str, Any]], path: Path) -> None:
    """Loss and accuracy (train, validation) against epoch."""
    epochs = [m["epoch"] for m in metrics]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    line = {"marker": "o", "ms": 3}
    ax_loss.plot(epochs, [m["train_loss"] for m in metrics], label="train", **line)
    ax_loss.plot(epochs, [m["val_loss"] for m in metrics], label="validation", **line)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_acc.plot(epochs, [m["train_accuracy"] for m in metrics], label="train", **line)
    ax_acc.plot(epochs, [m["val_accuracy"] for m in metrics], label="validation", **line)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        integer_epoch_axis(ax, epochs)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


@torch.no_grad()
def plot_raster(network, dataset: SpikeDataset, path: Path, index: int = 0) -> None:
    """Input and hidden spike rasters and readout traces for one test sample."""
    events, labels = dataset.collate([dataset[index]])
    output = network(events).numpy()[0]
    records = [("input", events)] + [
        (f"hidden {i + 1}", r.events) for i, r in enumerate(network.spike_records())
    ]
    if network.spiking_output:
        records = records[:-1]
    panels = len(records) + 1
    fig, axes = plt.subplots(panels, 1, figsize=(8, 2.2 * panels), sharex=True)
    dt = dataset.dt
    for ax, (name, ev) in zip(axes, records, strict=False):
        ax.scatter(ev.step * dt, ev.unit, s=2, marker="|", color="k")
        ax.set(ylabel=f"{name}\nneuron", ylim=(-0.5, ev.n_units - 0.5))
    t = np.arange(output.shape[0]) * dt
    ax = axes[-1]
    if network.spiking_output:
        steps, units = np.nonzero(output)
        ax.scatter(steps * dt, units, s=8, marker="|")
        ax.set(ylabel="output neuron")
    else:
        for c in range(output.shape[1]):
            ax.plot(t, output[:, c], lw=2.0 if c == int(labels[0]) else 0.8,
                    label=f"class {c}" if c == int(labels[0]) else None)
        ax.legend(loc="upper right")
        ax.set(ylabel="readout V")
    ax.set(xlabel="time (ms)")
    fig.suptitle(f"test sample {index} (label {int(labels[0])})")
    fig.tight_layout()
    _save(fig, path)
