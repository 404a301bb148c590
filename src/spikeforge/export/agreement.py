"""Agreement between spikeforge and another simulator on the same test samples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from spikeforge.data import SpikeDataset
from spikeforge.data.base import first_batch
from spikeforge.events import Events
from spikeforge.export.network_io import LoadedModel, predict_scores, scores_from_output


@dataclass
class SimOutput:
    """What a simulator produced for B samples.

    counts: per spiking layer, spike counts ``[B, N_k]``.
    readout: ``[B, T, C]`` readout voltages (spikes 0/1 for a spiking output layer).
    """

    counts: list[np.ndarray]
    readout: np.ndarray


@torch.no_grad()
def spikeforge_output(model: LoadedModel, events: Events) -> SimOutput:
    """spikeforge's own simulation of ``events`` (the reference for agreement)."""
    network = model.network
    network.eval()
    out = network(events)
    counts = [record.events.counts() for record in network.spike_records()]
    return SimOutput(counts=counts, readout=out.detach().double().numpy())


def compare(model: LoadedModel, ref: SimOutput, other: SimOutput, labels: np.ndarray,
            target: str) -> dict:
    """Class agreement, spike-count correlation and exactness of ``other`` vs ``ref``."""
    dt = model.network.spec.dt
    ref_scores = scores_from_output(ref.readout, model.readout, dt)
    other_scores = scores_from_output(other.readout, model.readout, dt)
    ref_pred, other_pred = ref_scores.argmax(axis=1), other_scores.argmax(axis=1)
    ref_counts = np.concatenate([c.ravel() for c in ref.counts]) if ref.counts else np.zeros(0)
    other_counts = (np.concatenate([c.ravel() for c in other.counts]) if other.counts
                    else np.zeros(0))
    if ref_counts.size and np.std(ref_counts) > 0 and np.std(other_counts) > 0:
        corr = float(np.corrcoef(ref_counts, other_counts)[0, 1])
    else:
        corr = float("nan") if ref_counts.size else 1.0
    return {
        "target": target,
        "n_samples": int(len(labels)),
        "class_agreement": float(np.mean(ref_pred == other_pred)),
        "spike_count_correlation": corr,
        "identical_spike_counts": float(np.mean(ref_counts == other_counts))
        if ref_counts.size else 1.0,
        "spikes_spikeforge": int(ref_counts.sum()),
        "spikes_target": int(other_counts.sum()),
        "max_abs_readout_difference": float(np.max(np.abs(ref.readout - other.readout))),
        "accuracy_spikeforge": float(np.mean(ref_pred == labels)),
        "accuracy_target": float(np.mean(other_pred == labels)),
    }


def check(model: LoadedModel, dataset: SpikeDataset, simulate: Callable[[Events], SimOutput],
          target: str, max_samples: int | None = None) -> dict:
    """Simulate the test samples with ``simulate`` and compare with spikeforge."""
    events, labels = first_batch(dataset, max_samples)
    ref = spikeforge_output(model, events)
    other = simulate(events)
    return compare(model, ref, other, labels, target)


def spikeforge_predictions(model: LoadedModel, events: Events) -> np.ndarray:
    """spikeforge's predictions through the training code path (for tests)."""
    with torch.no_grad():
        out = model.network(events)
        return predict_scores(model.network, out, model.readout).argmax(dim=1).numpy()
