"""Sparse spike/event batches: the currency between engine kernels.

A batch of B samples over ``n_steps`` time steps is stored as flat arrays sorted by
(sample, step), compressed by sample (CSR)::

    ptr   int64 [B + 1]   events of sample b are ptr[b]:ptr[b+1]
    step  int32 [E]       time step index of each event (0 <= step < n_steps)
    unit  int32 [E]       channel / neuron index
    value float [E]       amplitude (1 for spikes; a current for analogue inputs)
    isyn  float [E]       (spiking layer outputs only) synaptic current at the spike, for
                          EventProp
    extra float [E]       (outputs of neuron models that need a second per-spike value,
                          e.g. ALIF's adaptation just before the spike) or None

Memory is O(E), never O(B x n_steps x units).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

from spikeforge.errors import SpikeforgeError

DenseInput = Any
"""A dense ``[B, T, units]`` array: a NumPy array, a CPU torch tensor, or anything
``numpy.asarray`` accepts."""


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
    extra: np.ndarray | None = None

    @property
    def n_events(self) -> int:
        return int(self.step.shape[0])

    @classmethod
    def from_dense(cls, x: DenseInput) -> Events:
        """Build events from the non-zero entries of a dense ``[B, T, units]`` array.

        ``x`` holds spike counts or input currents per step (any real or bool dtype; a
        CPU torch tensor is read in place). The events are sorted by sample, then step,
        then unit, with ``value`` of ``x``'s dtype; compiled and parallel over the B x T
        rows (:func:`dense_to_events`), identical to :meth:`from_dense_reference`.
        """
        return cls(*dense_to_events(_dense_array(x)))

    @classmethod
    def from_dense_if_sparse(cls, x: DenseInput, max_density: float) -> Events | None:
        """The events of dense ``x [B, T, units]`` if fewer than ``max_density`` of its
        entries are non-zero, else None (use the dense array): the density comes from the
        conversion's own counting pass, so deciding costs no extra scan of ``x``."""
        fields = dense_to_events(_dense_array(x), max_density)
        return None if fields is None else cls(*fields)

    @classmethod
    def from_dense_reference(cls, x: DenseInput) -> Events:
        """:meth:`from_dense` written with ``numpy.nonzero`` (single-threaded): the oracle."""
        x = _dense_array(x)
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
        """Dense ``[B, T, units]`` array (summing coincident events).

        A compiled scatter, parallel over samples, writes the events into a zeroed array
        (:meth:`to_dense_reference` is the NumPy ``add.at`` it is tested against)."""
        out = np.zeros(
            (self.n_batch, self.n_steps, self.n_units), dtype=dtype or self.value.dtype
        )
        if out.dtype == np.bool_ or not _compiles(out.dtype):  # bool: no += in Numba
            return self.to_dense_reference(dtype)
        if self.step.shape[0]:
            _scatter_add(out, self.ptr, self.step, self.unit, self.value.astype(out.dtype))
        return out

    def to_dense_reference(self, dtype: np.dtype | None = None) -> np.ndarray:
        """:meth:`to_dense` by ``numpy.add.at`` (the reference)."""
        out = np.zeros(
            (self.n_batch, self.n_steps, self.n_units), dtype=dtype or self.value.dtype
        )
        np.add.at(out, (self.sample_index(), self.step, self.unit), self.value)
        return out

    def to_tensor(self, dtype: Any = None) -> Any:
        """Dense ``[B, T, units]`` CPU torch tensor (summing coincident events), of
        ``dtype`` (default ``torch.float32``); :meth:`to_dense` gives the NumPy array."""
        import torch  # here, so that this module stays importable without torch

        return torch.from_numpy(self.to_dense(np.float64)).to(dtype or torch.float32)

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
            None if self.extra is None else self.extra.astype(dtype, copy=False),
        )


def _dense_array(x: DenseInput) -> np.ndarray:
    """``x`` as a 3-D NumPy array; a CPU torch tensor becomes a view of its memory (no copy;
    a tensor on another device is copied to the host)."""
    if not isinstance(x, np.ndarray):
        # a torch tensor, recognised without importing torch (this module stays light)
        x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if x.ndim != 3:
        raise SpikeforgeError(
            f"expected input of shape [batch, time, features], got {x.ndim} dimensions"
        )
    return x


_COMPILED_KINDS = "biuf"  # bool, signed / unsigned integers, floats (not float16)


def _compiles(dtype: np.dtype) -> bool:
    """Whether the compiled kernels of this module take arrays of ``dtype``."""
    return dtype.kind in _COMPILED_KINDS and dtype != np.float16 and dtype.isnative


def dense_to_events(
    x: np.ndarray, max_density: float | None = None,
) -> tuple[int, int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The fields ``(n_batch, n_steps, n_units, ptr, step, unit, value)`` of the events of
    a dense ``[B, T, units]`` array, in (sample, step, unit) order; None if ``max_density``
    is given and at least that fraction of ``x`` is non-zero.

    Two compiled passes over the B x T rows of ``x`` (Numba, parallel over rows): count
    the non-zeros of each row, prefix-sum the counts into row offsets, then fill each
    row's events at its offset. For 4-byte dtypes and rows of even length the fill of a
    sparse row reads it as 64-bit words and looks at the two elements of non-zero words
    only. Dtypes Numba cannot compile (float16, complex, object,
    non-native byte order) take the NumPy path.
    """
    n_batch, n_steps, n_units = x.shape
    if not _compiles(x.dtype):
        if max_density is not None and x.size and np.count_nonzero(x) >= max_density * x.size:
            return None
        ev = Events.from_dense_reference(x)
        return n_batch, n_steps, n_units, ev.ptr, ev.step, ev.unit, ev.value
    rows = np.ascontiguousarray(x).reshape(n_batch * n_steps, n_units)
    row_ptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(_count_rows(rows), out=row_ptr[1:])
    n_events = int(row_ptr[-1])
    if max_density is not None and x.size and n_events >= max_density * x.size:
        return None
    step = np.empty(n_events, dtype=np.int32)
    unit = np.empty(n_events, dtype=np.int32)
    value = np.empty(n_events, dtype=x.dtype)
    if n_events:
        pairs = rows.itemsize == 4 and n_units % 2 == 0  # float32 / int32, even rows
        words = rows.view(np.uint64) if pairs else np.zeros((0, 0), np.uint64)
        _fill_rows(rows, words, row_ptr, n_steps, step, unit, value)
    ptr = row_ptr[::n_steps].copy() if n_steps else np.zeros(n_batch + 1, np.int64)
    return n_batch, n_steps, n_units, ptr, step, unit, value


_ROW_CHUNKS = 256
"""The rows are split into at most this many contiguous chunks for the parallel loops
(enough for load balance on many cores, few enough to keep each chunk's scan long)."""

# The per-row scans are separate functions: inside a ``prange`` body the same loop compiles
# to code about 2x slower (measured with Numba 0.68).


@njit(cache=True)
def _count_row(row):
    count = 0
    for u in range(row.shape[0]):
        count += row[u] != 0
    return count


@njit(cache=True)
def _fill_row(row, k, t, step, unit, value):
    for u in range(row.shape[0]):
        v = row[u]
        if v != 0:
            step[k] = t
            unit[k] = u
            value[k] = v
            k += 1


@njit(cache=True)
def _fill_row_words(row, words, k, t, step, unit, value):
    """:func:`_fill_row` of a row of 4-byte elements read through ``words``, its uint64
    view (two elements per word): an all-zero word is one well-predicted test, so a sparse
    row costs about half the element scan. A non-zero word can still hold only zeros
    (-0.0); its two elements are tested one by one. The store is written out as in
    :func:`_fill_row`: a shared ``k = _put(...)`` helper compiled to a fill 2-5x slower
    (Numba 0.68, measured 2026-12-03)."""
    for w in range(words.shape[0]):
        if words[w] != 0:
            u = 2 * w
            v = row[u]
            if v != 0:
                step[k] = t
                unit[k] = u
                value[k] = v
                k += 1
            v = row[u + 1]
            if v != 0:
                step[k] = t
                unit[k] = u + 1
                value[k] = v
                k += 1


@njit(parallel=True, cache=True)
def _count_rows(rows):
    """Non-zeros per row of ``rows`` [R, units] -> int64 [R]."""
    n_rows = rows.shape[0]
    counts = np.empty(n_rows, dtype=np.int64)
    n_chunks = min(n_rows, _ROW_CHUNKS)
    for c in prange(n_chunks):
        for r in range(c * n_rows // n_chunks, (c + 1) * n_rows // n_chunks):
            counts[r] = _count_row(rows[r])
    return counts


WORD_SCAN_MAX_DENSITY = 0.1
"""Rows with at most this fraction of non-zeros are filled word by word
(:func:`_fill_row_words`), denser ones element by element (the word test stops paying
off near 10 % and costs ~12 % at 15 %)."""


@njit(parallel=True, cache=True)
def _fill_rows(rows, words, row_ptr, n_steps, step, unit, value):
    """Write row r's events (step r % n_steps, unit, value) from ``row_ptr[r]`` on;
    ``words`` is the [R, units / 2] uint64 view of ``rows`` for a word scan of its sparse
    rows, or an empty [0, 0] array (element scan everywhere)."""
    n_rows, n_units = rows.shape
    n_chunks = min(n_rows, _ROW_CHUNKS)
    sparse_max = WORD_SCAN_MAX_DENSITY * n_units
    use_words = words.shape[0] == n_rows
    for c in prange(n_chunks):
        for r in range(c * n_rows // n_chunks, (c + 1) * n_rows // n_chunks):
            if use_words and row_ptr[r + 1] - row_ptr[r] <= sparse_max:
                _fill_row_words(rows[r], words[r], row_ptr[r], r % n_steps, step, unit,
                                value)
            else:
                _fill_row(rows[r], row_ptr[r], r % n_steps, step, unit, value)


@njit(parallel=True, cache=True)
def _scatter_add(out, ptr, step, unit, value):
    """out[b, step[k], unit[k]] += value[k] for the events k of each sample b (samples
    write disjoint slices of ``out``, so the loop over them runs in parallel)."""
    for b in prange(out.shape[0]):
        for k in range(ptr[b], ptr[b + 1]):
            out[b, step[k], unit[k]] += value[k]
