"""Dispatch of the compiled e-prop driver (:mod:`spikeforge.engine.eprop_loop`).

:func:`eprop_gradients` takes the hidden layer and readout as :class:`NeuronArrays`,
an :class:`Events` input batch and NumPy weights ``[pre, post]``, and returns the
batch's e-prop gradients (mean over samples) with the readout summary and spike counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from spikeforge.engine import eprop_loop
from spikeforge.engine.api import NeuronArrays
from spikeforge.engine.specialise import specialise
from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events


@dataclass
class EpropGrads:
    """Output of :func:`eprop_gradients`: ``grad_w_in [in, N]``, ``grad_w_rec [N, N]``
    (None without recurrence), ``grad_w_out [N, C]``; per sample ``loss [B]`` (summing
    to the batch's mean per-step cross-entropy, regulariser excluded), readout
    ``summary [B, C]`` and hidden spike ``counts [B, N]``."""

    grad_w_in: np.ndarray
    grad_w_rec: np.ndarray | None
    grad_w_out: np.ndarray
    loss: np.ndarray
    summary: np.ndarray
    counts: np.ndarray


def check_populations(hidden: NeuronArrays, readout: NeuronArrays) -> None:
    """Raise :class:`SpikeforgeError` unless e-prop can train this pair of layers."""
    if not (hidden.spiking and hidden.model.supports("eprop")):
        raise SpikeforgeError(
            f"e-prop needs a spiking hidden layer whose neuron model supports it; the "
            f"{hidden.model.name} model does not; use lif or alif")
    if readout.spiking or readout.model.name != "lif":
        raise SpikeforgeError("e-prop needs a leaky-integrator (LI) readout; set a "
                              "readout loss (sum, sum_exp, max)")
    if not np.all(readout.table == readout.table[:, :1]):
        raise SpikeforgeError("e-prop needs readout neurons with one shared tau_mem and "
                              "tau_syn")


WeightUpdate = Callable[["EpropGrads"], tuple[np.ndarray, "np.ndarray | None", np.ndarray]]
"""Applies one window's gradients (per-step updates) and returns the new weights
``(w_in [in, N], w_rec [N, N] or None, w_out [N, C])``."""


def eprop_gradients(hidden: NeuronArrays, readout: NeuronArrays, events: Events,
                    w_in: np.ndarray, w_rec: np.ndarray | None, w_out: np.ndarray,
                    labels: np.ndarray, feedback: np.ndarray | None = None,
                    surrogate: str = "fast_sigmoid", slope: float = 10.0,
                    reg_strength: float = 0.0, reg_target: float = 0.0,
                    summary: str = "sum", n_chunks: int | None = None,
                    update_every: int | None = None,
                    apply: WeightUpdate | None = None) -> EpropGrads:
    """e-prop gradients of one batch on the compiled CPU driver.

    Args:
        hidden, readout: the populations (factor tables in the compute dtype).
        events: input batch (``n_units`` = in); labels: int64 [B].
        w_in [in, N], w_rec [N, N] or None, w_out [N, C]: weights (pre, post).
        feedback: learning-signal weights [N, C]; None: symmetric (the current ``w_out``).
        surrogate, slope: surrogate derivative (``fast_sigmoid`` or ``arctan``).
        reg_strength, reg_target: spike-count regulariser (target in spikes per sample).
        summary: readout summary to report (``sum``, ``sum_exp``, ``max``).
        n_chunks: samples processed in parallel (default: Numba's thread count).
        update_every: per-step (online) updates: the batch runs in windows of this many
            time steps, all samples in step; after every window but the last, ``apply``
            gets that window's gradients (summed over the batch, its share of the batch's
            mean per-step cross-entropy) and returns the weights the next window runs
            with. None, or a value >= T: one window (per-batch gradients). Per-step mode
            keeps every sample's traces between windows: memory O(B x synapses) instead
            of O(threads x synapses), still flat in T.
        apply: the weight update between windows (required when there is more than one).

    Returns the gradients of the last window (of the whole batch with one window); loss,
    summary and counts always cover the whole samples.
    """
    check_populations(hidden, readout)
    dtype = hidden.table.dtype
    n_batch, n_out, n_steps = events.n_batch, hidden.size, events.n_steps
    if n_steps < 1 or n_batch < 1:
        raise SpikeforgeError(f"e-prop needs at least one sample of at least one time step; "
                              f"got {n_batch} samples of {n_steps} steps")
    window = max(1, n_steps if update_every is None else min(int(update_every), n_steps))
    if window < n_steps and apply is None:
        raise SpikeforgeError("e-prop per-step updates need a weight update between "
                              "windows; pass apply")
    n_in = w_in.shape[0]
    n_chunks = max(1, min(n_batch, n_chunks or numba.get_num_threads()))
    n_classes = w_out.shape[1]
    n_pre = n_in + (0 if w_rec is None else n_out)
    n_slots = n_chunks if window >= n_steps else n_batch
    hidden_state = np.zeros((n_slots, 5, n_out), dtype=dtype)
    readout_state = np.zeros((n_slots, 2, n_classes), dtype=dtype)
    trace_state = np.zeros((n_slots, 6, n_pre, n_out), dtype=dtype)
    cursor = np.zeros(n_batch, dtype=np.int64)
    loss = np.zeros(n_batch, dtype=np.float64)
    summary_out = np.zeros((n_batch, n_classes), dtype=dtype)
    counts = np.zeros((n_batch, n_out), dtype=dtype)
    fixed_feedback = None if feedback is None else np.ascontiguousarray(feedback, dtype=dtype)
    kernel = specialise(eprop_loop.train_batch, hidden.model)
    values = events.value.astype(dtype, copy=False)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    for n_start in range(0, n_steps, window):
        n_stop = min(n_steps, n_start + window)
        w = w_in if w_rec is None else np.concatenate([w_in, w_rec])
        w = np.ascontiguousarray(w, dtype=dtype)
        w_out_c = np.ascontiguousarray(w_out, dtype=dtype)
        grad_parts = np.zeros((n_chunks, *w.shape), dtype=dtype)
        grad_out_parts = np.zeros((n_chunks, n_out, n_classes), dtype=dtype)
        kernel(events.ptr, events.step, events.unit, values, n_in, w, w_out_c,
               w_out_c if fixed_feedback is None else fixed_feedback, hidden.table,
               readout.table, labels, n_steps, n_start, n_stop,
               eprop_loop.SURROGATE_CODES[surrogate], float(slope),
               float(reg_strength) / (n_batch * n_out), float(reg_target),
               eprop_loop.SUMMARY_CODES[summary], grad_parts, grad_out_parts, loss,
               summary_out, counts, hidden_state, readout_state, trace_state, cursor)
        grad = grad_parts.sum(axis=0)
        grads = EpropGrads(grad[:n_in], None if w_rec is None else grad[n_in:],
                           grad_out_parts.sum(axis=0), loss, summary_out, counts)
        if n_stop < n_steps:
            w_in, w_rec, w_out = apply(grads)  # type: ignore[misc]
    return grads
