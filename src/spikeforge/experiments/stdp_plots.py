"""Plots of an STDP run: learned receptive fields, weight distribution over training,
accuracy curves."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spikeforge.atomic import atomic_path  # noqa: E402


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_receptive_fields(weight: np.ndarray, assignments: np.ndarray | None,
                          path: Path) -> None:
    """One panel per neuron: its input weights ``weight[:, j]`` (``[n_in, n_neurons]``),
    as a square image when ``n_in`` is a square number (8x8 digits, 28x28 MNIST), titled
    with the class assigned to the neuron."""
    n_in, n = weight.shape
    side = int(round(math.sqrt(n_in)))
    shape = (side, side) if side * side == n_in else (1, n_in)
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.2 * rows), squeeze=False)
    vmax = float(weight.max()) or 1.0
    for j, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if j < n:
            ax.imshow(weight[:, j].reshape(shape), cmap="hot", vmin=0, vmax=vmax,
                      aspect="auto" if shape[0] == 1 else "equal")
            if assignments is not None:
                ax.set_title(str(int(assignments[j])), fontsize=7, pad=1)
    fig.suptitle("STDP receptive fields (title: assigned class)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def plot_weight_distribution(histograms: np.ndarray, edges: np.ndarray, path: Path) -> None:
    """Weight histogram after each epoch (row 0: initial weights) as a heat map, plus the
    first and last histograms as lines."""
    histograms = np.asarray(histograms, dtype=np.float64)
    fig, (ax_map, ax_line) = plt.subplots(1, 2, figsize=(10, 3.6))
    density = histograms / np.maximum(histograms.sum(1, keepdims=True), 1)
    ax_map.imshow(np.log10(density + 1e-4), aspect="auto", origin="lower", cmap="viridis",
                  extent=(edges[0], edges[-1], -0.5, len(histograms) - 0.5))
    ax_map.set(xlabel="weight", ylabel="epoch (0 = initial)", title="log10 weight density")
    centres = 0.5 * (edges[:-1] + edges[1:])
    ax_line.plot(centres, density[0], label="initial")
    ax_line.plot(centres, density[-1], label=f"after epoch {len(histograms) - 1}")
    ax_line.set(xlabel="weight", ylabel="fraction of synapses", yscale="log",
                title="weight distribution")
    ax_line.legend()
    fig.tight_layout()
    _save(fig, path)


def plot_stdp_curves(metrics: list[dict[str, Any]], path: Path) -> None:
    """Assignment-readout accuracy (train responses during learning, validation) and
    spikes per sample against epoch."""
    epochs = [m["epoch"] for m in metrics]
    fig, (ax_acc, ax_spk) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_acc.plot(epochs, [m["train_accuracy"] for m in metrics], label="train (while learning)")
    ax_acc.plot(epochs, [m["val_accuracy"] for m in metrics], label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1), title="Assignment readout")
    ax_acc.legend()
    ax_spk.plot(epochs, [m["spikes_per_sample"] for m in metrics])
    ax_spk.set(xlabel="epoch", ylabel="excitatory spikes / sample", title="Activity")
    for ax in (ax_acc, ax_spk):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
