"""Augmentations of event samples: statistical properties, seeding, config, delay lines."""

import numpy as np
import pytest

from spikeforge.data.augment import (
    Augmenter,
    Blend,
    BlendedSamples,
    ChannelShift,
    NeighbourSwap,
    TimeScale,
    blend_pair,
    build_transform,
)
from spikeforge.data.base import SpikeDataset, iterate_batches
from spikeforge.data.delays import DelayLines
from spikeforge.errors import SpikeforgeError


def _source(samples, labels, n_channels=100, n_steps=1000):
    return SpikeDataset(samples, np.asarray(labels), n_channels, 3, n_steps, 1.0)


def _dense_sample(rng, n=400, n_channels=100, n_steps=1000):
    steps = np.sort(rng.integers(0, n_steps // 2, n))
    return steps, rng.integers(20, 80, n)


def test_channel_shift_is_uniform_integer_and_drops_out_of_range():
    rng = np.random.default_rng(0)
    source = _source([], [])
    sample = (np.arange(100), np.arange(100))  # one spike on every channel
    shift = ChannelShift(max_shift=5)
    offsets = []
    for _ in range(3000):
        steps, units = shift(sample, 0, rng, source)
        s = int(units[0] - sample[1][steps[0]])  # every kept spike moved by the same s
        np.testing.assert_array_equal(units - sample[1][steps], s)
        assert units.min() >= 0 and units.max() < 100 and units.size == 100 - abs(s)
        offsets.append(s)
    counts = np.bincount(np.asarray(offsets) + 5, minlength=11)
    assert counts.size == 11 and counts.min() > 200  # all of -5..5, about 273 each
    assert abs(np.mean(offsets)) < 0.3


def test_neighbour_swap_moves_channels_by_at_most_one():
    rng = np.random.default_rng(1)
    swap = NeighbourSwap(p=0.5)
    moved = []
    for _ in range(400):
        perm = swap.permutation(101, rng)
        assert sorted(perm) == list(range(101))  # a permutation
        displacement = perm - np.arange(101)
        assert np.abs(displacement).max() <= 1
        np.testing.assert_array_equal(perm[perm], np.arange(101))  # pairs: an involution
        moved.append(np.mean(displacement != 0))
    # half of the ~50 pairs are swapped -> ~50 % of channels move
    assert np.mean(moved) == pytest.approx(0.5, abs=0.03)
    sample = (np.arange(10), np.arange(10) * 3)
    steps, units = swap(sample, 0, rng, _source([], []))
    np.testing.assert_array_equal(steps, sample[0])
    assert np.abs(units - sample[1]).max() <= 1


def test_time_scale_factor_distribution():
    rng = np.random.default_rng(2)
    source = _source([], [])
    sample = (np.full(50, 400), np.arange(50))
    factors = []
    for _ in range(2000):
        steps, units = TimeScale(max_change=0.2)(sample, 0, rng, source)
        assert units.size == 50 and np.all(steps == steps[0])
        factors.append(steps[0] / 400)
    factors = np.asarray(factors)
    assert 0.8 - 1e-9 <= factors.min() < 0.82 and 1.18 < factors.max() <= 1.2 + 1e-9
    assert factors.mean() == pytest.approx(1.0, abs=0.01)
    assert factors.std() == pytest.approx(0.4 / np.sqrt(12), rel=0.08)  # uniform


def test_blend_keeps_half_and_meets_in_the_middle():
    rng = np.random.default_rng(3)
    source = _source([], [])
    a = (np.full(2000, 100), np.full(2000, 30))
    b = (np.full(2000, 300), np.full(2000, 70))
    steps, units = blend_pair(a, b, rng, source)
    assert steps.size == pytest.approx(2000, rel=0.05)  # each spike kept with p = 1/2
    np.testing.assert_array_equal(steps, 200)  # both moved to the common centre of mass
    np.testing.assert_array_equal(units, 50)
    assert np.all(np.diff(steps) >= 0)


def test_blend_partner_has_the_same_class():
    rng = np.random.default_rng(4)
    samples = [(np.array([i]), np.array([label * 10])) for i, label in enumerate([0, 1, 2] * 4)]
    source = _source(samples, [0, 1, 2] * 4)
    blend = Blend(p=1.0)
    for _ in range(50):
        label = int(rng.integers(3))
        steps, units = blend((np.array([5] * 40), np.array([label * 10] * 40)), label, rng,
                             source)
        assert set(units.tolist()) <= {label * 10}  # partner of the same class: same channel
    # p = 0: unchanged
    sample = (np.array([1, 2]), np.array([3, 4]))
    assert Blend(p=0.0)(sample, 0, rng, source) is sample


def test_augmenter_is_seeded_by_seed_and_epoch():
    rng = np.random.default_rng(5)
    samples = [_dense_sample(rng) for _ in range(12)]
    source = _source(samples, [0, 1, 2] * 4)
    aug = Augmenter.from_specs([{"name": "shift", "max_shift": 10}, {"name": "time_scale"},
                                {"name": "swap", "p": 0.3}, {"name": "blend", "p": 0.5}],
                               source)

    def epoch_batches(seed, epoch):
        return [e.to_dense() for e, _ in iterate_batches(source, 4, True, epoch,
                                                         aug.for_epoch(seed, epoch))]

    first = epoch_batches(0, 3)
    np.testing.assert_array_equal(np.stack(first), np.stack(epoch_batches(0, 3)))
    assert not np.array_equal(np.stack(first), np.stack(epoch_batches(0, 4)))
    assert not np.array_equal(np.stack(first), np.stack(epoch_batches(1, 3)))
    plain = [e.to_dense() for e, _ in iterate_batches(source, 4, True, 3)]
    assert not np.array_equal(np.stack(first), np.stack(plain))


@pytest.mark.parametrize("spec, message", [
    ({"name": "nope"}, "unknown augmentation"),
    ({"max_shift": 3}, "needs a name"),
    ({"name": "shift", "shift": 3}, "has no parameter 'shift'"),
    ({"name": "blend", "p": 1.5}, "must be <= 1"),
    ({"name": "time_scale", "max_change": -0.1}, ">= 0"),
    ({"name": "blend", "mode": "mix"}, "blend.mode must be one of replace, append"),
    ({"name": "blend", "p": 1.5, "mode": "replace"}, "must be <= 1"),
    ({"name": "blend", "p": -0.5, "mode": "append"}, ">= 0"),
])
def test_bad_augmentation_specs(spec, message):
    with pytest.raises(SpikeforgeError, match=message):
        build_transform(spec)


def test_delay_lines_expand_channels_and_shift_time():
    delays = DelayLines(copies=3, spacing_ms=4.0)
    steps, units = delays.expand((np.array([0, 5]), np.array([1, 2])), n_channels=10,
                                 n_steps=12, dt=2.0)
    got = sorted(zip(steps.tolist(), units.tolist(), strict=True))
    # copy k: +k*2 steps, +k*10 channels; step 5 + 4 = 9 kept, nothing reaches 12
    assert got == sorted([(0, 1), (5, 2), (2, 11), (7, 12), (4, 21), (9, 22)])
    ds = SpikeDataset([(np.array([0, 5]), np.array([1, 2]))], np.array([0]), 10, 2, 8,
                      2.0).with_delay_lines(delays)
    assert ds.n_inputs == 30 and ds.n_channels == 10
    events, _ = ds.collate([ds[0]])
    assert events.n_units == 30 and events.n_events == 5  # step 9 >= 8 dropped
    assert ds.subset(np.array([0])).n_inputs == 30
    with pytest.raises(SpikeforgeError, match="copies must be >= 1"):
        DelayLines(0, 1.0)


def _banded_source(n_per_class=10, n_classes=3, spikes=2000, seed=7):
    """Class c: every spike on channels 30c..30c+9 (uniform), steps 0..399."""
    rng = np.random.default_rng(seed)
    samples, labels = [], []
    for i in range(n_per_class * n_classes):
        c = i % n_classes
        steps = np.sort(rng.integers(0, 400, spikes))
        samples.append((steps, 30 * c + rng.integers(0, 10, spikes)))
        labels.append(c)
    return _source(samples, labels, n_channels=100, n_steps=1000)


@pytest.mark.parametrize("p, expected", [(0.5, 45), (1.0, 60), (1.5, 75), (0.0, 30)])
def test_append_blend_epoch_size(p, expected):
    source = _banded_source()
    aug = Augmenter.from_specs([{"name": "blend", "p": p, "mode": "append"}], source)
    epoch = aug.epoch_dataset(seed=0, epoch=0)
    assert len(epoch) == expected and len(epoch.labels) == expected
    np.testing.assert_array_equal(epoch.labels[:30], source.labels)
    for i in range(30):  # the originals come first, unchanged
        assert epoch[i][0][0] is source.samples[i][0]
    events, labels = epoch.collate([epoch[i] for i in range(expected)])
    assert events.n_batch == expected and events.n_units == source.n_inputs
    # replace mode never changes the epoch size
    assert Augmenter.from_specs([{"name": "blend", "p": 1.0}], source).epoch_dataset(
        0, 0) is source


def test_appended_blends_are_same_class_mixtures():
    source = _banded_source()
    blend = Blend(p=2.0, mode="append")
    pairs = blend.epoch_pairs(source, np.random.default_rng(0))
    labels = source.labels
    assert pairs.shape == (60, 2)
    np.testing.assert_array_equal(labels[pairs[:, 0]], labels[pairs[:, 1]])
    assert len(set(pairs[:, 0].tolist())) > 20  # first samples spread over the set
    aug = Augmenter([blend], source)
    epoch = aug.epoch_dataset(seed=3, epoch=5)
    blends = epoch.samples.parts[1]
    assert isinstance(blends, BlendedSamples)
    for j in range(len(blends)):
        (steps, units), label = epoch[30 + j]
        a, b = blends.pairs[j]
        assert label == labels[a] == labels[b]
        # half of each partner's 2,000 spikes, all in the class band (a partner of another
        # class would pull the channels 15 or more away)
        assert 1800 < units.size < 2200
        assert units.min() >= 30 * label - 1 and units.max() <= 30 * label + 10
        assert np.all(np.diff(steps) >= 0)
        expected = blend_pair(source.samples[a], source.samples[b],
                              np.random.default_rng([3, 5, 0xB1E, 0, j]), source)
        np.testing.assert_array_equal(steps, expected[0])
        np.testing.assert_array_equal(units, expected[1])


def test_append_blend_is_seeded_by_seed_and_epoch_and_combines_with_shift():
    source = _banded_source(n_per_class=4)
    specs = [{"name": "shift", "max_shift": 5}, {"name": "blend", "p": 0.5, "mode": "append"}]
    aug = Augmenter.from_specs(specs, source)
    assert [type(t).__name__ for t in aug.transforms] == ["ChannelShift"] and aug

    def epoch_dense(seed, epoch):
        data = aug.epoch_dataset(seed, epoch)
        return np.stack([e.to_dense() for e, _ in iterate_batches(
            data, 3, True, epoch, aug.for_epoch(seed, epoch))])

    first = epoch_dense(0, 2)
    assert first.shape[0] == 6  # (12 + 6) / 3 batches
    np.testing.assert_array_equal(first, epoch_dense(0, 2))  # exact on recomputation
    assert not np.array_equal(first, epoch_dense(0, 3))
    assert not np.array_equal(first, epoch_dense(1, 2))
    a = aug.epoch_dataset(0, 2).samples.parts[1]
    b = Augmenter.from_specs(specs, source).epoch_dataset(0, 2).samples.parts[1]
    np.testing.assert_array_equal(a.pairs, b.pairs)
    for j in reversed(range(len(a))):  # any access order gives the same blend
        np.testing.assert_array_equal(a[j][1], b[j][1])
