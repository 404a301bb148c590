"""Evaluate a standalone model file (written by ``export``/``import-nir``) on a dataset's
test split: the path for networks that were not trained by ``spikeforge train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import load_config
from spikeforge.experiments.loading import load_splits
from spikeforge.export.network_io import LoadedModel, load_model_file, predict_scores

BATCH = 64
"""Test samples per forward pass."""


def model_file_with_data(path: Path, data: str, data_dir: str | None = None,
                         dt: float | None = None) -> LoadedModel:
    """Model file ``path`` with the splits of dataset ``data`` (read at the model's own
    time step unless ``dt`` in ms is given). Raises :class:`SpikeforgeError` when the
    dataset's inputs or classes do not fit the network."""
    model = load_model_file(Path(path))
    spec = model.network.spec
    step = float(spec.dt if dt is None else dt)
    overrides: dict[str, Any] = {"data.name": data, "data.dt": step}
    if data_dir is not None:
        overrides["data.data_dir"] = str(data_dir)
    splits = load_splits(load_config(None, overrides))
    n_out = spec.layers[-1].size
    if splits.test.n_inputs != spec.n_inputs:
        raise SpikeforgeError(
            f"{path} takes {spec.n_inputs} inputs but --data {data} has "
            f"{splits.test.n_inputs}; use the dataset the model was built for")
    if splits.test.n_classes > n_out:
        raise SpikeforgeError(
            f"{path} has {n_out} outputs but --data {data} has {splits.test.n_classes} "
            "classes; use the dataset the model was built for")
    return LoadedModel(model.network, model.readout, splits)


@torch.no_grad()
def evaluate_model_file(path: Path, data: str, data_dir: str | None = None,
                        dt: float | None = None) -> dict[str, Any]:
    """Test accuracy of model file ``path`` on dataset ``data`` (see
    :func:`model_file_with_data`)."""
    model = model_file_with_data(path, data, data_dir, dt)
    test = model.splits.test
    correct = 0
    for start in range(0, len(test), BATCH):
        stop = min(start + BATCH, len(test))
        events, labels = test.collate([test[i] for i in range(start, stop)])
        scores = predict_scores(model.network, model.network(events), model.readout)
        correct += int((scores.argmax(1) == labels).sum())
    return {"test_accuracy": correct / max(len(test), 1), "n_test": len(test),
            "model_file": str(path), "data": data, "dt": model.network.spec.dt,
            "readout": model.readout}
