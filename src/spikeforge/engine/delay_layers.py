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


@dataclass(frozen=True)
class DelayedSynapses:
    """A delayed layer's synapses: input weights [in, N] and their delays, and optional
    recurrent weights [N, N] with theirs (weights [pre, post], delays in steps)."""

    w_in: np.ndarray
    d_in: DelaySteps
    w_rec: np.ndarray | None = None
    d_rec: DelaySteps | None = None

    @property
    def n_slots(self) -> int:
        """Ring-buffer length the drivers need: the longest delay in steps plus 2."""
        return max(self.d_in.max_q, 0 if self.d_rec is None else self.d_rec.max_q) + 2

    def kernel_arrays(self) -> tuple:
        """(w_in, q_in, f_in, w_rec, q_rec, f_rec) for the drivers ([0, N] stand-ins for
        absent recurrent synapses)."""
        if self.w_rec is None:
            empty = np.zeros((0, self.w_in.shape[1]), dtype=self.w_in.dtype)
            rec = (empty, empty.astype(np.int32), empty)
        else:
            rec = (self.w_rec, self.d_rec.q, self.d_rec.f)
        return (self.w_in, self.d_in.q, self.d_in.f, *rec)

    def reference_arrays(self) -> tuple:
        """The same for the dense reference (None for absent recurrent synapses)."""
        rec = (None, None, None) if self.w_rec is None else (self.w_rec, self.d_rec.q,
                                                              self.d_rec.f)
        return (self.w_in, self.d_in.q, self.d_in.f, *rec)


def delayed_forward(inputs: Events, synapses: DelayedSynapses, neurons: NeuronArrays,
                    backend: str = "event") -> Events | np.ndarray:
    """Run a delayed layer: spike :class:`Events` (with the model's per-spike values) for
    a spiking population, V [B, T, N] for a readout."""
    check_backend(backend)
    dtype = synapses.w_in.dtype
    inputs = inputs.astype(dtype)
    model, table, spiking = neurons.model, neurons.table, neurons.spiking
    if backend == "reference":
        record, x1, x2 = delay_reference.delayed_forward(
            inputs.to_dense(), *synapses.reference_arrays(), model, table, spiking)
        if not spiking:
            return record
        return spikes_from_dense(dense_loop.DenseRun(record, x1, x2), model.n_spike_values)
    n_batch, n_steps, n_out = inputs.n_batch, inputs.n_steps, synapses.w_in.shape[1]
    v_out = np.empty((n_batch, n_steps, n_out) if not spiking else (0, 0, 0), dtype)
    kernel = specialise(delay_loop.delayed_forward, model)

    def run(out_step, out_unit, out_x1, out_x2, out_count):
        kernel(inputs.ptr, inputs.step, inputs.unit, inputs.value, *synapses.kernel_arrays(),
               table, n_steps, synapses.n_slots, spiking,
               out_step, out_unit, out_x1, out_x2, out_count, v_out)

    if not spiking:  # readout: no spike buffers, V is written into v_out
        no_i, no_f = np.empty((n_batch, 0), np.int32), np.empty((n_batch, 0), dtype)
        run(no_i, no_i, no_f, no_f, np.zeros(n_batch, dtype=np.int64))
        return v_out
    return simulate_spikes("delayed_" + model.name, n_batch, n_steps, n_out,
                           model.n_spike_values, dtype, run)


def delayed_backward(inputs: Events, synapses: DelayedSynapses, neurons: NeuronArrays,
                     spikes: Events | None = None, spike_dldt: np.ndarray | None = None,
                     grad_v: np.ndarray | None = None, want_input_timing: bool = False,
                     want_trace: bool = False, min_vdot: float = DEFAULT_MIN_VDOT,
                     backend: str = "event") -> DelayGrads:
    """EventProp backward of a delayed layer. Spiking: pass its ``spikes`` and their
    consumer timing ``spike_dldt`` [E]; readout: pass ``grad_v`` = dL/dV [B, T, N]."""
    check_backend(backend)
    require_eventprop(neurons.model)
    spiking = spikes is not None
    dtype = synapses.w_in.dtype
    inputs = inputs.astype(dtype)
    model, table, dt = neurons.model, neurons.table, neurons.dt
    n_batch, n_steps, n_out = inputs.n_batch, inputs.n_steps, synapses.w_in.shape[1]
    if backend == "reference":
        dense = dict(spikes=None, x1=None, x2=None, dldt_out=None)
        if spiking:
            extra = spikes.isyn if spikes.extra is None else spikes.extra
            dense = dict(spikes=spikes.to_dense(dtype), x1=spikes.dense_of(spikes.isyn, dtype),
                         x2=spikes.dense_of(extra, dtype),
                         dldt_out=spikes.dense_of(np.asarray(spike_dldt, dtype), dtype))
        out = delay_reference.delayed_backward(
            inputs.to_dense(), *synapses.reference_arrays(), grad_v=grad_v, model=model,
            table=table, dt=dt, spiking=spiking, min_vdot=min_vdot, **dense,
        )  # fmt: skip
        return DelayGrads(
            out["grad_w_in"], out["grad_d_in"], out["grad_w_rec"], out["grad_d_rec"],
            gather_events(out["in_dldt"], inputs) if want_input_timing else None,
            out["trace"] if want_trace else None,
        )  # fmt: skip
    chunks = n_chunks(n_batch)
    arrays = synapses.kernel_arrays()
    gw_in = np.zeros((chunks, *synapses.w_in.shape), dtype)
    gd_in = np.zeros_like(gw_in)
    gw_rec = np.zeros((chunks, *arrays[3].shape), dtype)
    gd_rec = np.zeros_like(gw_rec)
    in_dldt = np.zeros(inputs.n_events if want_input_timing else 0, dtype)
    trace = np.zeros((n_batch, n_steps, n_out) if want_trace else (0, 0, 0), dtype)
    dldt = np.asarray(spike_dldt, dtype) if spiking else np.zeros(0, dtype)
    gv = np.zeros((0, 0, 0), dtype) if spiking else np.ascontiguousarray(grad_v, dtype=dtype)
    specialise(delay_loop.delayed_backward, model)(
        inputs.ptr, inputs.step, inputs.unit, inputs.value, *arrays, table, 1.0 / dt, n_steps,
        synapses.n_slots, spiking, *spike_arrays(spikes, n_batch, dtype), dldt, gv, min_vdot,
        gw_in, gd_in, gw_rec, gd_rec, in_dldt, want_input_timing, trace, want_trace,
    )  # fmt: skip
    has_rec = synapses.w_rec is not None
    return DelayGrads(
        gw_in.sum(axis=0), gd_in.sum(axis=0),
        gw_rec.sum(axis=0) if has_rec else None, gd_rec.sum(axis=0) if has_rec else None,
        in_dldt if want_input_timing else None, trace if want_trace else None,
    )  # fmt: skip
