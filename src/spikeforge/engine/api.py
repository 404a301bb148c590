"""Engine entry points for one layer with dense synapses, for any neuron model.

Two backends compute the same thing:
  * ``"event"``     the compiled, event-driven Numba driver (:mod:`event_loop`) bound to
                    the layer's neuron model; the default on CPU;
  * ``"reference"`` the dense NumPy loop (:mod:`dense_loop`), for checking.
Both take sparse :class:`Events` or a dense ``[B, T, in]`` array and return
:class:`Events` (spiking layers; ``isyn``/``extra`` hold the model's per-spike values)
or V ``[B, T, N]`` (readouts), so callers never see the difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from spikeforge.engine import dense_loop, event_loop
from spikeforge.engine.specialise import specialise
from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events
from spikeforge.neurons import model_of
from spikeforge.neurons.base import NeuronModel

BACKENDS = ("event", "reference")
DEFAULT_MIN_VDOT = 1e-2
"""Lower bound on tau_mem * dV/dt (the jump denominator) at a spike in the adjoint jump
(avoids division by ~0 for grazing threshold crossings)."""

DENSE_INPUT_DENSITY = 0.18
"""Input density (non-zero fraction of [B, T, in]) from which the dense formulation (one
GEMM for all input currents) beats the event scatter; measured by
``benchmarks/input_crossover.py`` (see benchmarks/README.md)."""

LayerInput = Events | np.ndarray
"""A layer's input: sparse :class:`Events`, or a dense ``[B, T, in]`` array (GEMM path)."""

_capacity_hint: dict[tuple[str, int, int], int] = {}


@dataclass(frozen=True)
class NeuronArrays:
    """A population as the engine sees it: its neuron model, the per-neuron factor table
    ``[K, N]`` in the compute dtype (rows: ``model.factor_names``), the time step ``dt``
    (ms) and whether it spikes (False: a leaky-integrator readout)."""

    model: NeuronModel
    table: np.ndarray
    dt: float
    spiking: bool

    @classmethod
    def from_params(cls, params, size: int, dt: float, dtype,
                    tau_mem: np.ndarray | None = None,
                    tau_syn: np.ndarray | None = None,
                    vectors: dict[str, np.ndarray] | None = None) -> NeuronArrays:
        """Factor table of ``size`` neurons with parameters ``params`` (any registered
        neuron model), optional per-neuron time constants (ms, [size]) and optional
        further per-neuron values the model's ``factors`` reads by name (``vectors``,
        float64 [size]; e.g. adLIF's learned ``a``, ``b``, ``tau_adapt``)."""
        model = model_of(params)

        def per_neuron(values, default: float) -> np.ndarray:
            if values is None:
                return np.full(size, float(default))
            return np.asarray(values, dtype=np.float64).reshape(size)

        given = {"tau_mem": tau_mem, "tau_syn": tau_syn}
        taus = {name: per_neuron(given[name], getattr(params, name))
                for name in given if hasattr(params, name)}
        taus.update(vectors or {})
        table = np.stack(model.factors(params, dt, taus, np))
        return cls(model, np.ascontiguousarray(table, dtype=dtype), float(dt),
                   bool(params.spiking))

    @property
    def size(self) -> int:
        return int(self.table.shape[1])

    def factor(self, name: str) -> np.ndarray:
        """The factor-table row ``name`` ([N])."""
        return self.table[self.model.row(name)]


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


def check_backend(backend: str) -> None:
    """Raise :class:`SpikeforgeError` unless ``backend`` is one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise SpikeforgeError(f"unknown engine backend {backend!r}; choose one of {BACKENDS}")


def require_eventprop(model: NeuronModel) -> None:
    """Raise :class:`SpikeforgeError` unless the model has an EventProp adjoint."""
    if not model.supports("eventprop"):
        raise SpikeforgeError(f"the {model.name} neuron model has no EventProp gradient; "
                              f"train it with method='bptt'")


def n_chunks(n_batch: int) -> int:
    """Number of parallel chunks a backward kernel accumulates gradients in."""
    return max(1, min(n_batch, numba.get_num_threads()))


def choose_input(x: np.ndarray, density_threshold: float = DENSE_INPUT_DENSITY) -> LayerInput:
    """Pick the cheaper formulation for dense input ``x [B, T, in]``: the array itself
    (GEMM) when at least ``density_threshold`` of it is non-zero, else its events."""
    events = Events.from_dense_if_sparse(x, density_threshold)  # one counting pass decides
    return np.ascontiguousarray(x) if events is None else events


def input_shape(inputs: LayerInput) -> tuple[int, int]:
    """(n_batch, n_steps) of either input form."""
    if isinstance(inputs, Events):
        return inputs.n_batch, inputs.n_steps
    return inputs.shape[0], inputs.shape[1]


def dense_of_input(inputs: LayerInput, dtype) -> np.ndarray:
    """Either input form as a dense ``[B, T, in]`` array."""
    if isinstance(inputs, Events):
        return inputs.to_dense(dtype)
    return inputs.astype(dtype, copy=False)


def gather_events(dense: np.ndarray, events: Events) -> np.ndarray:
    """Per-event share of a dense [B, T, units] array (events may coincide)."""
    index = (events.sample_index(), events.step, events.unit)
    return dense[index] * events.value / events.to_dense()[index]


def empty_rows(w: np.ndarray, dtype=None) -> np.ndarray:
    """A [0, N] stand-in for an absent weight matrix (kernels test ``shape[0] > 0``)."""
    return np.zeros((0, w.shape[1]), dtype=dtype or w.dtype)


def spikes_from_dense(run: dense_loop.DenseRun, n_values: int) -> Events:
    """Events of a dense reference run with the per-spike values gathered at the spikes."""
    out = Events.from_dense(run.out)
    index = (out.sample_index(), out.step, out.unit)
    out.isyn = run.x1[index]
    out.extra = run.x2[index] if n_values > 1 else None
    return out


def simulate_spikes(kind: str, n_batch: int, n_steps: int, n_out: int, n_values: int,
                    dtype, run) -> Events:
    """Run a compiled spiking forward kernel into padded [B, cap] spike buffers.

    ``run(out_step, out_unit, out_x1, out_x2, out_count)`` calls the kernel, which writes
    at most ``cap`` spikes per sample and the true counts. The buffers grow until every
    sample fits; the capacity is remembered per (kind, T, N) so later calls of the same
    shape run the kernel once. Returns the spikes as :class:`Events` with the model's
    per-spike values in ``isyn`` (and ``extra`` when ``n_values`` is 2).
    """
    key = (kind, n_steps, n_out)
    cap = max(64, _capacity_hint.get(key, n_steps * n_out // 50 + 64))
    while True:
        cap = min(cap, n_steps * n_out)
        out_step = np.empty((n_batch, cap), dtype=np.int32)
        out_unit = np.empty((n_batch, cap), dtype=np.int32)
        out_x1 = np.empty((n_batch, cap), dtype=dtype)
        out_x2 = np.empty((n_batch, cap if n_values > 1 else 0), dtype=dtype)
        out_count = np.zeros(n_batch, dtype=np.int64)
        run(out_step, out_unit, out_x1, out_x2, out_count)
        most = int(out_count.max()) if n_batch else 0
        if most <= cap:
            break
        cap = int(most * 1.25) + 16
    _capacity_hint[key] = int(most * 1.25) + 16
    mask = np.arange(cap)[None, :] < out_count[:, None]
    ptr = np.zeros(n_batch + 1, dtype=np.int64)
    np.cumsum(out_count, out=ptr[1:])
    return Events(
        n_batch, n_steps, n_out, ptr, out_step[mask], out_unit[mask],
        np.ones(int(ptr[-1]), dtype=dtype), out_x1[mask],
        out_x2[mask] if n_values > 1 else None,
    )  # fmt: skip


def event_arrays(inputs: LayerInput, w_in: np.ndarray, with_currents: bool = True):
    """(ptr, step, unit, value, currents) kernel arguments for either input form; dense
    input gets no events and (if ``with_currents``) its currents x @ w_in [B, T, N]."""
    no_current = np.zeros((0, 0, 0), dtype=w_in.dtype)
    if isinstance(inputs, Events):
        return inputs.ptr, inputs.step, inputs.unit, inputs.value, no_current
    n_batch = inputs.shape[0]
    currents = np.matmul(inputs, w_in) if with_currents else no_current
    return (np.zeros(n_batch + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32),
            np.zeros(0, w_in.dtype), currents)


def _cast(inputs: LayerInput, dtype) -> LayerInput:
    return inputs.astype(dtype) if isinstance(inputs, Events) else inputs


def forward(inputs: LayerInput, w_in: np.ndarray, w_rec: np.ndarray | None,
            neurons: NeuronArrays, backend: str = "event") -> Events | np.ndarray:
    """Run a layer on events or dense input ``[B, T, in]`` (weights [pre, post]).

    Returns its spikes as :class:`Events` (with the per-spike values the backward needs)
    for a spiking population, or V ``[B, T, N]`` after each step's integration for a
    readout."""
    check_backend(backend)
    inputs = _cast(inputs, w_in.dtype)
    model, table = neurons.model, neurons.table
    if backend == "reference":
        x = dense_of_input(inputs, w_in.dtype)
        run = dense_loop.simulate(model, table, x @ w_in, w_rec, neurons.spiking)
        return spikes_from_dense(run, model.n_spike_values) if neurons.spiking else run.out
    n_batch, n_steps = input_shape(inputs)
    n_out = w_in.shape[1]
    ptr, step, unit, value, currents = event_arrays(inputs, w_in)
    rec = empty_rows(w_in) if w_rec is None else w_rec
    kernel = specialise(event_loop.forward, model)
    if not neurons.spiking:
        v_out = np.empty((n_batch, n_steps, n_out), dtype=w_in.dtype)
        no_i, no_f = np.empty((n_batch, 0), np.int32), np.empty((n_batch, 0), w_in.dtype)
        kernel(ptr, step, unit, value, w_in, rec, currents, table, n_steps, False,
               no_i, no_i, no_f, no_f, np.zeros(n_batch, np.int64), v_out)
        return v_out
    no_v = np.zeros((0, 0, 0), dtype=w_in.dtype)

    def run(out_step, out_unit, out_x1, out_x2, out_count):
        kernel(ptr, step, unit, value, w_in, rec, currents, table, n_steps, True,
               out_step, out_unit, out_x1, out_x2, out_count, no_v)

    return simulate_spikes(model.name, n_batch, n_steps, n_out, model.n_spike_values,
                           w_in.dtype, run)


def spike_arrays(spikes: Events | None, n_batch: int, dtype):
    """(ptr, step, unit, x1, x2) kernel arguments of a layer's own spikes (empty for a
    readout)."""
    if spikes is None:
        return (np.zeros(n_batch + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32),
                np.zeros(0, dtype), np.zeros(0, dtype))
    x2 = np.zeros(0, dtype) if spikes.extra is None else spikes.extra.astype(dtype, copy=False)
    return spikes.ptr, spikes.step, spikes.unit, spikes.isyn.astype(dtype, copy=False), x2


def backward(
    inputs: LayerInput,
    w_in: np.ndarray,
    w_rec: np.ndarray | None,
    neurons: NeuronArrays,
    spikes: Events | None = None,
    spike_dldt: np.ndarray | None = None,
    grad_v: np.ndarray | None = None,
    want_input_timing: bool = False,
    want_trace: bool = False,
    min_vdot: float = DEFAULT_MIN_VDOT,
    backend: str = "event",
) -> LayerGrads:
    """EventProp backward of :func:`forward`.

    Spiking layers pass their ``spikes`` (from :func:`forward`) and ``spike_dldt`` [E],
    the timing sensitivity dL/dt_k each spike received from its consumers; readouts pass
    ``grad_v`` = dL/dV [B, T, N].
    """
    check_backend(backend)
    require_eventprop(neurons.model)
    inputs = _cast(inputs, w_in.dtype)
    dtype = w_in.dtype
    model, table = neurons.model, neurons.table
    spiking = spikes is not None
    if spiking:
        spike_dldt = np.asarray(spike_dldt).astype(dtype, copy=False)
    if backend == "reference":
        kwargs = {}
        if spiking:
            kwargs = dict(spikes=spikes.to_dense(dtype), x1=spikes.dense_of(spikes.isyn, dtype),
                          x2=None if spikes.extra is None else spikes.dense_of(spikes.extra, dtype),
                          spike_dldt=spikes.dense_of(spike_dldt, dtype))
        else:
            kwargs = dict(grad_v=np.asarray(grad_v, dtype=dtype))
        grads = dense_loop.adjoint(model, table, neurons.dt, dense_of_input(inputs, dtype), w_in,
                                   w_rec, min_vdot=min_vdot,
                                   want_input_timing=want_input_timing, **kwargs)
        return LayerGrads(
            grads.grad_w_in, grads.grad_w_rec,
            gather_events(grads.in_dldt, inputs) if want_input_timing else None,
            grads.lam_i_trace if want_trace else None,
        )  # fmt: skip
    n_batch, n_steps = input_shape(inputs)
    n_out = w_in.shape[1]
    chunks = n_chunks(n_batch)
    dense = not isinstance(inputs, Events)
    gw_in = np.zeros((chunks, 0 if dense else w_in.shape[0], n_out), dtype=dtype)
    in_dldt = np.zeros(inputs.n_events if want_input_timing and not dense else 0, dtype=dtype)
    trace = np.zeros((n_batch, n_steps, n_out) if want_trace or dense else (0, 0, 0), dtype)
    rec = empty_rows(w_in) if w_rec is None else w_rec
    gw_rec = np.zeros((chunks, *rec.shape), dtype=dtype)
    ptr, step, unit, value, _ = event_arrays(inputs, w_in, with_currents=False)
    sp = spike_arrays(spikes, n_batch, dtype)
    dldt = spike_dldt if spiking else np.zeros(0, dtype)
    gv = np.zeros((0, 0, 0), dtype) if spiking else np.ascontiguousarray(grad_v, dtype=dtype)
    specialise(event_loop.backward, model)(
        ptr, step, unit, value, w_in, rec, table, 1.0 / neurons.dt, n_steps, spiking,
        *sp, dldt, gv, min_vdot, gw_in, gw_rec, in_dldt, want_input_timing,
        trace, trace.shape[0] > 0,
    )  # fmt: skip
    if dense:  # weight gradient of dense input: x^T lam_I, one GEMM
        x = inputs.reshape(-1, inputs.shape[-1])
        grad_w_in = x.T @ trace.reshape(-1, n_out).astype(x.dtype, copy=False)
    else:
        grad_w_in = gw_in.sum(axis=0)
    return LayerGrads(
        grad_w_in,
        None if w_rec is None else gw_rec.sum(axis=0),
        in_dldt if want_input_timing else None,
        trace if want_trace else None,
    )
