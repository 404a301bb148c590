"""from_tonic on a tonic-like dataset class (tonic itself is not needed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from spikeforge.data import tonic_interop
from spikeforge.data.base import iterate_batches
from spikeforge.errors import SpikeforgeError

DTYPE = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])  # tonic's


class FakeTonic:
    """Indexable like tonic.datasets.NMNIST: (structured events, label), sensor_size."""

    sensor_size = (4, 2, 2)

    def __init__(self) -> None:
        self.reads = 0
        self.events = []
        for i in range(3):
            ev = np.zeros(2, dtype=DTYPE)
            ev["x"], ev["y"], ev["t"], ev["p"] = [i, 3], [1, 0], [1000 * i, 3500], [1, 0]
            self.events.append(ev)
        self.targets = [0, 1, 2]

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i):
        self.reads += 1
        return self.events[i], self.targets[i]


def test_from_tonic_bins_lazily_without_copies():
    src = FakeTonic()
    ds = tonic_interop.from_tonic(src, dt=1.0, max_time_ms=5.0)
    assert src.reads == 0
    assert (ds.n_inputs, ds.n_steps, ds.n_classes) == (16, 5, 3)
    (steps, units), label = ds[2]
    assert label == 2 and steps.tolist() == [2, 3]
    assert units.tolist() == [8 + 4 + 2, 3]
    events, labels = next(iterate_batches(ds, 3, shuffle=False))
    assert labels.tolist() == [0, 1, 2] and src.reads == 4


def test_transform_and_labels_from_items():
    src = FakeTonic()
    del src.targets[:]
    src.targets.extend([1, 0, 1])
    drop_off = lambda ev: ev[ev["p"] == 1]  # noqa: E731 - a tonic-style event transform
    ds = tonic_interop.from_tonic(src, sensor_size=(4, 2, 2), max_time_ms=5.0,
                                  transform=drop_off, labels=np.array([1, 0, 1]))
    assert ds[0][0][1].tolist() == [8 + 4 + 0] and ds.labels.tolist() == [1, 0, 1]


def test_frames_are_refused():
    class Frames(FakeTonic):
        def __getitem__(self, i):
            return np.zeros((5, 2, 2, 4)), 0

    with pytest.raises(SpikeforgeError, match="structured event array"):
        tonic_interop.from_tonic(Frames(), max_time_ms=5.0)[0]


def test_missing_tonic_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tonic", None)
    with pytest.raises(SpikeforgeError, match=r"pip install \"spikeforge\[tonic\]\""):
        tonic_interop.require_tonic()
