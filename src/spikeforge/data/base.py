"""Spike datasets kept as per-sample event lists, batched into :class:`Events` on demand."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from spikeforge.data.delays import DelayLines
from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events

Sample = tuple[np.ndarray, np.ndarray]
"""One sample: (step indices int [k], channel indices int [k])."""


@dataclass
class SpikeDataset(torch.utils.data.Dataset):
    """Samples as (step indices, channel indices) integer arrays plus integer labels.

    Attributes:
        samples: list of (steps int [k], units int [k]) per sample.
        labels: int64 [N].
        n_inputs: number of input channels; n_classes: number of classes.
        n_steps: simulated time steps per sample; dt: step in ms.
        speakers: optional int64 [N] speaker id per sample (speech datasets), else None.
        delays: optional :class:`DelayLines`; ``collate`` expands each sample into
            ``delays.copies`` delayed copies and ``n_inputs`` counts the expanded channels.

    ``samples`` may be any sequence; one with a ``take(indices)`` method (for example a
    lazily binned :class:`~spikeforge.data.event_store.EventStore`) is subset without
    materialising its items.
    """

    samples: Sequence[Sample]
    labels: np.ndarray
    n_inputs: int
    n_classes: int
    n_steps: int
    dt: float
    speakers: np.ndarray | None = None
    delays: DelayLines | None = None

    @property
    def n_channels(self) -> int:
        """Channels of the stored samples (``n_inputs`` before delay-line expansion)."""
        return self.n_inputs // (self.delays.copies if self.delays else 1)

    def __len__(self) -> int:
        return len(self.samples)

    def check_dt(self, dt: float) -> None:
        """Raise :class:`SpikeforgeError` unless the samples are binned at ``dt`` (ms), the
        time step of the network that will read them (a network has one ``dt``, its spec's).
        """
        if not math.isclose(self.dt, dt, rel_tol=1e-9, abs_tol=1e-12):
            raise SpikeforgeError(
                f"the data is binned at dt={self.dt:g} ms but the network steps at "
                f"dt={dt:g} ms; bin the data with the network's step (data.dt={dt:g}) or "
                f"build the network with dt={self.dt:g}")

    def __getitem__(self, index: int) -> tuple[tuple[np.ndarray, np.ndarray], int]:
        return self.samples[index], int(self.labels[index])

    def collate(self, items: list) -> tuple[Events, torch.Tensor]:
        """DataLoader ``collate_fn``: list of items -> (Events batch, labels [B])."""
        samples = [item[0] for item in items]
        if self.delays is not None:
            samples = [self.delays.expand(s, self.n_channels, self.n_steps, self.dt)
                       for s in samples]
        labels = torch.tensor([item[1] for item in items], dtype=torch.long)
        return Events.from_lists(samples, self.n_steps, self.n_inputs), labels

    def subset(self, indices: np.ndarray) -> SpikeDataset:
        indices = np.asarray(indices, dtype=np.int64)
        take = getattr(self.samples, "take", None)
        return SpikeDataset(
            take(indices) if take else [self.samples[i] for i in indices],
            self.labels[indices], self.n_inputs, self.n_classes, self.n_steps, self.dt,
            None if self.speakers is None else self.speakers[indices], self.delays,
        )  # fmt: skip

    def with_delay_lines(self, delays: DelayLines | None) -> SpikeDataset:
        """This dataset with delay-line input expansion (``None``: without)."""
        return SpikeDataset(
            self.samples, self.labels, self.n_channels * (delays.copies if delays else 1),
            self.n_classes, self.n_steps, self.dt, self.speakers, delays,
        )  # fmt: skip


@dataclass
class DatasetSplits:
    """Fixed train / validation / test splits of one dataset."""

    name: str
    train: SpikeDataset
    val: SpikeDataset
    test: SpikeDataset


def iterate_batches(
    dataset: SpikeDataset, batch_size: int, shuffle: bool, seed: int = 0,
    transform: Callable[[list], list] | None = None,
) -> Iterator[tuple[Events, torch.Tensor]]:
    """Yield (Events, labels) batches; the order depends only on ``seed`` when shuffling.

    ``transform`` (e.g. a training augmentation) maps each batch's list of
    ``(sample, label)`` items to new items before collation.
    """
    order = np.arange(len(dataset))
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(dataset))
    for start in range(0, len(order), batch_size):
        items = [dataset[int(i)] for i in order[start : start + batch_size]]
        yield dataset.collate(transform(items) if transform else items)


def first_batch(dataset: SpikeDataset, max_samples: int | None = None
                ) -> tuple[Events, np.ndarray]:
    """The first ``max_samples`` samples of ``dataset`` (all if None) as one batch:
    (Events ``[B, n_steps, n_inputs]``, labels int64 ``[B]``)."""
    n = len(dataset) if max_samples is None else min(max_samples, len(dataset))
    events, labels = dataset.collate([dataset[i] for i in range(n)])
    return events, labels.numpy()


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
