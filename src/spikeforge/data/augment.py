"""Seeded, composable augmentations of event samples (training batches only).

Each transform is a small frozen dataclass (parameters as fields, as in tonic) called as
``transform(sample, label, rng, source) -> sample`` where ``sample`` is
``(steps int64 [k], channels int64 [k])`` of one training item, ``rng`` a
``numpy.random.Generator`` and ``source`` the training :class:`SpikeDataset` (channel
count, time window, and same-class partners for blending). Events pushed outside the
channel range or the time window are dropped.

Transforms (names as used in ``data.augment`` of a run config):

* ``shift`` :class:`ChannelShift` -- all channels += s, s ~ U{-max_shift..max_shift}
  (one draw per sample; Nowotny, Turner & Knight 2025 use max_shift 40 on SHD).
* ``swap`` :class:`NeighbourSwap` -- local jitter: adjacent channel pairs (random pairing
  offset) are exchanged, each pair with probability ``p``; moves a channel by <= 1.
* ``time_scale`` :class:`TimeScale` -- times *= f, f ~ U[1 - max_change, 1 + max_change].
* ``blend`` :class:`Blend` -- with probability ``p`` the sample is replaced by a blend with
  a random training sample of the same class (Cramer et al. 2020; Nowotny et al.): both
  are moved half-way towards each other's centre of mass in time and channel, then each
  spike of each is kept with probability 1/2. (mlGeNN appends as many blended samples as
  the training set holds each epoch; replacing with p = 0.5 shows the network the same
  50/50 mixture at half the epoch cost.)

:class:`Augmenter` applies a list of transforms to each batch with a generator seeded from
(run seed, epoch), so a resumed run sees exactly the same augmented batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from spikeforge.errors import SpikeforgeError

if TYPE_CHECKING:
    from spikeforge.data.base import SpikeDataset

Sample = tuple[np.ndarray, np.ndarray]


def _clip(steps: np.ndarray, units: np.ndarray, source: SpikeDataset) -> Sample:
    keep = (units >= 0) & (units < source.n_channels) & (steps >= 0) & (steps < source.n_steps)
    return steps[keep], units[keep]


@dataclass(frozen=True)
class ChannelShift:
    """Shift all channels of a sample by one random integer in [-max_shift, max_shift]."""

    max_shift: int = 40

    def __call__(self, sample: Sample, label: int, rng: np.random.Generator,
                 source: SpikeDataset) -> Sample:
        shift = int(rng.integers(-self.max_shift, self.max_shift + 1))
        return _clip(sample[0], sample[1] + shift, source)


@dataclass(frozen=True)
class NeighbourSwap:
    """Exchange adjacent channels (2i+o, 2i+1+o), o ~ U{0, 1}, each pair with prob. ``p``."""

    p: float = 0.5

    def permutation(self, n_channels: int, rng: np.random.Generator) -> np.ndarray:
        """Channel map int64 [n_channels]: new channel of each old channel."""
        perm = np.arange(n_channels)
        first = np.arange(int(rng.integers(0, 2)), n_channels - 1, 2)
        first = first[rng.random(first.size) < self.p]
        perm[first], perm[first + 1] = first + 1, first
        return perm

    def __call__(self, sample: Sample, label: int, rng: np.random.Generator,
                 source: SpikeDataset) -> Sample:
        return sample[0], self.permutation(source.n_channels, rng)[sample[1]]


@dataclass(frozen=True)
class TimeScale:
    """Compress or dilate time: step -> round(step * f), f ~ U[1 - max_change, 1 + max_change]."""

    max_change: float = 0.1

    def __call__(self, sample: Sample, label: int, rng: np.random.Generator,
                 source: SpikeDataset) -> Sample:
        factor = rng.uniform(1.0 - self.max_change, 1.0 + self.max_change)
        return _clip(np.round(sample[0] * factor).astype(np.int64), sample[1], source)


@dataclass(frozen=True)
class Blend:
    """With probability ``p``, blend the sample with a random same-class training sample."""

    p: float = 0.5

    def __call__(self, sample: Sample, label: int, rng: np.random.Generator,
                 source: SpikeDataset) -> Sample:
        if rng.random() >= self.p:
            return sample
        pool = _class_index(source).get(int(label))
        if pool is None or pool.size == 0:
            return sample
        other = source.samples[int(pool[rng.integers(pool.size)])]
        return blend_pair(sample, other, rng, source)


def blend_pair(a: Sample, b: Sample, rng: np.random.Generator, source: SpikeDataset) -> Sample:
    """Move ``a`` and ``b`` half-way to each other's centre of mass (time and channel), keep
    each spike with probability 1/2, merge (sorted by step)."""
    if a[0].size == 0 or b[0].size == 0:
        return a
    dt = (float(b[0].mean()) - float(a[0].mean())) / 2
    dc = (float(b[1].mean()) - float(a[1].mean())) / 2
    a_steps, a_units = _clip(a[0] + int(round(dt)), a[1] + int(round(dc)), source)
    b_steps, b_units = _clip(b[0] - int(round(dt)), b[1] - int(round(dc)), source)
    keep_a = rng.random(a_steps.size) < 0.5
    keep_b = rng.random(b_steps.size) < 0.5
    steps = np.concatenate([a_steps[keep_a], b_steps[keep_b]])
    units = np.concatenate([a_units[keep_a], b_units[keep_b]])
    order = np.argsort(steps, kind="stable")
    return steps[order], units[order]


_CLASS_INDEX: dict[int, tuple[Any, dict[int, np.ndarray]]] = {}


def _class_index(source: SpikeDataset) -> dict[int, np.ndarray]:
    key = id(source)
    cached = _CLASS_INDEX.get(key)
    if cached is None or cached[0] is not source.labels:
        labels = np.asarray(source.labels)
        index = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
        _CLASS_INDEX[key] = cached = (source.labels, index)
    return cached[1]


TRANSFORMS = {"shift": ChannelShift, "swap": NeighbourSwap, "time_scale": TimeScale,
              "blend": Blend}


def build_transform(spec: dict[str, Any]):
    """``{"name": "shift", "max_shift": 40}`` -> ``ChannelShift(40)`` (validated)."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise SpikeforgeError(
            f"each data.augment entry needs a name (one of {', '.join(TRANSFORMS)}), got {spec!r}"
        )
    params = dict(spec)
    name = params.pop("name")
    if name not in TRANSFORMS:
        raise SpikeforgeError(f"unknown augmentation {name!r}; choose {', '.join(TRANSFORMS)}")
    cls = TRANSFORMS[name]
    allowed = {f.name for f in fields(cls)}
    unknown = set(params) - allowed
    if unknown:
        raise SpikeforgeError(f"augmentation {name!r} has no parameter {sorted(unknown)[0]!r}; "
                              f"it takes {', '.join(sorted(allowed))}")
    transform = cls(**params)
    for field in fields(cls):
        value = getattr(transform, field.name)
        if not isinstance(value, int | float) or value < 0:
            raise SpikeforgeError(f"augmentation {name}.{field.name} must be a number >= 0")
        if field.name in ("p", "max_change") and value > 1:
            raise SpikeforgeError(f"augmentation {name}.{field.name} must be <= 1")
    return transform


class Augmenter:
    """Apply ``transforms`` in order to every item of a training batch."""

    def __init__(self, transforms: Sequence, source: SpikeDataset) -> None:
        self.transforms, self.source = list(transforms), source

    @classmethod
    def from_specs(cls, specs: Sequence[dict[str, Any]], source: SpikeDataset) -> Augmenter:
        return cls([build_transform(s) for s in specs], source)

    def __bool__(self) -> bool:
        return bool(self.transforms)

    def for_epoch(self, seed: int, epoch: int):
        """Batch transform ``items -> items`` with its own generator seeded by
        (seed, epoch): the same epoch always yields the same augmented batches."""
        rng = np.random.default_rng([seed & 0xFFFFFFFF, epoch, 0xA06])

        def apply(items: list) -> list:
            out = []
            for sample, label in items:
                sample = (np.asarray(sample[0], np.int64), np.asarray(sample[1], np.int64))
                for transform in self.transforms:
                    sample = transform(sample, label, rng, self.source)
                out.append((sample, label))
            return out

        return apply
