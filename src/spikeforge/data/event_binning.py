"""Camera events binned to spike steps on the fly, one sample at a time.

A recording (structured ``x, y, t, p`` array, t in µs, see
:mod:`spikeforge.data.event_arrays`) becomes one spikeforge sample
``(steps int64 [k], units int64 [k])`` over ``n_steps = ceil(max_time_ms / dt)`` steps of
``dt`` ms and ``P * H' * W'`` input units, unit = (p * H' + y') * W' + x' with
x' = x // downsample, y' = y // downsample, H' = ceil(H / downsample). Several events of
one unit in one step give one spike. The optional refractory filter drops an event when
the previous event of the same (downsampled) pixel and polarity came less than
``refractory_ms`` earlier (a standard denoising step for DVS data).

:class:`EventSamples` is a lazy sequence of such samples: it keeps only a way to fetch
recording ``i`` (a file list, a tonic dataset, ...) and bins on indexing, so a dataset of
60,000 files costs O(files) memory and never a dense [samples, time, P, H, W] array.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeforge.data.base import SpikeDataset
from spikeforge.data.event_arrays import check_events


@dataclass(frozen=True)
class EventBinner:
    """Bins one event array to ``(steps, units)``.

    Attributes:
        sensor_size: (width, height, polarities) of the camera.
        dt: step in ms; max_time_ms: simulated window in ms (later events are dropped).
        downsample: integer spatial pooling factor (1: none).
        refractory_ms: refractory filter per unit in ms (0: off).
    """

    sensor_size: tuple[int, int, int]
    dt: float
    max_time_ms: float
    downsample: int = 1
    refractory_ms: float = 0.0

    @property
    def shape(self) -> tuple[int, int, int]:
        """Input map shape (polarities, H', W') after downsampling."""
        w, h, p = self.sensor_size
        d = self.downsample
        return int(p), math.ceil(h / d), math.ceil(w / d)

    @property
    def n_units(self) -> int:
        p, h, w = self.shape
        return p * h * w

    @property
    def n_steps(self) -> int:
        return math.ceil(self.max_time_ms / self.dt - 1e-9)

    def __call__(self, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(steps int64 [k], units int64 [k]) of one recording, sorted by step then unit."""
        events = check_events(events, self.sensor_size)
        _, h, w = self.shape
        d = self.downsample
        units = ((events["p"].astype(np.int64) * h + events["y"] // d) * w
                 + events["x"] // d).astype(np.int64)
        t_ms = events["t"].astype(np.float64) / 1000.0
        if self.refractory_ms > 0 and units.size:
            order = np.lexsort((t_ms, units))
            u, t = units[order], t_ms[order]
            keep_sorted = np.ones(u.size, dtype=bool)
            keep_sorted[1:] = (u[1:] != u[:-1]) | (t[1:] - t[:-1] >= self.refractory_ms)
            keep = np.empty_like(keep_sorted)
            keep[order] = keep_sorted
            units, t_ms = units[keep], t_ms[keep]
        steps = np.floor(t_ms / self.dt).astype(np.int64)
        inside = (steps >= 0) & (steps < self.n_steps)
        flat = np.unique(steps[inside] * self.n_units + units[inside])
        return flat // self.n_units, flat % self.n_units


class FileReader:
    """Callable ``i -> reader(files[i])`` (picklable, for DataLoader workers)."""

    def __init__(self, files: Sequence[Path], reader: Callable[[Path], np.ndarray]) -> None:
        self.files, self.reader = list(files), reader

    def __len__(self) -> int:
        return len(self.files)

    def __call__(self, i: int) -> np.ndarray:
        return self.reader(self.files[i])


class EventSamples(Sequence):
    """Lazy sequence of binned samples: item ``i`` is ``binner(fetch(index[i]))``.

    ``fetch(j)`` returns recording ``j``'s structured event array; ``take`` selects items
    without reading anything.
    """

    def __init__(self, fetch: Callable[[int], np.ndarray], count: int, binner: EventBinner,
                 index: np.ndarray | None = None) -> None:
        self.fetch, self.count, self.binner = fetch, int(count), binner
        self.index = np.arange(self.count, dtype=np.int64) if index is None else index

    def __len__(self) -> int:
        return int(self.index.size)

    def raw(self, i: int) -> np.ndarray:
        """Unbinned structured event array of item ``i``."""
        return self.fetch(int(self.index[i]))

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.binner(self.raw(int(i)))

    def take(self, indices: np.ndarray) -> EventSamples:
        return EventSamples(self.fetch, self.count, self.binner,
                            self.index[np.asarray(indices, dtype=np.int64)])


def file_samples(files: Sequence[Path], reader: Callable[[Path], np.ndarray],
                 binner: EventBinner) -> EventSamples:
    """Lazy binned samples of one recording file each, read by ``reader``."""
    fetch = FileReader(files, reader)
    return EventSamples(fetch, len(fetch), binner)


def event_dataset(samples: EventSamples, labels: np.ndarray, n_classes: int,
                  subjects: np.ndarray | None = None) -> SpikeDataset:
    """:class:`SpikeDataset` over lazily binned camera samples (``subjects`` int64 [N], if
    given, is kept as the dataset's ``speakers`` for subject-disjoint splits)."""
    b = samples.binner
    return SpikeDataset(samples, np.asarray(labels, dtype=np.int64), b.n_units, int(n_classes),
                        b.n_steps, b.dt,
                        None if subjects is None else np.asarray(subjects, dtype=np.int64))
