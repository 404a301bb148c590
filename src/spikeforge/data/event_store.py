"""Raw event streams of many samples in flat arrays, binned to time steps per item.

A full SHD training file (8,156 samples, tens of millions of events) is held as

    times_ms  float32 [E]   event times in ms, sorted within each sample
    units     uint16  [E]   channel of each event (before downsampling)
    ptr       int64   [S+1] events of stored sample s are ptr[s]:ptr[s+1]

(6 bytes per event) and is never expanded to a dense [samples, time, channels] array.
Indexing bins one sample on demand: step = floor(t / dt), channel = unit // stride;
events at or after ``n_steps`` are dropped. ``take`` selects samples by index without
copying the event arrays, so dataset splits and cross-validation folds are cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class EventStore(Sequence):
    """Sequence of binned samples ``(steps int64 [k], channels int64 [k])``."""

    def __init__(
        self, times_ms: np.ndarray, units: np.ndarray, ptr: np.ndarray, dt: float,
        n_steps: int, channel_stride: int = 1, index: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        self.times_ms, self.units, self.ptr = times_ms, units, ptr
        self.dt, self.n_steps, self.channel_stride = float(dt), int(n_steps), int(channel_stride)
        self.index = np.arange(len(ptr) - 1, dtype=np.int64) if index is None else index

    def __len__(self) -> int:
        return int(self.index.size)

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Unbinned (times ms float32 [k], units uint16 [k]) of item ``i``."""
        s = int(self.index[i])
        lo, hi = self.ptr[s], self.ptr[s + 1]
        return self.times_ms[lo:hi], self.units[lo:hi]

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        times, units = self.raw(int(i))
        steps = np.floor(times / self.dt).astype(np.int64)
        keep = steps < self.n_steps
        channels = units[keep].astype(np.int64)
        if self.channel_stride > 1:
            channels //= self.channel_stride
        return steps[keep], channels

    def take(self, indices: np.ndarray) -> EventStore:
        """The items at ``indices`` (shares the event arrays)."""
        return EventStore(self.times_ms, self.units, self.ptr, self.dt, self.n_steps,
                          self.channel_stride, self.index[np.asarray(indices, dtype=np.int64)])

    @property
    def nbytes(self) -> int:
        """Bytes held by the event arrays (shared between takes)."""
        return int(self.times_ms.nbytes + self.units.nbytes + self.ptr.nbytes + self.index.nbytes)
