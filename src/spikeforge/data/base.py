"""Spike datasets kept as per-sample event lists, batched into :class:`Events` on demand."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from spikeforge.engine.events import Events


@dataclass
class SpikeDataset(torch.utils.data.Dataset):
    """Samples as (step indices, channel indices) integer arrays plus integer labels.

    Attributes:
        samples: list of (steps int [k], units int [k]) per sample.
        labels: int64 [N].
        n_inputs: number of input channels; n_classes: number of classes.
        n_steps: simulated time steps per sample; dt: step in ms.
        speakers: optional int64 [N] speaker id per sample (speech datasets), else None.
    """

    samples: list[tuple[np.ndarray, np.ndarray]]
    labels: np.ndarray
    n_inputs: int
    n_classes: int
    n_steps: int
    dt: float
    speakers: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[tuple[np.ndarray, np.ndarray], int]:
        return self.samples[index], int(self.labels[index])

    def collate(self, items: list) -> tuple[Events, torch.Tensor]:
        """DataLoader ``collate_fn``: list of items -> (Events batch, labels [B])."""
        samples = [item[0] for item in items]
        labels = torch.tensor([item[1] for item in items], dtype=torch.long)
        return Events.from_lists(samples, self.n_steps, self.n_inputs), labels

    def subset(self, indices: np.ndarray) -> SpikeDataset:
        return SpikeDataset(
            [self.samples[i] for i in indices], self.labels[indices], self.n_inputs,
            self.n_classes, self.n_steps, self.dt,
            None if self.speakers is None else self.speakers[indices],
        )  # fmt: skip


@dataclass
class DatasetSplits:
    """Fixed train / validation / test splits of one dataset."""

    name: str
    train: SpikeDataset
    val: SpikeDataset
    test: SpikeDataset


def iterate_batches(
    dataset: SpikeDataset, batch_size: int, shuffle: bool, seed: int = 0
) -> Iterator[tuple[Events, torch.Tensor]]:
    """Yield (Events, labels) batches; the order depends only on ``seed`` when shuffling."""
    order = np.arange(len(dataset))
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(dataset))
    for start in range(0, len(order), batch_size):
        yield dataset.collate([dataset[int(i)] for i in order[start : start + batch_size]])


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a stratified (train, val, test) split; val/test get ``fractions``."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val = int(round(fractions[0] * idx.size))
        n_test = int(round(fractions[1] * idx.size))
        parts[1].extend(idx[:n_val])
        parts[2].extend(idx[n_val : n_val + n_test])
        parts[0].extend(idx[n_val + n_test :])
    return tuple(np.sort(np.array(p, dtype=np.int64)) for p in parts)  # type: ignore[return-value]
