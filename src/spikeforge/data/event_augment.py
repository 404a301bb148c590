"""Seeded augmentations of binned camera samples (training batches only).

Same calling convention as :mod:`spikeforge.data.augment`:
``transform(sample, label, rng, source) -> sample`` with ``sample = (steps int64 [k],
units int64 [k])`` over units ``(p * H + y) * W + x`` of an input map of
``shape = (P, H, W)`` (:attr:`EventBinner.shape`). Events pushed outside the map or the
time window ``[0, source.n_steps)`` are dropped.

* :class:`RandomTranslate` -- shift all events by (dx, dy) ~ U{-max_shift..max_shift}^2
  (also a random crop-and-pad of the same size).
* :class:`RandomFlip` -- mirror left-right with probability ``p``.
* :class:`TimeJitter` -- add an integer step offset ~ round(N(0, std_steps)) per event.
* :class:`DropEvents` -- drop each event with probability ``p``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from spikeforge.data.base import SpikeDataset

Sample = tuple[np.ndarray, np.ndarray]


def _split(units: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    _, h, w = shape
    return units // (h * w), (units // w) % h, units % w


def _join(steps: np.ndarray, p: np.ndarray, y: np.ndarray, x: np.ndarray,
          shape: tuple[int, int, int], n_steps: int) -> Sample:
    _, h, w = shape
    keep = (x >= 0) & (x < w) & (y >= 0) & (y < h) & (steps >= 0) & (steps < n_steps)
    return steps[keep], ((p * h + y) * w + x)[keep]


@dataclass(frozen=True)
class RandomTranslate:
    """Shift every event of a sample by one random (dx, dy) in [-max_shift, max_shift]^2."""

    shape: tuple[int, int, int]
    max_shift: int = 2

    def __call__(self, sample: Sample, label: int, rng: np.random.Generator,
                 source: SpikeDataset) -> Sample:
        dx, dy = rng.integers(-self.max_shift, self.max_shift + 1, size=2)
        p, y, x = _split(sample[1], self.shape)
        return _join(sample[0], p, y + int(dy), x + int(dx), self.shape, source.n_steps)


@dataclass(frozen=True)
class RandomFlip:
    """Mirror a sample left-right (x -> W - 1 - x) with probability ``p``."""

    shape: tuple[int, int, int]
    p: float = 0.5

    def __call__(self, sample: Sample, label: int, rng: np.random.Generator,
                 source: SpikeDataset) -> Sample:
        if rng.random() >= self.p:
            return sample
        p, y, x = _split(sample[1], self.shape)
        return _join(sample[0], p, y, self.shape[2] - 1 - x, self.shape, source.n_steps)


@dataclass(frozen=True)
class TimeJitter:
    """Move each event by round(N(0, std_steps)) steps."""

    std_steps: float = 1.0

    def __call__(self, sample: Sample, label: int, rng: np.random.Generator,
                 source: SpikeDataset) -> Sample:
        steps = sample[0] + np.rint(rng.normal(0.0, self.std_steps, sample[0].size)).astype(
            np.int64)
        keep = (steps >= 0) & (steps < source.n_steps)
        return steps[keep], sample[1][keep]


@dataclass(frozen=True)
class DropEvents:
    """Drop each event independently with probability ``p``."""

    p: float = 0.1

    def __call__(self, sample: Sample, label: int, rng: np.random.Generator,
                 source: SpikeDataset) -> Sample:
        keep = rng.random(sample[0].size) >= self.p
        return sample[0][keep], sample[1][keep]
