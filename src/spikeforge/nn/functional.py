"""torch.autograd Functions whose backward is EventProp (engine kernels on CPU)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spikeforge.engine import NeuronArrays
from spikeforge.engine import layers as engine
from spikeforge.nn.records import SpikeRecord, attach, record_of


@dataclass
class LayerCall:
    """Everything a layer Function needs besides tensors (one per forward call)."""

    neurons: NeuronArrays
    dt: float
    backend: str
    min_vdot: float
    dense_output: bool
    upstream: SpikeRecord | None
    output: SpikeRecord | None = None


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype the engine computes in for parameters of torch ``dtype`` (no copy,
    works for parameters on any device)."""
    return torch.empty(0, dtype=dtype).numpy().dtype


def _to_numpy_weight(weight: torch.Tensor) -> np.ndarray:
    """torch [post, pre] -> contiguous numpy [pre, post] (presynaptic rows contiguous)."""
    return np.ascontiguousarray(weight.detach().cpu().numpy().T)


def _input_events(x: torch.Tensor, call: LayerCall) -> engine.LayerInput:
    """The layer's input for the engine: the upstream layer's spike events, or for a dense
    tensor whichever of events / dense array is cheaper at its density."""
    if call.upstream is not None:
        return call.upstream.events
    return engine.choose_input(x.detach().cpu().numpy())


def _input_grad(x, call: LayerCall, grads: engine.LayerGrads, w_in: torch.Tensor, needed: bool):
    """Gradient to return for the layer input: timing goes to an upstream record."""
    if not needed:
        return None
    if call.upstream is not None:
        call.upstream.dldt += grads.input_dldt
        return torch.zeros((), dtype=x.dtype, device=x.device).expand(x.shape)
    trace = torch.from_numpy(grads.lam_i_trace)
    return (trace @ w_in.detach().to(trace.dtype)).to(x.dtype)


def _nonzero(grad: torch.Tensor) -> bool:
    """Whether a gradient has any non-zero entry; broadcast zeros (the gradient that
    record-aware consumers return) are recognised from their strides without a scan."""
    if all(stride == 0 for stride in grad.stride()):
        return bool(grad.reshape(-1)[0] != 0)
    return bool(torch.any(grad != 0))


def _spike_dldt(record: SpikeRecord, grad_spikes: torch.Tensor) -> np.ndarray:
    """Timing sensitivities of the spikes: those consumers stored in the record, plus the
    dense gradient of generic consumers converted to a time derivative:
    moving a spike from step n to n+1 changes L by G[n+1] - G[n] (G[T] taken as 0)."""
    dldt = record.dldt
    record.dldt = np.zeros_like(dldt)  # calloc'd: costs no memory until written
    if grad_spikes is not None and grad_spikes.numel() and _nonzero(grad_spikes):
        g = grad_spikes.detach().cpu().numpy()
        ev = record.events
        b = ev.sample_index()
        nxt = np.minimum(ev.step + 1, ev.n_steps - 1)
        g_next = np.where(ev.step + 1 < ev.n_steps, g[b, nxt, ev.unit], 0.0)
        dldt += (g_next - g[b, ev.step, ev.unit]) / record.dt
    return dldt


class LIFFunction(torch.autograd.Function):
    """LIF layer: input [B, T, in] (or an event token) -> spikes [B, T, out] (or a token)."""

    @staticmethod
    def forward(ctx, x, w_in, w_rec, call: LayerCall):
        inputs = _input_events(x, call)
        w_in_np = _to_numpy_weight(w_in)
        w_rec_np = None if w_rec is None else _to_numpy_weight(w_rec)
        spikes = engine.lif_forward(inputs, w_in_np, w_rec_np, call.neurons, call.backend)
        call.output = SpikeRecord(events=spikes, dt=call.dt)
        ctx.call, ctx.inputs = call, inputs
        ctx.save_for_backward(x, w_in, w_rec)
        if call.dense_output:
            out = torch.from_numpy(spikes.to_dense(w_in_np.dtype))
        else:
            out = torch.empty(0, dtype=w_in.dtype)
        return out

    @staticmethod
    def backward(ctx, grad_spikes):
        x, w_in, w_rec = ctx.saved_tensors
        call: LayerCall = ctx.call
        dldt = _spike_dldt(call.output, grad_spikes if call.dense_output else None)
        need_x = ctx.needs_input_grad[0]
        grads = engine.lif_backward(
            ctx.inputs,
            call.output.events,
            _to_numpy_weight(w_in),
            None if w_rec is None else _to_numpy_weight(w_rec),
            call.neurons,
            dldt,
            want_input_timing=call.upstream is not None and need_x,
            want_trace=call.upstream is None and need_x,
            min_vdot=call.min_vdot,
            backend=call.backend,
        )
        grad_x = _input_grad(x, call, grads, w_in, need_x)
        grad_w_in = torch.from_numpy(grads.grad_w_in.T.copy()).to(w_in.dtype)
        grad_w_rec = None
        if w_rec is not None:
            grad_w_rec = torch.from_numpy(grads.grad_w_rec.T.copy()).to(w_rec.dtype)
        return grad_x, grad_w_in, grad_w_rec, None


class LIFunction(torch.autograd.Function):
    """Leaky-integrator readout: input [B, T, in] (or token) -> membrane V [B, T, out]."""

    @staticmethod
    def forward(ctx, x, w_in, call: LayerCall):
        inputs = _input_events(x, call)
        v = engine.li_forward(inputs, _to_numpy_weight(w_in), call.neurons, call.backend)
        ctx.call, ctx.inputs = call, inputs
        ctx.save_for_backward(x, w_in)
        return torch.from_numpy(v)

    @staticmethod
    def backward(ctx, grad_v):
        x, w_in = ctx.saved_tensors
        call: LayerCall = ctx.call
        need_x = ctx.needs_input_grad[0]
        grads = engine.li_backward(
            ctx.inputs,
            _to_numpy_weight(w_in),
            call.neurons,
            grad_v.detach().cpu().numpy(),
            want_input_timing=call.upstream is not None and need_x,
            want_trace=call.upstream is None and need_x,
            backend=call.backend,
        )
        grad_x = _input_grad(x, call, grads, w_in, need_x)
        return grad_x, torch.from_numpy(grads.grad_w_in.T.copy()).to(w_in.dtype), None


def run_lif(x, w_in, w_rec, call: LayerCall) -> torch.Tensor:
    """Apply :class:`LIFFunction` and attach the output spike record."""
    out = LIFFunction.apply(x, w_in, w_rec, call)
    return attach(out, call.output)


def run_li(x, w_in, call: LayerCall) -> torch.Tensor:
    return LIFunction.apply(x, w_in, call)


__all__ = ["LIFFunction", "LIFunction", "LayerCall", "record_of", "run_li", "run_lif"]
