"""Per-neuron parameter values of neuron models: one value per neuron, or one for all.

Parameter dataclasses hold such values as tuples of floats (hashable, frozen); the
factor-table formulas turn them into rows ``[N]`` of NumPy arrays or torch tensors on the
device of the layer's other rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from spikeforge.errors import SpikeforgeError


def as_values(value: float | Iterable[float]) -> tuple[float, ...]:
    """A number or a sequence (list, tuple, array) as a tuple of floats."""
    if isinstance(value, int | float | np.number):
        return (float(value),)
    return tuple(float(v) for v in np.asarray(value, dtype=np.float64).ravel())


def check_values(params, names: tuple[str, ...], where: str) -> None:
    """Raise :class:`SpikeforgeError` unless every field in ``names`` holds at least one
    value and only finite ones."""
    for name in names:
        values = getattr(params, name)
        if not values or not all(math.isfinite(v) for v in values):
            raise SpikeforgeError(f"{where}: {name} must be finite numbers (one per neuron, "
                                  f"or one for the layer), got {values!r}")


def row_like(values: tuple[float, ...], like, xp):
    """``values`` broadcast to a row shaped like ``like`` ([N], float64; NumPy array or
    torch tensor on ``like``'s device)."""
    size = int(like.shape[0])
    if len(values) not in (1, size):
        raise SpikeforgeError(f"a per-neuron parameter has {len(values)} values but the "
                              f"layer has {size} neurons; give one value per neuron")
    row = like.new_tensor(values) if hasattr(like, "new_tensor") else np.asarray(values)
    return xp.zeros_like(like) + row


def above(high: tuple[float, ...], low: tuple[float, ...]) -> bool:
    """Whether every value of ``high`` exceeds the matching one of ``low`` (a single value
    is compared with all of the other's; sequences of different lengths are False)."""
    if len(high) != len(low) and 1 not in (len(high), len(low)):
        return False
    return bool(np.all(np.asarray(high) > np.asarray(low)))
