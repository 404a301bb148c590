"""Speaker-aware splits: leave-one-speaker-out folds and speaker-disjoint validation."""

import numpy as np
import pytest

from spikeforge.data.base import SpikeDataset
from spikeforge.data.speakers import loso_folds, speaker_disjoint_split
from spikeforge.errors import SpikeforgeError


def _dataset(speakers):
    n = len(speakers)
    samples = [(np.array([0]), np.array([0]))] * n
    return SpikeDataset(samples, np.arange(n) % 2, 1, 2, 5, 1.0, np.asarray(speakers))


def test_loso_folds_cover_every_sample_once():
    speakers = np.array([3, 1, 3, 7, 1, 1, 7, 3])
    folds = list(loso_folds(_dataset(speakers)))
    assert [f[0] for f in folds] == [1, 3, 7]
    seen = np.concatenate([val for _, _, val in folds])
    np.testing.assert_array_equal(np.sort(seen), np.arange(len(speakers)))
    for speaker, train, val in folds:
        assert np.all(speakers[val] == speaker)
        assert not np.any(speakers[train] == speaker)
        assert len(train) + len(val) == len(speakers)


def test_loso_needs_speakers():
    ds = _dataset([0, 0])
    with pytest.raises(SpikeforgeError, match="at least 2 speakers"):
        list(loso_folds(ds))
    ds.speakers = None
    with pytest.raises(SpikeforgeError, match="no speaker ids"):
        list(loso_folds(ds))


def test_speaker_disjoint_split():
    speakers = np.repeat(np.arange(10), 20)
    train, val = speaker_disjoint_split(speakers, 0.25, seed=0)
    assert set(speakers[train]).isdisjoint(speakers[val])
    assert len(train) + len(val) == 200
    assert 50 <= len(val) <= 60  # whole speakers of 20 samples until >= 25 %
    again = speaker_disjoint_split(speakers, 0.25, seed=0)
    np.testing.assert_array_equal(val, again[1])
    other = speaker_disjoint_split(speakers, 0.25, seed=1)
    assert not np.array_equal(val, other[1])
    # never takes every speaker
    train, val = speaker_disjoint_split(np.array([0, 1]), 0.9, seed=0)
    assert len(train) == 1 and len(val) == 1
