"""Engine entry points for one layer: forward and EventProp backward on sparse events.

Two backends compute the same thing:
  * ``"event"``     compiled, event-driven Numba kernels (:mod:`cpu_kernels`), default on CPU;
  * ``"reference"`` dense NumPy loops (:mod:`reference`), for checking.
Both take and return :class:`Events`, so callers never see the difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from spikeforge.engine import cpu_kernels, reference
from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events
from spikeforge.model.neurons import LIFParams

BACKENDS = ("event", "reference")
DEFAULT_MIN_VDOT = 1e-2
"""Lower bound on tau_mem * dV/dt = I - theta at a spike in the adjoint jump (avoids
division by ~0 for grazing threshold crossings)."""

_capacity_hint: dict[tuple[int, int], int] = {}


@dataclass(frozen=True)
class NeuronArrays:
    """Per-neuron parameter vectors [N] in the compute dtype, derived from :class:`LIFParams`."""

    alpha_mem: np.ndarray
    alpha_syn: np.ndarray
    syn_gain: np.ndarray
    threshold: np.ndarray
    tau_mem: np.ndarray
    tau_syn: np.ndarray
    dt: float  # ms, the simulation step (the backward's timing drive differences over it)

    @classmethod
    def from_params(cls, params: LIFParams, size: int, dt: float, dtype) -> NeuronArrays:
        decays = params.decays(dt)

        def full(value: float) -> np.ndarray:
            return np.full(size, value, dtype=dtype)

        return cls(
            alpha_mem=full(decays.alpha_mem),
            alpha_syn=full(decays.alpha_syn),
            syn_gain=full(decays.syn_gain),
            threshold=full(params.threshold if params.spiking else np.inf),
            tau_mem=full(params.tau_mem),
            tau_syn=full(params.tau_syn),
            dt=float(dt),
        )


@dataclass
class LayerGrads:
    """Gradients of one layer's backward pass.

    grad_w_in [in, N], grad_w_rec [N, N] or None, input_dldt [E_in] timing sensitivity of
    each input event (None unless requested), lam_i_trace [B, T, N] dL/dI after each
    step's input (None unless requested; gives dL/dx = lam_i_trace @ W_in^T).
    """

    grad_w_in: np.ndarray
    grad_w_rec: np.ndarray | None
    input_dldt: np.ndarray | None
    lam_i_trace: np.ndarray | None


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise SpikeforgeError(f"unknown engine backend {backend!r}; choose one of {BACKENDS}")


def _n_chunks(n_batch: int) -> int:
    return max(1, min(n_batch, numba.get_num_threads()))


def _empty_rec(w_in: np.ndarray) -> np.ndarray:
    return np.zeros((0, w_in.shape[1]), dtype=w_in.dtype)


DENSE_INPUT_DENSITY = 0.18
"""Input density (non-zero fraction of [B, T, in]) from which the dense formulation (one
GEMM for all input currents) beats the event scatter; measured by
``benchmarks/input_crossover.py`` (see benchmarks/README.md)."""

LayerInput = Events | np.ndarray
"""A layer's input: sparse :class:`Events`, or a dense ``[B, T, in]`` array (GEMM path)."""


def choose_input(x: np.ndarray, density_threshold: float = DENSE_INPUT_DENSITY) -> LayerInput:
    """Pick the cheaper formulation for dense input ``x [B, T, in]``: the array itself
    (GEMM) when at least ``density_threshold`` of it is non-zero, else its events."""
    if x.size and np.count_nonzero(x) >= density_threshold * x.size:
        return np.ascontiguousarray(x)
    return Events.from_dense(x)


def _event_arrays(inputs: LayerInput, w_in: np.ndarray, with_currents: bool = True):
    """(ptr, step, unit, value, currents) kernel arguments for either input form; dense
    input gets no events and (if ``with_currents``) its currents x @ w_in [B, T, N]."""
    no_current = np.zeros((0, 0, 0), dtype=w_in.dtype)
    if isinstance(inputs, Events):
        return inputs.ptr, inputs.step, inputs.unit, inputs.value, no_current
    n_batch = inputs.shape[0]
    currents = np.matmul(inputs, w_in) if with_currents else no_current
    return (np.zeros(n_batch + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32),
            np.zeros(0, w_in.dtype), currents)


def _shape(inputs: LayerInput) -> tuple[int, int]:
    """(n_batch, n_steps) of either input form."""
    if isinstance(inputs, Events):
        return inputs.n_batch, inputs.n_steps
    return inputs.shape[0], inputs.shape[1]


def _dense(inputs: LayerInput, dtype) -> np.ndarray:
    return inputs.to_dense() if isinstance(inputs, Events) else inputs.astype(dtype, copy=False)


def _cast(inputs: LayerInput, dtype) -> LayerInput:
    return inputs.astype(dtype) if isinstance(inputs, Events) else inputs


def spikes_from_dense(spikes: np.ndarray, isyn: np.ndarray, *extras: np.ndarray):
    """Events of a dense reference spike array [B, T, N] with ``isyn`` (and any further
    per-spike quantities given as dense [B, T, N] arrays) gathered at the spikes."""
    out = Events.from_dense(spikes)
    index = (out.sample_index(), out.step, out.unit)
    out.isyn = isyn[index]
    return out, [extra[index] for extra in extras]


def simulate_spikes(kind: str, n_batch: int, n_steps: int, n_out: int, dtype, run,
                    n_extra: int = 0):
    """Run a compiled spiking forward kernel into padded [B, cap] spike buffers.

    ``run(out_step, out_unit, out_isyn, extras, out_count)`` calls the kernel, which
    writes at most ``cap`` spikes per sample and the true counts. The buffers grow until
    every sample fits; the capacity is remembered per (kind, T, N) so later calls of the
    same shape run the kernel once. Returns (Events with ``isyn``, the ``n_extra`` further
    per-spike arrays compacted like the spikes).
    """
    key = (kind, n_steps, n_out)
    cap = max(64, _capacity_hint.get(key, n_steps * n_out // 50 + 64))
    while True:
        cap = min(cap, n_steps * n_out)
        out_step = np.empty((n_batch, cap), dtype=np.int32)
        out_unit = np.empty((n_batch, cap), dtype=np.int32)
        out_isyn = np.empty((n_batch, cap), dtype=dtype)
        extras = [np.empty((n_batch, cap), dtype=dtype) for _ in range(n_extra)]
        out_count = np.zeros(n_batch, dtype=np.int64)
        run(out_step, out_unit, out_isyn, extras, out_count)
        most = int(out_count.max()) if n_batch else 0
        if most <= cap:
            break
        cap = int(most * 1.25) + 16
    _capacity_hint[key] = int(most * 1.25) + 16
    mask = np.arange(cap)[None, :] < out_count[:, None]
    ptr = np.zeros(n_batch + 1, dtype=np.int64)
    np.cumsum(out_count, out=ptr[1:])
    events = Events(
        n_batch, n_steps, n_out, ptr, out_step[mask], out_unit[mask],
        np.ones(int(ptr[-1]), dtype=dtype), out_isyn[mask],
    )  # fmt: skip
    return events, [extra[mask] for extra in extras]


def lif_forward(
    inputs: LayerInput,
    w_in: np.ndarray,
    w_rec: np.ndarray | None,
    neurons: NeuronArrays,
    backend: str = "event",
) -> Events:
    """Run a LIF layer on events or dense input ``[B, T, in]``; returns its spikes (with
    the synaptic current at each spike)."""
    _check_backend(backend)
    inputs = _cast(inputs, w_in.dtype)
    if backend == "reference":
        spikes, isyn = reference.lif_forward(
            _dense(inputs, w_in.dtype), w_in, w_rec, neurons.alpha_mem, neurons.alpha_syn,
            neurons.syn_gain, neurons.threshold,
        )  # fmt: skip
        return spikes_from_dense(spikes, isyn)[0]
    n_batch, n_steps = _shape(inputs)
    ptr, step, unit, value, currents = _event_arrays(inputs, w_in)
    rec = _empty_rec(w_in) if w_rec is None else w_rec

    def run(out_step, out_unit, out_isyn, _extras, out_count):
        cpu_kernels.lif_forward(
            ptr, step, unit, value, w_in, rec, currents, neurons.alpha_mem,
            neurons.alpha_syn, neurons.syn_gain, neurons.threshold, n_steps,
            out_step, out_unit, out_isyn, out_count,
        )  # fmt: skip

    return simulate_spikes("lif", n_batch, n_steps, w_in.shape[1], w_in.dtype, run)[0]


def li_forward(
    inputs: LayerInput, w_in: np.ndarray, neurons: NeuronArrays, backend: str = "event"
) -> np.ndarray:
    """Run a leaky-integrator readout on events or dense input; returns V [B, T, N]."""
    _check_backend(backend)
    inputs = _cast(inputs, w_in.dtype)
    if backend == "reference":
        return reference.li_forward(
            _dense(inputs, w_in.dtype), w_in, neurons.alpha_mem, neurons.alpha_syn, neurons.syn_gain
        )
    n_batch, n_steps = _shape(inputs)
    ptr, step, unit, value, currents = _event_arrays(inputs, w_in)
    v_out = np.empty((n_batch, n_steps, w_in.shape[1]), dtype=w_in.dtype)
    cpu_kernels.li_forward(
        ptr, step, unit, value, w_in, currents,
        neurons.alpha_mem, neurons.alpha_syn, neurons.syn_gain, n_steps, v_out,
    )  # fmt: skip
    return v_out


def _backward_buffers(inputs: LayerInput, w_in: np.ndarray, want_timing: bool,
                      want_trace: bool):
    """Zeroed outputs of a compiled backward kernel: per-chunk weight gradients
    [chunks, in, N], per-input-event timing [E_in] and the lam_I trace [B, T, N]
    (empty when not requested; always filled for dense input, whose weight gradient is
    the GEMM x^T lam_I)."""
    n_batch, n_steps = _shape(inputs)
    chunks = _n_chunks(n_batch)
    dense = not isinstance(inputs, Events)
    rows = 0 if dense else w_in.shape[0]
    gw_in = np.zeros((chunks, rows, w_in.shape[1]), dtype=w_in.dtype)
    n_timing = inputs.n_events if want_timing and not dense else 0
    in_dldt = np.zeros(n_timing, dtype=w_in.dtype)
    trace_shape = (n_batch, n_steps, w_in.shape[1]) if want_trace or dense else (0, 0, 0)
    return gw_in, in_dldt, np.zeros(trace_shape, dtype=w_in.dtype)


def _input_weight_grad(inputs: LayerInput, gw_in: np.ndarray, trace: np.ndarray) -> np.ndarray:
    """Sum the per-chunk event gradients, or for dense input x: x^T lam_I (one GEMM)."""
    if isinstance(inputs, Events):
        return gw_in.sum(axis=0)
    x = inputs.reshape(-1, inputs.shape[-1])
    return x.T @ trace.reshape(-1, trace.shape[-1]).astype(x.dtype, copy=False)


def _gather(dense: np.ndarray, events: Events) -> np.ndarray:
    """Per-event share of a dense [B, T, units] array (events may coincide)."""
    index = (events.sample_index(), events.step, events.unit)
    totals = events.to_dense()[index]
    return dense[index] * events.value / totals


def lif_backward(
    inputs: LayerInput,
    spikes: Events,
    w_in: np.ndarray,
    w_rec: np.ndarray | None,
    neurons: NeuronArrays,
    spike_dldt: np.ndarray,
    want_input_timing: bool,
    want_trace: bool,
    min_vdot: float = DEFAULT_MIN_VDOT,
    backend: str = "event",
) -> LayerGrads:
    """EventProp backward of a LIF layer given dL/dt_k of each of its spikes (``spike_dldt``)."""
    _check_backend(backend)
    inputs = _cast(inputs, w_in.dtype)
    spike_dldt = spike_dldt.astype(w_in.dtype, copy=False)
    if backend == "reference":
        x = _dense(inputs, w_in.dtype)
        dense_dldt = spikes.dense_of(spike_dldt, w_in.dtype)
        spike_dense = spikes.to_dense(w_in.dtype)
        isyn_dense = spikes.dense_of(spikes.isyn, w_in.dtype)
        gw_in, gw_rec, in_dldt, trace = reference.lif_backward(
            x, w_in, w_rec, spike_dense, isyn_dense, dense_dldt, neurons.alpha_mem,
            neurons.alpha_syn, neurons.syn_gain, neurons.threshold, neurons.tau_mem,
            neurons.dt, min_vdot,
        )  # fmt: skip
        return LayerGrads(
            gw_in, gw_rec, _gather(in_dldt, inputs) if want_input_timing else None,
            trace if want_trace else None,
        )  # fmt: skip
    gw_in, in_dldt, trace = _backward_buffers(inputs, w_in, want_input_timing, want_trace)
    rec = _empty_rec(w_in) if w_rec is None else w_rec
    gw_rec = np.zeros((gw_in.shape[0], *rec.shape), dtype=w_in.dtype)
    ptr, step, unit, value, _ = _event_arrays(inputs, w_in, with_currents=False)
    n_steps = _shape(inputs)[1]
    cpu_kernels.lif_backward(
        ptr, step, unit, value, w_in, rec,
        neurons.alpha_mem, neurons.alpha_syn, neurons.syn_gain, neurons.threshold,
        neurons.tau_mem, 1.0 / neurons.dt, n_steps,
        spikes.ptr, spikes.step, spikes.unit, spikes.isyn, spike_dldt, min_vdot,
        gw_in, gw_rec, in_dldt, want_input_timing, trace, trace.shape[0] > 0,
    )  # fmt: skip
    return LayerGrads(
        _input_weight_grad(inputs, gw_in, trace),
        None if w_rec is None else gw_rec.sum(axis=0),
        in_dldt if want_input_timing else None,
        trace if want_trace else None,
    )


def li_backward(
    inputs: LayerInput,
    w_in: np.ndarray,
    neurons: NeuronArrays,
    grad_v: np.ndarray,
    want_input_timing: bool,
    want_trace: bool,
    backend: str = "event",
) -> LayerGrads:
    """Backward of an LI readout given dL/dV [B, T, N]."""
    _check_backend(backend)
    inputs = _cast(inputs, w_in.dtype)
    grad_v = np.ascontiguousarray(grad_v, dtype=w_in.dtype)
    if backend == "reference":
        gw_in, in_dldt, trace = reference.li_backward(
            _dense(inputs, w_in.dtype), w_in, grad_v, neurons.alpha_mem, neurons.alpha_syn,
            neurons.syn_gain, neurons.dt,
        )  # fmt: skip
        return LayerGrads(
            gw_in, None, _gather(in_dldt, inputs) if want_input_timing else None,
            trace if want_trace else None,
        )  # fmt: skip
    gw_in, in_dldt, trace = _backward_buffers(inputs, w_in, want_input_timing, want_trace)
    ptr, step, unit, value, _ = _event_arrays(inputs, w_in, with_currents=False)
    cpu_kernels.li_backward(
        ptr, step, unit, value, w_in, neurons.alpha_mem,
        neurons.alpha_syn, neurons.syn_gain, 1.0 / neurons.dt,
        _shape(inputs)[1], grad_v, gw_in, in_dldt, want_input_timing, trace,
        trace.shape[0] > 0,
    )  # fmt: skip
    return LayerGrads(
        _input_weight_grad(inputs, gw_in, trace), None,
        in_dldt if want_input_timing else None, trace if want_trace else None,
    )  # fmt: skip
