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
* ``blend`` :class:`Blend` -- blends of two training samples of the same class (Cramer et
  al. 2020; Nowotny et al.): both are moved half-way towards each other's centre of mass
  in time and channel, then each spike of each is kept with probability 1/2.
  ``mode: replace`` (default): with probability ``p`` a sample is replaced by its blend
  with a random same-class partner. ``mode: append`` (mlGeNN's
  ``shd_delay_shift_blend.py``, which appends as many blends as the training set holds,
  i.e. ``p: 1.0``): each epoch trains on the N original samples plus round(p * N) new
  blends of random same-class pairs (``p`` may exceed 1); the other transforms then apply
  to originals and blends alike. Blends are computed lazily per item (memory O(N)).

:class:`Augmenter` applies a list of transforms to each batch with a generator seeded from
(run seed, epoch), and draws the appended blends from generators seeded the same way, so a
resumed run sees exactly the same augmented epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
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


BLEND_MODES = ("replace", "append")


@dataclass(frozen=True)
class Blend:
    """Blend same-class training samples (see module docstring for the two modes).

    ``mode="replace"``: called per item, replaces it with probability ``p`` by a blend with
    a random same-class partner. ``mode="append"``: per-item calls return the sample
    unchanged; :meth:`epoch_pairs` and :class:`BlendedSamples` build the round(p * N)
    appended blends of an epoch.
    """

    p: float = 0.5
    mode: str = "replace"

    @property
    def appends(self) -> bool:
        return self.mode == "append"

    def __call__(self, sample: Sample, label: int, rng: np.random.Generator,
                 source: SpikeDataset) -> Sample:
        if self.appends or rng.random() >= self.p:
            return sample
        pool = _class_index(source).get(int(label))
        if pool is None or pool.size == 0:
            return sample
        other = source.samples[int(pool[rng.integers(pool.size)])]
        return blend_pair(sample, other, rng, source)

    def epoch_pairs(self, source: SpikeDataset, rng: np.random.Generator) -> np.ndarray:
        """int64 [round(p * N), 2]: (first, partner) indices into ``source``; the first is
        uniform over the N samples, the partner uniform over the first's class."""
        labels = np.asarray(source.labels)
        first = rng.integers(0, labels.size, int(round(self.p * labels.size)))
        partner = np.empty_like(first)
        index = _class_index(source)
        for label in np.unique(labels[first]):
            rows = np.flatnonzero(labels[first] == label)
            pool = index[int(label)]
            partner[rows] = pool[rng.integers(0, pool.size, rows.size)]
        return np.stack([first, partner], axis=1).astype(np.int64)


class BlendedSamples(Sequence):
    """Appended blends of one epoch, computed on access: item j is
    ``blend_pair(samples[pairs[j, 0]], samples[pairs[j, 1]])`` with its own generator
    seeded by (``key``, j), so any item can be recomputed exactly in any order."""

    def __init__(self, source: SpikeDataset, pairs: np.ndarray, key: Sequence[int]) -> None:
        self.source, self.pairs, self.key = source, np.asarray(pairs, np.int64), list(key)

    def __len__(self) -> int:
        return int(self.pairs.shape[0])

    def __getitem__(self, j):  # type: ignore[override]
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(len(self)))]
        a, b = (self.source.samples[int(i)] for i in self.pairs[int(j)])
        rng = np.random.default_rng([*self.key, int(j)])
        return blend_pair(_as_int64(a), _as_int64(b), rng, self.source)


class _Concat(Sequence):
    """Read-only concatenation of sample sequences (no copies)."""

    def __init__(self, parts: Sequence[Sequence[Sample]]) -> None:
        self.parts = list(parts)
        self.ends = np.cumsum([len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.ends[-1]) if self.parts else 0

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        part = int(np.searchsorted(self.ends, i, side="right"))
        return self.parts[part][i - (int(self.ends[part - 1]) if part else 0)]


def _as_int64(sample: Sample) -> Sample:
    return np.asarray(sample[0], np.int64), np.asarray(sample[1], np.int64)


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
    if cls is Blend and params.get("mode", "replace") not in BLEND_MODES:
        raise SpikeforgeError(f"augmentation blend.mode must be one of {', '.join(BLEND_MODES)}, "
                              f"got {params['mode']!r}")
    transform = cls(**params)
    for field in fields(cls):
        value = getattr(transform, field.name)
        if field.name == "mode":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise SpikeforgeError(f"augmentation {name}.{field.name} must be a number >= 0")
        appended = field.name == "p" and getattr(transform, "appends", False)
        if field.name in ("p", "max_change") and value > 1 and not appended:
            raise SpikeforgeError(f"augmentation {name}.{field.name} must be <= 1")
    return transform


class Augmenter:
    """Enlarge each epoch with appended blends, then apply the per-item ``transforms`` in
    order to every item of a training batch."""

    def __init__(self, transforms: Sequence, source: SpikeDataset) -> None:
        transforms = list(transforms)
        self.appenders = [t for t in transforms if getattr(t, "appends", False)]
        self.transforms = [t for t in transforms if not getattr(t, "appends", False)]
        self.source = source

    @classmethod
    def from_specs(cls, specs: Sequence[dict[str, Any]], source: SpikeDataset) -> Augmenter:
        return cls([build_transform(s) for s in specs], source)

    def __bool__(self) -> bool:
        return bool(self.transforms or self.appenders)

    def epoch_dataset(self, seed: int, epoch: int) -> SpikeDataset:
        """Training set of ``epoch``: the source, followed by the blends of every
        append-mode transform (pairs and blends seeded by (seed, epoch)); the source
        itself when there are none. Labels (and speakers) of a blend are its first
        sample's."""
        if not self.appenders:
            return self.source
        src = self.source
        parts, labels = [src.samples], [np.asarray(src.labels)]
        speakers = None if src.speakers is None else [np.asarray(src.speakers)]
        for k, appender in enumerate(self.appenders):
            key = [seed & 0xFFFFFFFF, epoch, 0xB1E, k]
            pairs = appender.epoch_pairs(src, np.random.default_rng(key))
            parts.append(BlendedSamples(src, pairs, key))
            labels.append(labels[0][pairs[:, 0]])
            if speakers is not None:
                speakers.append(speakers[0][pairs[:, 0]])
        return replace(src, samples=_Concat(parts), labels=np.concatenate(labels),
                       speakers=None if speakers is None else np.concatenate(speakers))

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
