"""Engine entry points for an adaptive LIF (ALIF) layer on sparse events.

Same two backends as :mod:`spikeforge.engine.layers` (``"event"``: Numba kernels of
:mod:`alif_kernels`; ``"reference"``: dense NumPy of :mod:`alif_reference`). The spikes
come back as :class:`Events` (``isyn``: I at each spike) plus the adaptation variable A
just before each spike's jump [E], both needed by the adjoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from spikeforge.engine import alif_kernels, alif_reference
from spikeforge.engine.layers import (
    BACKENDS,
    DEFAULT_MIN_VDOT,
    LayerGrads,
    NeuronArrays,
    simulate_spikes,
    spikes_from_dense,
)
from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events
from spikeforge.model.neurons import ALIFParams


@dataclass(frozen=True)
class AdaptArrays:
    """Per-neuron adaptation parameters [N]: decay exp(-dt/tau_adapt), beta, tau_adapt."""

    alpha_adapt: np.ndarray
    beta: np.ndarray
    tau_adapt: np.ndarray

    @classmethod
    def from_params(cls, params: ALIFParams, size: int, dt: float, dtype) -> AdaptArrays:
        def full(value: float) -> np.ndarray:
            return np.full(size, value, dtype=dtype)

        return cls(full(params.adapt_decay(dt)), full(params.beta), full(params.tau_adapt))


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise SpikeforgeError(f"unknown engine backend {backend!r}; choose one of {BACKENDS}")


def _rec(w_in: np.ndarray, w_rec: np.ndarray | None) -> np.ndarray:
    return np.zeros((0, w_in.shape[1]), dtype=w_in.dtype) if w_rec is None else w_rec


def alif_forward(inputs: Events, w_in: np.ndarray, w_rec: np.ndarray | None,
                 neurons: NeuronArrays, adapt: AdaptArrays,
                 backend: str = "event") -> tuple[Events, np.ndarray]:
    """Run an ALIF layer; returns (spikes with ``isyn``, A before each spike [E])."""
    _check_backend(backend)
    inputs = inputs.astype(w_in.dtype)
    n = neurons
    if backend == "reference":
        spikes, isyn, a_spk = alif_reference.alif_forward(
            inputs.to_dense(), w_in, w_rec, n.alpha_mem, n.alpha_syn, n.syn_gain,
            n.threshold, adapt.alpha_adapt, adapt.beta,
        )  # fmt: skip
        out, (a_at_spikes,) = spikes_from_dense(spikes, isyn, a_spk)
        return out, a_at_spikes
    n_steps = inputs.n_steps

    def run(out_step, out_unit, out_isyn, extras, out_count):
        alif_kernels.alif_forward(
            inputs.ptr, inputs.step, inputs.unit, inputs.value, w_in, _rec(w_in, w_rec),
            n.alpha_mem, n.alpha_syn, n.syn_gain, n.threshold, adapt.alpha_adapt,
            adapt.beta, n_steps, out_step, out_unit, out_isyn, extras[0], out_count,
        )  # fmt: skip

    events, (adapt_at_spikes,) = simulate_spikes(
        "alif", inputs.n_batch, n_steps, w_in.shape[1], w_in.dtype, run, n_extra=1)
    return events, adapt_at_spikes


def _gather(dense: np.ndarray, events: Events) -> np.ndarray:
    """Per-event share of a dense [B, T, units] array (events may coincide)."""
    index = (events.sample_index(), events.step, events.unit)
    return dense[index] * events.value / events.to_dense()[index]


def alif_backward(
    inputs: Events,
    spikes: Events,
    spike_adapt: np.ndarray,
    w_in: np.ndarray,
    w_rec: np.ndarray | None,
    neurons: NeuronArrays,
    adapt: AdaptArrays,
    spike_dldt: np.ndarray,
    want_input_timing: bool,
    want_trace: bool,
    min_vdot: float = DEFAULT_MIN_VDOT,
    backend: str = "event",
) -> LayerGrads:
    """EventProp backward of an ALIF layer given dL/dt_k of each of its spikes."""
    _check_backend(backend)
    inputs = inputs.astype(w_in.dtype)
    dtype = w_in.dtype
    spike_dldt = spike_dldt.astype(dtype, copy=False)
    spike_adapt = spike_adapt.astype(dtype, copy=False)
    n = neurons
    if backend == "reference":
        dense = {"dldt": spikes.dense_of(spike_dldt, dtype),
                 "isyn": spikes.dense_of(spikes.isyn, dtype),
                 "adapt": spikes.dense_of(spike_adapt, dtype)}
        gw_in, gw_rec, in_dldt, trace = alif_reference.alif_backward(
            inputs.to_dense(), w_in, w_rec, spikes.to_dense(dtype), dense["isyn"],
            dense["adapt"], dense["dldt"], n.alpha_mem, n.alpha_syn, n.syn_gain,
            n.threshold, adapt.alpha_adapt, adapt.beta, n.tau_mem, n.dt,
            adapt.tau_adapt, min_vdot,
        )  # fmt: skip
        return LayerGrads(
            gw_in, gw_rec, _gather(in_dldt, inputs) if want_input_timing else None,
            trace if want_trace else None,
        )  # fmt: skip
    chunks = max(1, min(inputs.n_batch, numba.get_num_threads()))
    rec = _rec(w_in, w_rec)
    gw_in = np.zeros((chunks, *w_in.shape), dtype=dtype)
    gw_rec = np.zeros((chunks, *rec.shape), dtype=dtype)
    in_dldt = np.zeros(inputs.n_events if want_input_timing else 0, dtype=dtype)
    trace_shape = (inputs.n_batch, inputs.n_steps, w_in.shape[1]) if want_trace else (0, 0, 0)
    trace = np.zeros(trace_shape, dtype=dtype)
    alif_kernels.alif_backward(
        inputs.ptr, inputs.step, inputs.unit, inputs.value, w_in, rec,
        n.alpha_mem, n.alpha_syn, n.syn_gain, n.threshold, adapt.alpha_adapt, adapt.beta,
        n.tau_mem, 1.0 / n.dt, adapt.tau_adapt, inputs.n_steps,
        spikes.ptr, spikes.step, spikes.unit, spikes.isyn, spike_adapt, spike_dldt, min_vdot,
        gw_in, gw_rec, in_dldt, want_input_timing, trace, want_trace,
    )  # fmt: skip
    return LayerGrads(
        gw_in.sum(axis=0),
        None if w_rec is None else gw_rec.sum(axis=0),
        in_dldt if want_input_timing else None,
        trace if want_trace else None,
    )
