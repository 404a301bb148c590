"""Speaker-aware evaluation splits: speaker-disjoint validation and leave-one-speaker-out.

Speech datasets (SHD, SSC) record the speaker of every sample
(:attr:`SpikeDataset.speakers`, int64 [N]). A network that is validated on the speakers
it was trained on over-estimates its accuracy on new voices; these helpers keep the
speakers of the training and validation parts disjoint.

Public API (imported by cross-validation code)::

    for speaker, train_idx, val_idx in loso_folds(dataset):
        fold_train, fold_val = dataset.subset(train_idx), dataset.subset(val_idx)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from spikeforge.errors import SpikeforgeError


class _HasSpeakers(Protocol):
    speakers: np.ndarray | None


def _speakers_of(dataset: _HasSpeakers | np.ndarray) -> np.ndarray:
    speakers = dataset if isinstance(dataset, np.ndarray) else dataset.speakers
    if speakers is None:
        raise SpikeforgeError(
            "this dataset has no speaker ids; speaker-aware splits need a speech dataset "
            "(SHD/SSC files with extra/speaker)"
        )
    return np.asarray(speakers, dtype=np.int64)


def loso_folds(
    dataset: _HasSpeakers | np.ndarray,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Leave-one-speaker-out folds over the speakers of ``dataset``.

    Args:
        dataset: a :class:`~spikeforge.data.base.SpikeDataset` with ``speakers`` set (or
            the int array of speaker ids itself, [N]).

    Yields:
        ``(speaker, train_idx, val_idx)`` for every distinct speaker in ascending order:
        ``val_idx`` (int64, sorted) holds all samples of ``speaker``, ``train_idx``
        (int64, sorted) all other samples. Every sample is in exactly one ``val_idx``.

    Raises:
        SpikeforgeError: the dataset has no speaker ids or fewer than two speakers.
    """
    speakers = _speakers_of(dataset)
    distinct = np.unique(speakers)
    if distinct.size < 2:
        raise SpikeforgeError(
            f"leave-one-speaker-out needs at least 2 speakers, the dataset has {distinct.size}"
        )
    for speaker in distinct:
        held_out = speakers == speaker
        yield int(speaker), np.flatnonzero(~held_out), np.flatnonzero(held_out)


def speaker_disjoint_split(
    dataset: _HasSpeakers | np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split into (train_idx, val_idx) whose speakers do not overlap.

    Speakers are taken in a seeded random order and moved to validation until it holds at
    least ``val_fraction`` of the samples; at least one speaker is always left for
    training. Returns sorted int64 index arrays.
    """
    if not 0.0 < val_fraction < 1.0:
        raise SpikeforgeError(f"val_fraction must be in (0, 1), got {val_fraction}")
    speakers = _speakers_of(dataset)
    distinct = np.unique(speakers)
    if distinct.size < 2:
        raise SpikeforgeError(
            f"a speaker-disjoint split needs at least 2 speakers, the dataset has "
            f"{distinct.size}; use a random validation split instead"
        )
    order = np.random.default_rng(seed).permutation(distinct)
    counts = {int(s): int(np.sum(speakers == s)) for s in distinct}
    chosen, held = [], 0
    for speaker in order[:-1]:
        if held >= val_fraction * speakers.size:
            break
        chosen.append(int(speaker))
        held += counts[int(speaker)]
    in_val = np.isin(speakers, chosen)
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)
