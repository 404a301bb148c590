"""Engine entry points for layers with per-synapse delays (forward + EventProp backward).

Backends as in :mod:`spikeforge.engine.layers`: ``"event"`` (compiled Numba kernels,
:mod:`delay_kernels`) and ``"reference"`` (dense NumPy, :mod:`delay_reference`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from spikeforge.engine import delay_kernels, delay_reference
from spikeforge.engine.layers import (
    BACKENDS,
    DEFAULT_MIN_VDOT,
    NeuronArrays,
    simulate_spikes,
    spikes_from_dense,
)
from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events

DELAY_MODES = ("interpolate", "round")


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise SpikeforgeError(f"unknown engine backend {backend!r}; choose one of {BACKENDS}")


def _n_chunks(n_batch: int) -> int:
    return max(1, min(n_batch, numba.get_num_threads()))


def _gather(dense: np.ndarray, events: Events) -> np.ndarray:
    """Per-event share of a dense [B, T, units] array (events may coincide)."""
    index = (events.sample_index(), events.step, events.unit)
    totals = events.to_dense()[index]
    return dense[index] * events.value / totals


@dataclass(frozen=True)
class DelaySteps:
    """Delays of a [pre, post] synapse matrix in steps: ``q`` int32 and fraction ``f``."""

    q: np.ndarray
    f: np.ndarray

    @classmethod
    def from_ms(cls, delay_ms: np.ndarray, dt: float, mode: str, dtype) -> DelaySteps:
        """Split delays (ms, [pre, post], >= 0) into whole steps and a fraction.

        ``mode="interpolate"``: q = floor(d/dt), f = d/dt - q (current split over two
        steps, smooth in d); ``"round"``: q = round(d/dt), f = 0 (integer steps)."""
        steps = np.asarray(delay_ms, dtype=np.float64) / dt
        if mode == "round":
            q = np.rint(steps)
            f = np.zeros_like(steps)
        else:
            q = np.floor(steps)
            f = steps - q
        return cls(np.ascontiguousarray(q, dtype=np.int32), np.ascontiguousarray(f, dtype=dtype))

    @property
    def max_q(self) -> int:
        return int(self.q.max(initial=0))


@dataclass
class DelayGrads:
    """Gradients of a delayed layer: weights and delays (ms^-1) [pre, post], the timing
    sensitivity of each input event [E_in] (or None) and the lam_I trace [B, T, N]."""

    grad_w_in: np.ndarray
    grad_d_in: np.ndarray
    grad_w_rec: np.ndarray | None
    grad_d_rec: np.ndarray | None
    input_dldt: np.ndarray | None
    lam_i_trace: np.ndarray | None


def _slots(d_in: DelaySteps, d_rec: DelaySteps | None) -> int:
    return max(d_in.max_q, 0 if d_rec is None else d_rec.max_q) + 2


def _rec_arrays(w_in, w_rec, d_rec):
    if w_rec is None:
        empty = np.zeros((0, w_in.shape[1]), dtype=w_in.dtype)
        return empty, empty.astype(np.int32), empty
    return w_rec, d_rec.q, d_rec.f


def delayed_forward(
    inputs: Events,
    w_in: np.ndarray,
    d_in: DelaySteps,
    w_rec: np.ndarray | None,
    d_rec: DelaySteps | None,
    neurons: NeuronArrays,
    spiking: bool,
    backend: str = "event",
) -> Events | np.ndarray:
    """Run a delayed LIF layer (returns spike Events with ``isyn``) or LI readout (V [B,T,N])."""
    _check_backend(backend)
    inputs = inputs.astype(w_in.dtype)
    if backend == "reference":
        rec = (None, None, None) if w_rec is None else (w_rec, d_rec.q, d_rec.f)
        record, isyn = delay_reference.delayed_forward(
            inputs.to_dense(), w_in, d_in.q, d_in.f, *rec, neurons.alpha_mem,
            neurons.alpha_syn, neurons.syn_gain, neurons.threshold, spiking,
        )  # fmt: skip
        if not spiking:
            return record
        return spikes_from_dense(record, isyn)[0]
    n_batch, n_steps, n_out = inputs.n_batch, inputs.n_steps, w_in.shape[1]
    w_r, q_r, f_r = _rec_arrays(w_in, w_rec, d_rec)
    v_out = np.empty((n_batch, n_steps, n_out) if not spiking else (0, 0, 0), w_in.dtype)

    def run(out_step, out_unit, out_isyn, _extras, out_count):
        delay_kernels.delayed_forward(
            inputs.ptr, inputs.step, inputs.unit, inputs.value, w_in, d_in.q, d_in.f,
            w_r, q_r, f_r, neurons.alpha_mem, neurons.alpha_syn, neurons.syn_gain,
            neurons.threshold, n_steps, _slots(d_in, d_rec), spiking,
            out_step, out_unit, out_isyn, out_count, v_out,
        )  # fmt: skip

    if not spiking:  # LI readout: no spike buffers, V is written into v_out
        empty_i, empty_f = np.empty((n_batch, 0), np.int32), np.empty((n_batch, 0), w_in.dtype)
        run(empty_i, empty_i, empty_f, [], np.zeros(n_batch, dtype=np.int64))
        return v_out
    return simulate_spikes("delayed", n_batch, n_steps, n_out, w_in.dtype, run)[0]


def delayed_backward(
    inputs: Events,
    w_in: np.ndarray,
    d_in: DelaySteps,
    w_rec: np.ndarray | None,
    d_rec: DelaySteps | None,
    neurons: NeuronArrays,
    dt: float,
    spikes: Events | None,
    spike_dldt: np.ndarray | None,
    grad_v: np.ndarray | None,
    want_input_timing: bool,
    want_trace: bool,
    min_vdot: float = DEFAULT_MIN_VDOT,
    backend: str = "event",
) -> DelayGrads:
    """EventProp backward of a delayed layer. LIF: pass its ``spikes`` and their consumer
    timing ``spike_dldt`` [E]; LI: pass ``grad_v`` = dL/dV [B, T, N]."""
    _check_backend(backend)
    spiking = spikes is not None
    inputs = inputs.astype(w_in.dtype)
    dtype = w_in.dtype
    n_batch, n_steps, n_out = inputs.n_batch, inputs.n_steps, w_in.shape[1]
    if backend == "reference":
        dense_dldt = spike_dense = isyn_dense = None
        if spiking:
            dense_dldt = spikes.dense_of(spike_dldt, dtype)
            spike_dense = spikes.to_dense(dtype)
            isyn_dense = spikes.dense_of(spikes.isyn, dtype)
        rec = (None, None, None) if w_rec is None else (w_rec, d_rec.q, d_rec.f)
        out = delay_reference.delayed_backward(
            inputs.to_dense(), w_in, d_in.q, d_in.f, *rec, spike_dense, isyn_dense,
            dense_dldt, grad_v, neurons.alpha_mem, neurons.alpha_syn, neurons.syn_gain,
            neurons.threshold, neurons.tau_mem, dt, spiking, min_vdot,
        )  # fmt: skip
        return DelayGrads(
            out["grad_w_in"], out["grad_d_in"], out["grad_w_rec"], out["grad_d_rec"],
            _gather(out["in_dldt"], inputs) if want_input_timing else None,
            out["trace"] if want_trace else None,
        )  # fmt: skip
    chunks = _n_chunks(n_batch)
    w_r, q_r, f_r = _rec_arrays(w_in, w_rec, d_rec)
    gw_in = np.zeros((chunks, *w_in.shape), dtype)
    gd_in = np.zeros_like(gw_in)
    gw_rec = np.zeros((chunks, *w_r.shape), dtype)
    gd_rec = np.zeros_like(gw_rec)
    in_dldt = np.zeros(inputs.n_events if want_input_timing else 0, dtype)
    trace = np.zeros((n_batch, n_steps, n_out) if want_trace else (0, 0, 0), dtype)
    if spiking:
        sp = (spikes.ptr, spikes.step, spikes.unit, spikes.isyn.astype(dtype, copy=False),
              np.asarray(spike_dldt, dtype))
        gv = np.zeros((0, 0, 0), dtype)
    else:
        sp = (np.zeros(n_batch + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32),
              np.zeros(0, dtype), np.zeros(0, dtype))
        gv = np.ascontiguousarray(grad_v, dtype=dtype)
    delay_kernels.delayed_backward(
        inputs.ptr, inputs.step, inputs.unit, inputs.value, w_in, d_in.q, d_in.f,
        w_r, q_r, f_r, neurons.alpha_mem, neurons.alpha_syn, neurons.syn_gain,
        neurons.threshold, neurons.tau_mem, float(dt), n_steps, _slots(d_in, d_rec), spiking,
        *sp, gv, min_vdot, gw_in, gd_in, gw_rec, gd_rec, in_dldt, want_input_timing,
        trace, want_trace,
    )  # fmt: skip
    has_rec = w_rec is not None
    return DelayGrads(
        gw_in.sum(axis=0), gd_in.sum(axis=0),
        gw_rec.sum(axis=0) if has_rec else None, gd_rec.sum(axis=0) if has_rec else None,
        in_dldt if want_input_timing else None, trace if want_trace else None,
    )  # fmt: skip
