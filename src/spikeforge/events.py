"""Sparse spike/event batches: the currency between engine kernels.

A batch of B samples over ``n_steps`` time steps is stored as flat arrays sorted by
(sample, step), compressed by sample (CSR)::

    ptr   int64 [B + 1]   events of sample b are ptr[b]:ptr[b+1]
    step  int32 [E]       time step index of each event (0 <= step < n_steps)
    unit  int32 [E]       channel / neuron index
    value float [E]       amplitude (1 for spikes; a current for analogue inputs)
    isyn  float [E]       (LIF outputs only) synaptic current at the spike, for EventProp

Memory is O(E), never O(B x n_steps x units).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeforge.errors import SpikeforgeError


@dataclass
class Events:
    """A sparse batch of events; see the module docstring for the layout."""

    n_batch: int
    n_steps: int
    n_units: int
    ptr: np.ndarray
    step: np.ndarray
    unit: np.ndarray
    value: np.ndarray
    isyn: np.ndarray | None = None

    @property
    def n_events(self) -> int:
        return int(self.step.shape[0])

    @classmethod
    def from_dense(cls, x: np.ndarray) -> Events:
        """Build events from the non-zero entries of a dense ``[B, T, units]`` array."""
        if x.ndim != 3:
            raise SpikeforgeError(
                f"expected input of shape [batch, time, features], got {x.ndim} dimensions"
            )
        b_idx, t_idx, u_idx = np.nonzero(x)
        counts = np.bincount(b_idx, minlength=x.shape[0])
        ptr = np.zeros(x.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        return cls(
            n_batch=x.shape[0],
            n_steps=x.shape[1],
            n_units=x.shape[2],
            ptr=ptr,
            step=t_idx.astype(np.int32),
            unit=u_idx.astype(np.int32),
            value=np.ascontiguousarray(x[b_idx, t_idx, u_idx]),
        )

    @classmethod
    def from_lists(
        cls,
        samples: list[tuple[np.ndarray, np.ndarray]],
        n_steps: int,
        n_units: int,
        dtype: np.dtype = np.float32,
    ) -> Events:
        """Build unit-amplitude events from per-sample ``(steps, units)`` integer arrays.

        Events at or beyond ``n_steps`` are dropped; events are sorted by step.
        """
        ptr = np.zeros(len(samples) + 1, dtype=np.int64)
        steps, units = [], []
        for index, (sample_steps, sample_units) in enumerate(samples):
            sample_steps = np.asarray(sample_steps, dtype=np.int64)
            sample_units = np.asarray(sample_units, dtype=np.int64)
            keep = (sample_steps >= 0) & (sample_steps < n_steps)
            sample_steps, sample_units = sample_steps[keep], sample_units[keep]
            if sample_units.size and (sample_units.min() < 0 or sample_units.max() >= n_units):
                raise SpikeforgeError(
                    f"sample {index} has a channel outside 0..{n_units - 1}; "
                    f"check the dataset's channel count"
                )
            order = np.argsort(sample_steps, kind="stable")
            steps.append(sample_steps[order])
            units.append(sample_units[order])
            ptr[index + 1] = ptr[index] + sample_steps.size
        step = np.concatenate(steps).astype(np.int32) if steps else np.zeros(0, np.int32)
        unit = np.concatenate(units).astype(np.int32) if units else np.zeros(0, np.int32)
        return cls(
            n_batch=len(samples),
            n_steps=n_steps,
            n_units=n_units,
            ptr=ptr,
            step=step,
            unit=unit,
            value=np.ones(step.shape[0], dtype=dtype),
        )

    def to_dense(self, dtype: np.dtype | None = None) -> np.ndarray:
        """Dense ``[B, T, units]`` array (summing coincident events)."""
        out = np.zeros(
            (self.n_batch, self.n_steps, self.n_units), dtype=dtype or self.value.dtype
        )
        sample = np.repeat(np.arange(self.n_batch), np.diff(self.ptr))
        np.add.at(out, (sample, self.step, self.unit), self.value)
        return out

    def dense_of(self, per_event: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
        """Per-event values [E] (e.g. ``isyn`` or dL/dt) placed at their (sample, step,
        unit) in a zero ``[B, T, units]`` array (the last of coincident events wins)."""
        out = np.zeros((self.n_batch, self.n_steps, self.n_units),
                       dtype=dtype or per_event.dtype)
        out[self.sample_index(), self.step, self.unit] = per_event
        return out

    def sample_index(self) -> np.ndarray:
        """Sample index of each event, int64 [E]."""
        return np.repeat(np.arange(self.n_batch), np.diff(self.ptr))

    def counts(self) -> np.ndarray:
        """Number of events per sample and unit, int64 [B, units]."""
        out = np.zeros((self.n_batch, self.n_units), dtype=np.int64)
        np.add.at(out, (self.sample_index(), self.unit), 1)
        return out

    def astype(self, dtype: np.dtype) -> Events:
        """Same events with values (and isyn) cast to ``dtype``."""
        return Events(
            self.n_batch,
            self.n_steps,
            self.n_units,
            self.ptr,
            self.step,
            self.unit,
            self.value.astype(dtype, copy=False),
            None if self.isyn is None else self.isyn.astype(dtype, copy=False),
        )
