"""Engine entry points for layers with per-synapse delays (forward + EventProp backward).

Backends as in :mod:`spikeforge.engine.api`: ``"event"`` (the compiled driver
:mod:`delay_loop` bound to the layer's neuron model) and ``"reference"`` (dense NumPy,
:mod:`delay_reference`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeforge.engine import delay_loop, delay_reference, dense_loop
from spikeforge.engine.api import (
    DEFAULT_MIN_VDOT,
    NeuronArrays,
    check_backend,
    gather_events,
    n_chunks,
    require_eventprop,
    simulate_spikes,
    spike_arrays,
    spikes_from_dense,
)
from spikeforge.engine.specialise import specialise
from spikeforge.events import Events

DELAY_MODES = ("interpolate", "round")


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
    backend: str = "event",
) -> Events | np.ndarray:
    """Run a delayed layer: spike :class:`Events` (with the model's per-spike values) for
    a spiking population, V [B, T, N] for a readout."""
    check_backend(backend)
    inputs = inputs.astype(w_in.dtype)
    model, table, spiking = neurons.model, neurons.table, neurons.spiking
    if backend == "reference":
        rec = (None, None, None) if w_rec is None else (w_rec, d_rec.q, d_rec.f)
        record, x1, x2 = delay_reference.delayed_forward(
            inputs.to_dense(), w_in, d_in.q, d_in.f, *rec, model, table, spiking)
        if not spiking:
            return record
        return spikes_from_dense(dense_loop.DenseRun(record, x1, x2), model.n_spike_values)
    n_batch, n_steps, n_out = inputs.n_batch, inputs.n_steps, w_in.shape[1]
    w_r, q_r, f_r = _rec_arrays(w_in, w_rec, d_rec)
    v_out = np.empty((n_batch, n_steps, n_out) if not spiking else (0, 0, 0), w_in.dtype)
    kernel = specialise(delay_loop.delayed_forward, model)

    def run(out_step, out_unit, out_x1, out_x2, out_count):
        kernel(inputs.ptr, inputs.step, inputs.unit, inputs.value, w_in, d_in.q, d_in.f,
               w_r, q_r, f_r, table, n_steps, _slots(d_in, d_rec), spiking,
               out_step, out_unit, out_x1, out_x2, out_count, v_out)

    if not spiking:  # readout: no spike buffers, V is written into v_out
        no_i, no_f = np.empty((n_batch, 0), np.int32), np.empty((n_batch, 0), w_in.dtype)
        run(no_i, no_i, no_f, no_f, np.zeros(n_batch, dtype=np.int64))
        return v_out
    return simulate_spikes("delayed_" + model.name, n_batch, n_steps, n_out,
                           model.n_spike_values, w_in.dtype, run)


def delayed_backward(
    inputs: Events,
    w_in: np.ndarray,
    d_in: DelaySteps,
    w_rec: np.ndarray | None,
    d_rec: DelaySteps | None,
    neurons: NeuronArrays,
    spikes: Events | None,
    spike_dldt: np.ndarray | None,
    grad_v: np.ndarray | None,
    want_input_timing: bool,
    want_trace: bool,
    min_vdot: float = DEFAULT_MIN_VDOT,
    backend: str = "event",
) -> DelayGrads:
    """EventProp backward of a delayed layer. Spiking: pass its ``spikes`` and their
    consumer timing ``spike_dldt`` [E]; readout: pass ``grad_v`` = dL/dV [B, T, N]."""
    check_backend(backend)
    require_eventprop(neurons.model)
    spiking = spikes is not None
    inputs = inputs.astype(w_in.dtype)
    dtype = w_in.dtype
    model, table, dt = neurons.model, neurons.table, neurons.dt
    n_batch, n_steps, n_out = inputs.n_batch, inputs.n_steps, w_in.shape[1]
    if backend == "reference":
        dense = dict(spikes=None, x1=None, x2=None, dldt_out=None)
        if spiking:
            extra = spikes.isyn if spikes.extra is None else spikes.extra
            dense = dict(spikes=spikes.to_dense(dtype), x1=spikes.dense_of(spikes.isyn, dtype),
                         x2=spikes.dense_of(extra, dtype),
                         dldt_out=spikes.dense_of(np.asarray(spike_dldt, dtype), dtype))
        rec = (None, None, None) if w_rec is None else (w_rec, d_rec.q, d_rec.f)
        out = delay_reference.delayed_backward(
            inputs.to_dense(), w_in, d_in.q, d_in.f, *rec, grad_v=grad_v, model=model,
            table=table, dt=dt, spiking=spiking, min_vdot=min_vdot, **dense,
        )  # fmt: skip
        return DelayGrads(
            out["grad_w_in"], out["grad_d_in"], out["grad_w_rec"], out["grad_d_rec"],
            gather_events(out["in_dldt"], inputs) if want_input_timing else None,
            out["trace"] if want_trace else None,
        )  # fmt: skip
    chunks = n_chunks(n_batch)
    w_r, q_r, f_r = _rec_arrays(w_in, w_rec, d_rec)
    gw_in = np.zeros((chunks, *w_in.shape), dtype)
    gd_in = np.zeros_like(gw_in)
    gw_rec = np.zeros((chunks, *w_r.shape), dtype)
    gd_rec = np.zeros_like(gw_rec)
    in_dldt = np.zeros(inputs.n_events if want_input_timing else 0, dtype)
    trace = np.zeros((n_batch, n_steps, n_out) if want_trace else (0, 0, 0), dtype)
    dldt = np.asarray(spike_dldt, dtype) if spiking else np.zeros(0, dtype)
    gv = np.zeros((0, 0, 0), dtype) if spiking else np.ascontiguousarray(grad_v, dtype=dtype)
    specialise(delay_loop.delayed_backward, model)(
        inputs.ptr, inputs.step, inputs.unit, inputs.value, w_in, d_in.q, d_in.f,
        w_r, q_r, f_r, table, 1.0 / dt, n_steps, _slots(d_in, d_rec), spiking,
        *spike_arrays(spikes, n_batch, dtype), dldt, gv, min_vdot,
        gw_in, gd_in, gw_rec, gd_rec, in_dldt, want_input_timing, trace, want_trace,
    )  # fmt: skip
    has_rec = w_rec is not None
    return DelayGrads(
        gw_in.sum(axis=0), gd_in.sum(axis=0),
        gw_rec.sum(axis=0) if has_rec else None, gd_rec.sum(axis=0) if has_rec else None,
        in_dldt if want_input_timing else None, trace if want_trace else None,
    )  # fmt: skip
