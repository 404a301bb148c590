"""Sparse on-the-fly binning of camera events, the lazy sample sequence and augmentations."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from spikeforge.data.base import first_batch
from spikeforge.data.event_arrays import make_events, read_event_array
from spikeforge.data.event_augment import DropEvents, RandomFlip, RandomTranslate, TimeJitter
from spikeforge.data.event_binning import EventBinner, EventSamples, event_dataset
from spikeforge.errors import SpikeforgeError


def test_binner_units_steps_and_duplicates():
    b = EventBinner((4, 3, 2), dt=2.0, max_time_ms=10.0)
    ev = make_events([1, 1, 3, 0], [2, 2, 0, 0], [500, 1500, 4100, 10000], [0, 0, 1, 1])
    steps, units = b(ev)
    assert (b.shape, b.n_units, b.n_steps) == ((2, 3, 4), 24, 5)
    # two events of unit 9 in step 0 give one spike; t = 10 ms is outside the window
    assert steps.tolist() == [0, 2] and units.tolist() == [9, 12 + 3]


def test_downsample_and_refractory():
    b = EventBinner((4, 4, 1), dt=1.0, max_time_ms=10.0, downsample=2, refractory_ms=2.0)
    ev = make_events([0, 1, 3, 3], [0, 1, 3, 3], [0, 1000, 0, 5000], [0, 0, 0, 0])
    steps, units = b(ev)
    assert b.shape == (1, 2, 2)
    # (1, 1) pools into unit 0 and comes 1 ms after (0, 0): removed by the filter
    assert steps.tolist() == [0, 0, 5] and units.tolist() == [0, 3, 3]


def test_wrong_polarity_is_an_error():
    b = EventBinner((4, 4, 2), dt=1.0, max_time_ms=10.0)
    with pytest.raises(SpikeforgeError, match="polarity 3"):
        b(make_events([0], [0], [0], [3]))


def test_event_samples_are_lazy_and_take_shares_fetch():
    calls = []
    recordings = [make_events([i], [0], [1000 * i], [1]) for i in range(4)]

    def fetch(i: int) -> np.ndarray:
        calls.append(i)
        return recordings[i]

    b = EventBinner((4, 1, 2), dt=1.0, max_time_ms=5.0)
    ds = event_dataset(EventSamples(fetch, 4, b), np.arange(4) % 2, 2)
    sub = ds.subset(np.array([3, 1]))
    assert calls == []
    events, labels = first_batch(sub)
    assert calls == [3, 1] and labels.tolist() == [1, 1]
    dense = np.asarray(events.to_dense())
    assert dense.shape == (2, 5, 8) and dense[0, 3, 4 + 3] == 1 and dense.sum() == 2


def test_read_npy_and_hdf5(tmp_path):
    ev = make_events([1, 2], [3, 4], [10, 20], [0, 1])
    np.save(tmp_path / "a.npy", ev)
    assert read_event_array(tmp_path / "a.npy").tolist() == ev.tolist()
    with h5py.File(tmp_path / "a.h5", "w") as f:
        for k in "xytp":
            f[f"events/{k}"] = ev[k]
    assert read_event_array(tmp_path / "a.h5").tolist() == ev.tolist()
    np.save(tmp_path / "b.npy", np.zeros(3, dtype=[("x", "i2"), ("t", "i8")]))
    with pytest.raises(SpikeforgeError, match="lacks field"):
        read_event_array(tmp_path / "b.npy")


class _Source:
    n_steps = 10


def test_vision_augmentations_move_units():
    shape = (2, 3, 4)
    sample = (np.array([0, 5]), np.array([0 * 12 + 1 * 4 + 0, 1 * 12 + 2 * 4 + 3]))
    rng = np.random.default_rng(0)
    flipped = RandomFlip(shape, p=1.0)(sample, 0, rng, _Source())
    assert flipped[1].tolist() == [1 * 4 + 3, 12 + 2 * 4 + 0]
    moved = RandomTranslate(shape, max_shift=0)(sample, 0, rng, _Source())
    assert moved[1].tolist() == sample[1].tolist()
    a = RandomTranslate(shape, max_shift=1)(sample, 0, np.random.default_rng(3), _Source())
    b = RandomTranslate(shape, max_shift=1)(sample, 0, np.random.default_rng(3), _Source())
    assert a[1].tolist() == b[1].tolist()
    assert DropEvents(p=1.0)(sample, 0, rng, _Source())[0].size == 0
    assert DropEvents(p=0.0)(sample, 0, rng, _Source())[0].tolist() == [0, 5]
    jit = TimeJitter(std_steps=0.0)(sample, 0, rng, _Source())
    assert jit[0].tolist() == [0, 5]
