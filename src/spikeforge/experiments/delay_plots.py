"""Histogram of the learned synaptic delays of a network (PNG, matplotlib Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from spikeforge.atomic import atomic_path  # noqa: E402


def delay_sets(network: torch.nn.Module) -> list[tuple[str, np.ndarray, float]]:
    """(name, delays in ms as used in the forward (clamped), max_delay) of every delayed
    connection of ``network`` (layers with ``clamped_delays``), in layer order."""
    out = []
    for index, layer in enumerate(getattr(network, "layers", [])):
        if not hasattr(layer, "clamped_delays"):
            continue
        with torch.no_grad():
            d_in, d_rec = layer.clamped_delays()
        out.append((f"layer {index} input", d_in.numpy().ravel(), layer.max_delay))
        if d_rec is not None:
            out.append((f"layer {index} recurrent", d_rec.numpy().ravel(), layer.max_delay))
    return out


def plot_delay_histograms(network: torch.nn.Module, path: Path, bins: int = 40) -> bool:
    """Write one histogram panel per delayed connection to ``path``; returns False (and
    writes nothing) when the network has no delays."""
    sets = delay_sets(network)
    if not sets:
        return False
    fig, axes = plt.subplots(len(sets), 1, figsize=(7, 2.4 * len(sets)), squeeze=False)
    for ax, (name, delays, max_delay) in zip(axes[:, 0], sets, strict=True):
        ax.hist(delays, bins=bins, range=(0.0, max(max_delay, 1e-9)), color="tab:blue")
        ax.set(xlabel="delay (ms)", ylabel="synapses",
               title=f"{name}: {delays.size} synapses, mean {delays.mean():.1f} ms")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return True
