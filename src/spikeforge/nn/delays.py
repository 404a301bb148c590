"""Layers with learnable per-synapse delays: ``DelayedLIF`` and ``DelayedLI``.

Each synapse i -> j has a weight ``weight[j, i]`` and a delay ``delay[j, i]`` in ms,
bounded to [0, max_delay] (the forward uses the clamped value, so the gradient of a delay
pushed past a bound is zero). Delays are either interpolated (a spike's current is split
over the two steps around t + d, smooth in d) or rounded to whole steps (``delay_mode``).
See :mod:`spikeforge.engine.delay_reference` for the model and the EventProp delay
gradient (Meszaros, Knight & Nowotny 2025). ``method="bptt"`` runs the same dynamics as
dense torch ops with a surrogate spike derivative (:mod:`spikeforge.nn.delay_bptt`).

Shapes: input ``[batch, time, in_features]`` or an event token from a previous spikeforge
layer; DelayedLIF returns spikes ``[batch, time, out]`` (or a token when
``dense_output=False``), DelayedLI the membrane voltage ``[batch, time, out]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from spikeforge.engine.api import BACKENDS, DEFAULT_MIN_VDOT, NeuronArrays
from spikeforge.engine.delay_layers import (
    DELAY_MODES,
    DelayedSynapses,
    DelaySteps,
    delayed_backward,
    delayed_forward,
)
from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events
from spikeforge.neurons import LIFParams, model_of
from spikeforge.nn import delay_bptt
from spikeforge.nn.functional import LayerCall, engine_weight, numpy_dtype
from spikeforge.nn.records import SpikeRecord, attach, record_of, timing_from_dense
from spikeforge.nn.time_constants import torch_table

METHODS = ("eventprop", "bptt")


@dataclass
class DelayCall(LayerCall):
    """:class:`~spikeforge.nn.functional.LayerCall` plus the delay ``mode``.

    Used by the CPU kernels; CUDA layers run the fused kernels of
    :mod:`spikeforge.nn.gpu_delays` where numba.cuda can use the GPU, and otherwise these
    CPU kernels on host copies (results and gradients moved back to the device).
    """

    mode: str = "interpolate"


def _steps(delay: torch.Tensor | None, call: DelayCall, dtype) -> DelaySteps | None:
    if delay is None:
        return None
    return DelaySteps.from_ms(engine_weight(delay), call.neurons.dt, call.mode, dtype)


def trace_input_grad(trace: torch.Tensor, w: torch.Tensor, q: torch.Tensor,
                     f: torch.Tensor) -> torch.Tensor:
    """dL/dx [B, T, in] for dense inputs from the lam_I trace [B, T, N] and the weights,
    whole-step delays and fractions [in, N]: sum_j w_ij ((1-f) tr_j[n+q] + f tr_j[n+q+1])
    (one pair of GEMMs per distinct whole-step delay)."""
    n_batch, n_steps, n_out = trace.shape
    max_q = int(q.max()) if q.numel() else 0
    padded = torch.cat([trace, trace.new_zeros((n_batch, max_q + 2, n_out))], 1)
    out = trace.new_zeros((n_batch, n_steps, w.shape[0]))
    for value in torch.unique(q).tolist():
        mask = q == value
        out += padded[:, value : value + n_steps] @ (w * (1.0 - f) * mask).t()
        out += padded[:, value + 1 : value + 1 + n_steps] @ (w * f * mask).t()
    return out


class DelayedFunction(torch.autograd.Function):
    """Delayed LIF / LI layer with EventProp backward (weights and delays)."""

    @staticmethod
    def forward(ctx, x, w_in, d_in, w_rec, d_rec, call: DelayCall):
        inputs = call.upstream.events if call.upstream is not None else Events.from_dense(
            x.detach().cpu().numpy())
        device = ctx.device = w_in.device  # CUDA without fused kernels: host copies
        w_in_np, w_rec_np = engine_weight(w_in), None if w_rec is None else engine_weight(w_rec)
        dtype = w_in_np.dtype
        steps_in, steps_rec = _steps(d_in, call, dtype), _steps(d_rec, call, dtype)
        synapses = DelayedSynapses(w_in_np, steps_in, w_rec_np, steps_rec)
        out = delayed_forward(inputs, synapses, call.neurons, call.backend)
        ctx.call, ctx.inputs = call, inputs
        ctx.synapses = synapses
        ctx.save_for_backward(x)
        ctx.shapes = (w_in.shape, None if w_rec is None else w_rec.shape)
        if not call.neurons.spiking:
            return torch.from_numpy(out).to(device)
        call.output = SpikeRecord(events=out, dt=call.neurons.dt)
        if call.dense_output:
            return torch.from_numpy(out.to_dense(dtype)).to(device)
        return torch.empty(0, dtype=w_in.dtype, device=device)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        call: DelayCall = ctx.call
        synapses = ctx.synapses
        need_x = ctx.needs_input_grad[0]
        spikes = dldt = grad_v = None
        if call.neurons.spiking:
            spikes = call.output.events
            dldt = call.output.dldt.copy()
            call.output.dldt[:] = 0.0
            if call.dense_output and grad_out is not None and grad_out.numel():
                dldt += timing_from_dense(grad_out, spikes, call.neurons.dt)
        else:
            grad_v = grad_out.detach().cpu().numpy()
        grads = delayed_backward(
            ctx.inputs, synapses, call.neurons, spikes, dldt, grad_v,
            want_input_timing=need_x and call.upstream is not None,
            want_trace=need_x and call.upstream is None, min_vdot=call.min_vdot,
            backend=call.backend,
        )  # fmt: skip
        grad_x = None
        if need_x and call.upstream is not None:
            call.upstream.dldt += grads.input_dldt
            grad_x = torch.zeros((), dtype=x.dtype, device=x.device).expand(x.shape)
        elif need_x:
            grad_x = trace_input_grad(*(torch.from_numpy(a) for a in (
                grads.lam_i_trace, synapses.w_in, synapses.d_in.q, synapses.d_in.f))).to(x)
        def back(array):
            return None if array is None else torch.from_numpy(array.T.copy()).to(ctx.device)

        return (grad_x, back(grads.grad_w_in), back(grads.grad_d_in), back(grads.grad_w_rec),
                back(grads.grad_d_rec), None)  # fmt: skip


class _DelayedLayer(nn.Module):
    """Shared parameters, validation and dispatch of delayed layers."""


    def __init__(
        self, in_features: int, out_features: int, params: LIFParams, dt: float = 1.0, *,
        recurrent: bool = False, max_delay: float = 20.0, delay_init: str | float = "uniform",
        learn_delays: bool = True, delay_mode: str = "interpolate", method: str = "eventprop",
        backend: str = "auto", weight_mean: float = 0.0, weight_std: float = 1.0,
        recurrent_std: float = 0.5, min_vdot: float = DEFAULT_MIN_VDOT,
        surrogate_slope: float = 10.0,
    ) -> None:  # fmt: skip
        super().__init__()
        name = type(self).__name__
        if in_features < 1 or out_features < 1:
            raise SpikeforgeError(f"{name}: in_features and out_features must be >= 1")
        if not (dt > 0):
            raise SpikeforgeError(f"{name}: dt must be a positive number of ms, got {dt!r}")
        params.validate(dt, name)
        self.model = model_of(params)
        if not self.model.supports("delays"):
            raise SpikeforgeError(f"{name}: the {self.model.name} neuron model does not "
                                  f"support synaptic delays; use a LIF layer")
        if not (math.isfinite(max_delay) and max_delay >= 0):
            raise SpikeforgeError(
                f"{name}: max_delay must be a finite number of ms >= 0, got {max_delay!r}")
        if delay_mode not in DELAY_MODES:
            raise SpikeforgeError(
                f"{name}: unknown delay_mode {delay_mode!r}; choose one of {DELAY_MODES}")
        if method not in METHODS:
            raise SpikeforgeError(f"{name}: unknown method {method!r}; choose one of {METHODS}")
        if backend != "auto" and backend not in BACKENDS:
            raise SpikeforgeError(
                f"{name}: unknown backend {backend!r}; choose 'auto' or one of {BACKENDS}")
        self.in_features, self.out_features = in_features, out_features
        self.params, self.dt, self.max_delay = params, float(dt), float(max_delay)
        self.delay_mode, self.method, self.backend = delay_mode, method, backend
        self.min_vdot, self.surrogate_slope = min_vdot, surrogate_slope
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.delay = nn.Parameter(torch.empty(out_features, in_features),
                                  requires_grad=learn_delays)
        with torch.no_grad():
            self.weight.normal_(weight_mean, weight_std / math.sqrt(in_features))
            self._init_delay(self.delay, delay_init)
        if recurrent:
            self.recurrent_weight = nn.Parameter(torch.empty(out_features, out_features))
            self.recurrent_delay = nn.Parameter(torch.empty(out_features, out_features),
                                                requires_grad=learn_delays)
            with torch.no_grad():
                self.recurrent_weight.normal_(0.0, recurrent_std / math.sqrt(out_features))
                self._init_delay(self.recurrent_delay, delay_init)
        else:
            self.register_parameter("recurrent_weight", None)
            self.register_parameter("recurrent_delay", None)
        self.last_record: SpikeRecord | None = None

    def _init_delay(self, delay: torch.Tensor, init: str | float) -> None:
        if init == "uniform":
            delay.uniform_(0.0, self.max_delay)
        elif isinstance(init, int | float) and 0 <= init <= self.max_delay:
            delay.fill_(float(init))
        else:
            raise SpikeforgeError(
                f"{type(self).__name__}: delay_init must be 'uniform' or a number of ms in "
                f"[0, max_delay={self.max_delay}], got {init!r}")

    def check_duration(self, n_steps: int) -> None:
        """Raise unless every delay fits inside a simulation of ``n_steps`` steps."""
        if self.max_delay >= n_steps * self.dt:
            raise SpikeforgeError(
                f"{type(self).__name__}: max_delay={self.max_delay} ms is not shorter than the "
                f"simulated window of {n_steps * self.dt:g} ms; lower max_delay or simulate "
                f"longer")

    def clamped_delays(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Delays (ms) as used in the forward: clamped to [0, max_delay]."""
        rec = self.recurrent_delay
        return (self.delay.clamp(0.0, self.max_delay),
                None if rec is None else rec.clamp(0.0, self.max_delay))  # fmt: skip

    def _record(self, x: torch.Tensor) -> SpikeRecord | None:
        name = type(self).__name__
        record = record_of(x)
        n_units = record.events.n_units if record is not None else (
            x.shape[-1] if x.ndim == 3 else None)
        if n_units != self.in_features:
            raise SpikeforgeError(
                f"{name}: expected input [batch, time, {self.in_features}], got "
                f"{n_units if record is not None else list(x.shape)}; match the previous layer")
        if not isinstance(record, SpikeRecord):
            return None  # dense input, or a device-path (CUDA) layer's dense spikes
        return record

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        upstream = self._record(x)
        n_steps = upstream.events.n_steps if upstream is not None else x.shape[1]
        self.check_duration(n_steps)
        d_in, d_rec = self.clamped_delays()
        dtype = numpy_dtype(self.weight.dtype)
        if self.method == "bptt":
            return self._forward_bptt(x, upstream, d_in, d_rec)
        if x.is_cuda:
            from spikeforge.nn import gpu_delays  # imports this module

            if gpu_delays.runs_fused(self, x):
                return gpu_delays.run_fused(self, x, d_in, d_rec)
        call = DelayCall(
            neurons=NeuronArrays.from_params(self.params, self.out_features, self.dt, dtype),
            backend="event" if self.backend == "auto" else self.backend,
            min_vdot=self.min_vdot, dense_output=getattr(self, "dense_output", True),
            upstream=upstream, mode=self.delay_mode,
        )  # fmt: skip
        out = DelayedFunction.apply(x, self.weight, d_in, self.recurrent_weight, d_rec, call)
        if self.params.spiking:
            self.last_record = call.output
            attach(out, call.output)
        return out

    def _forward_bptt(self, x, upstream, d_in, d_rec) -> torch.Tensor:
        dense = delay_bptt.dense_input(x, upstream, self.weight.dtype, self.weight.device)
        out = delay_bptt.run(
            dense, self.weight, d_in, self.recurrent_weight, d_rec, self.params,
            torch_table(self, self.params, self.out_features, self.dt, self.weight), self.dt,
            self.delay_mode, self.surrogate_slope,
        )  # fmt: skip
        if self.params.spiking:
            out, self.last_record = delay_bptt.with_record(out, self.dt)
        return out

    def extra_repr(self) -> str:
        p = self.params
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"recurrent={self.recurrent_weight is not None}, max_delay={self.max_delay}, "
                f"delay_mode={self.delay_mode}, method={self.method}, tau_mem={p.tau_mem}, "
                f"tau_syn={p.tau_syn}, dt={self.dt}")  # fmt: skip


class DelayedLIF(_DelayedLayer):
    """LIF layer whose feed-forward (and optional recurrent) synapses have learnable delays.

    Args:
        in_features, out_features: layer sizes; recurrent: add delayed recurrent synapses.
        tau_mem, tau_syn (ms), threshold, dt (ms): neuron model and time step.
        max_delay: upper bound of every delay in ms (must be < the simulated window).
        delay_init: ``"uniform"`` (U[0, max_delay]) or a fixed delay in ms.
        learn_delays: train the delays (False: fixed delays, weights still learn).
        delay_mode: ``"interpolate"`` (real-valued) or ``"round"`` (whole steps).
        method: ``"eventprop"`` (exact, O(spikes) memory) or ``"bptt"`` (surrogate).
        dense_output: False returns an event token (O(spikes) memory, EventProp only).
        surrogate_slope: slope of the fast-sigmoid surrogate (BPTT only).
        params: neuron parameters of a registered model with the ``"delays"`` feature
            (replaces tau_mem, tau_syn and threshold).
    """


    def __init__(
        self, in_features: int, out_features: int, recurrent: bool = False,
        tau_mem: float = 20.0, tau_syn: float = 5.0, threshold: float = 1.0, dt: float = 1.0,
        *, dense_output: bool = True, params: LIFParams | None = None, **options,
    ) -> None:  # fmt: skip
        if params is None:
            params = LIFParams(tau_mem=tau_mem, tau_syn=tau_syn, threshold=threshold)
        super().__init__(in_features, out_features, params, dt, recurrent=recurrent, **options)
        method = options.get("method", "eventprop")
        self.dense_output = dense_output or method == "bptt"


class DelayedLI(_DelayedLayer):
    """Leaky-integrator readout with learnable per-synapse input delays; returns V
    ``[batch, time, out]``. Arguments as :class:`DelayedLIF` (no threshold/recurrence)."""


    def __init__(
        self, in_features: int, out_features: int, tau_mem: float = 20.0,
        tau_syn: float = 5.0, dt: float = 1.0, *, params: LIFParams | None = None, **options,
    ) -> None:  # fmt: skip
        if params is None:
            params = LIFParams(tau_mem=tau_mem, tau_syn=tau_syn, spiking=False)
        super().__init__(in_features, out_features, params, dt, **options)
