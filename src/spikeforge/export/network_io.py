"""Trained networks as export sees them, and standalone model files.

A :class:`LoadedModel` is a network plus its readout rule (and optionally its data);
run folders are read into one by :func:`spikeforge.experiments.loading.load_run`.
A *model file* (written by ``spikeforge import-nir``) is a checkpoint holding the weights
(``model``), the :class:`NetworkSpec` as plain data (``network_spec``) and the readout
rule (``readout``: how class scores are read from the output layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from spikeforge.data import DatasetSplits
from spikeforge.errors import SpikeforgeError
from spikeforge.model.serialize import spec_from_dict, spec_to_dict
from spikeforge.nn import SpikingNetwork, build_network
from spikeforge.train.checkpoint import load_checkpoint, save_checkpoint

READOUTS = ("sum", "sum_exp", "max", "first_spike")


@dataclass
class LoadedModel:
    """A trained network and how to read its predictions.

    network: the :class:`SpikingNetwork` (eval mode). readout: one of :data:`READOUTS`.
    splits: the run's dataset splits (None for a bare model file).
    """

    network: SpikingNetwork
    readout: str
    splits: DatasetSplits | None = None


def save_model_file(path: Path, model: LoadedModel) -> None:
    """Write a standalone model file (atomic)."""
    save_checkpoint(Path(path), {
        "model": model.network.state_dict(),
        "network_spec": spec_to_dict(model.network.spec),
        "readout": model.readout,
    })  # fmt: skip


def load_model_file(path: Path) -> LoadedModel:
    """Read a model file written by :func:`save_model_file`."""
    state = load_checkpoint(Path(path))
    if "network_spec" not in state:
        raise SpikeforgeError(
            f"{path} has weights but no network description; pass the run folder instead"
        )
    network = build_network(spec_from_dict(state["network_spec"]))
    network.load_state_dict(state["model"])
    network.eval()
    return LoadedModel(network, str(state.get("readout", "sum_exp")))


@torch.no_grad()
def predict_scores(network: SpikingNetwork, output: torch.Tensor, readout: str) -> torch.Tensor:
    """Class scores ``[B, C]`` (higher is better) from the network output ``[B, T, C]``."""
    from spikeforge.train.losses import first_spike_times, readout_summary

    if readout == "first_spike":
        return -first_spike_times(output)
    return readout_summary(output, readout)


def scores_from_output(output, readout: str, dt: float):
    """Class scores ``[B, C]`` (numpy) from a dense readout array ``[B, T, C]`` produced by
    another simulator: voltages for LI readouts, spikes (0/1) for ``first_spike``."""
    import numpy as np

    out = torch.as_tensor(np.asarray(output, dtype=np.float64))
    if readout == "first_spike":
        n_steps = out.shape[1]
        fired = out > 0
        first = torch.where(fired.any(dim=1), fired.float().argmax(dim=1).double(),
                            torch.full(out.shape[::2], float(n_steps), dtype=torch.float64))
        return (-first * dt).numpy()
    from spikeforge.train.losses import readout_summary

    return readout_summary(out, readout).numpy()
