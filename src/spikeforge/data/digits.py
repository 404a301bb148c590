"""scikit-learn's bundled 8x8 handwritten digits (1,797 images), latency-encoded."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from spikeforge.data.base import DatasetSplits, SpikeDataset, stratified_split
from spikeforge.data.encoding import latency_encode

SPLIT_SEED = 1234
"""Fixed seed of the stratified 70/15/15 train/validation/test split."""


def load(dt: float = 1.0, t_max_ms: float = 20.0, tail_ms: float = 20.0) -> DatasetSplits:
    """Digits with pixel intensity -> linear latency in [0, t_max_ms], 64 channels.

    The simulation runs ``t_max_ms + tail_ms`` so late spikes reach the readout.
    """
    bunch = load_digits()
    images = bunch.images / 16.0
    labels = bunch.target.astype(np.int64)
    samples = latency_encode(images, t_max_ms=t_max_ms, dt=dt)
    n_steps = int(round((t_max_ms + tail_ms) / dt))
    full = SpikeDataset(samples, labels, 64, 10, n_steps, dt)
    train, val, test = stratified_split(labels, (0.15, 0.15), SPLIT_SEED)
    return DatasetSplits("digits", full.subset(train), full.subset(val), full.subset(test))
