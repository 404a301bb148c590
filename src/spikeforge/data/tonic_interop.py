"""tonic datasets (or anything like them) as spikeforge datasets, without copying events.

A tonic-style dataset is indexable, ``len()``-able, and item ``i`` is ``(events, label)``
with ``events`` a structured array with fields ``x, y, t`` (µs) and ``p`` (tonic's
``sensor_size`` is ``(width, height, polarities)``). :func:`from_tonic` wraps it in a
:class:`SpikeDataset` whose samples are fetched from the dataset and binned only when
indexed (see :mod:`spikeforge.data.event_binning`); the dataset's own ``transform``
(e.g. tonic event transforms) runs inside its ``__getitem__`` as usual, and ``transform``
here applies any further callable ``events -> events`` (tonic transforms included) before
binning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from spikeforge.data.base import SpikeDataset
from spikeforge.data.event_binning import EventBinner, EventSamples, event_dataset
from spikeforge.errors import SpikeforgeError

INSTALL_HINT = 'this needs the optional "tonic" package: pip install "spikeforge[tonic]"'


def require_tonic() -> Any:
    """The ``tonic`` module, or :class:`SpikeforgeError` saying how to install it."""
    try:
        import tonic
    except ImportError as err:
        raise SpikeforgeError(INSTALL_HINT) from err
    return tonic


def tonic_dataset(name: str, root: str, train: bool = True, **kwargs: Any) -> Any:
    """``tonic.datasets.<name>(save_to=root, train=train, **kwargs)`` (needs tonic)."""
    tonic = require_tonic()
    cls = getattr(tonic.datasets, name, None)
    if cls is None:
        raise SpikeforgeError(f"tonic has no dataset {name!r}")
    return cls(save_to=root, train=train, **kwargs)


class TonicFetch:
    """Callable ``i -> events of dataset[i]`` (after ``transform``), checked to be events."""

    def __init__(self, dataset: Any, transform: Callable[[np.ndarray], np.ndarray] | None):
        self.dataset, self.transform = dataset, transform

    def __call__(self, i: int) -> np.ndarray:
        events = self.dataset[i][0]
        if self.transform is not None:
            events = self.transform(events)
        if not isinstance(events, np.ndarray) or events.dtype.names is None:
            raise SpikeforgeError(
                f"item {i} of the tonic dataset is not a structured event array (got "
                f"{type(events).__name__}); drop frame/voxel transforms such as ToFrame, "
                f"spikeforge bins the events itself")
        return events


def _labels(dataset: Any) -> np.ndarray:
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets) == len(dataset):
        return np.asarray(targets, dtype=np.int64)
    return np.asarray([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)


def from_tonic(
    dataset: Any, sensor_size: tuple[int, int, int] | None = None, dt: float = 1.0,
    max_time_ms: float | None = None, downsample: int = 1, refractory_ms: float = 0.0,
    labels: np.ndarray | None = None, n_classes: int | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> SpikeDataset:  # fmt: skip
    """A :class:`SpikeDataset` over a tonic-style ``dataset``, binned lazily.

    Args:
        dataset: indexable; item ``i`` is ``(structured events, label)``.
        sensor_size: (width, height, polarities); default ``dataset.sensor_size``.
        dt: step in ms; max_time_ms: window in ms (default: the first sample's duration).
        downsample, refractory_ms: see :class:`EventBinner`.
        labels: int [N]; default ``dataset.targets`` or one pass over the labels.
        n_classes: default ``labels.max() + 1``.
        transform: optional ``events -> events`` callable applied before binning.

    Returns:
        dataset with ``n_inputs = P * H' * W'`` and ``n_steps = ceil(max_time_ms / dt)``.
    """
    if sensor_size is None:
        sensor_size = getattr(dataset, "sensor_size", None)
        if sensor_size is None:
            raise SpikeforgeError("pass sensor_size=(width, height, polarities); the "
                                  "dataset has no sensor_size attribute")
    sensor = tuple(int(s) for s in sensor_size)
    if len(sensor) != 3:
        raise SpikeforgeError(f"sensor_size must be (width, height, polarities), got {sensor}")
    fetch = TonicFetch(dataset, transform)
    if max_time_ms is None:
        first = fetch(0)
        max_time_ms = max(float(first["t"].max()) / 1000.0 if first.size else dt, dt)
    binner = EventBinner(sensor, dt, max_time_ms, downsample, refractory_ms)  # type: ignore[arg-type]
    labels = _labels(dataset) if labels is None else np.asarray(labels, dtype=np.int64)
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    return event_dataset(EventSamples(fetch, len(dataset), binner), labels, n_classes)
