"""The EventProp autograd Function of every layer with dense synapses (CPU engine).

One Function serves every neuron model (LIF, ALIF, ... and the LI readout): the layer's
:class:`~spikeforge.engine.NeuronArrays` carries its model and factor table, and the
engine's generic drivers do the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spikeforge.engine import api as engine
from spikeforge.nn.lazy_spikes import LazySpikes
from spikeforge.nn.records import SpikeRecord, attach, timing_from_dense


@dataclass
class LayerCall:
    """Everything the Function needs besides tensors (one per forward call); the time
    step is ``neurons.dt``."""

    neurons: engine.NeuronArrays
    backend: str
    min_vdot: float
    dense_output: bool
    upstream: SpikeRecord | None
    output: SpikeRecord | None = None


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype the engine computes in for parameters of torch ``dtype`` (no copy,
    works for parameters on any device)."""
    return torch.empty(0, dtype=dtype).numpy().dtype


def engine_weight(weight: torch.Tensor) -> np.ndarray:
    """torch [post, pre] -> contiguous numpy [pre, post] (presynaptic rows contiguous)."""
    return np.ascontiguousarray(weight.detach().cpu().numpy().T)


def torch_grad(grad: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """An engine gradient [pre, post] as a torch gradient [post, pre] like ``like``."""
    return torch.from_numpy(grad.T.copy()).to(like.dtype)


def engine_input(x: torch.Tensor, upstream: SpikeRecord | None) -> engine.LayerInput:
    """The layer's input for the engine: the upstream layer's spike events, or for a dense
    tensor whichever of events / dense array is cheaper at its density."""
    if upstream is not None:
        return upstream.events
    return engine.choose_input(x.detach().cpu().numpy())


def input_grad(x: torch.Tensor, upstream: SpikeRecord | None, input_dldt, lam_i_trace,
               weight_grad_map, needed: bool) -> torch.Tensor | None:
    """Gradient to return for the layer input. With an upstream spike record the exact
    timing sensitivities go into the record (and a broadcast zero is returned); for a
    dense input ``weight_grad_map(lam_i_trace)`` gives dL/dx [B, T, in]."""
    if not needed:
        return None
    if upstream is not None:
        upstream.dldt += input_dldt
        return torch.zeros((), dtype=x.dtype, device=x.device).expand(x.shape)
    return torch.from_numpy(weight_grad_map(lam_i_trace)).to(x.dtype)


def _nonzero(grad: torch.Tensor) -> bool:
    """Whether a gradient has any non-zero entry; broadcast zeros (the gradient that
    record-aware consumers return) are recognised from their strides without a scan."""
    if all(stride == 0 for stride in grad.stride()):
        return bool(grad.reshape(-1)[0] != 0)
    return bool(torch.any(grad != 0))


def spike_timing(record: SpikeRecord, grad_spikes: torch.Tensor | None) -> np.ndarray:
    """Timing sensitivities of a layer's spikes: those its consumers stored in the record
    (which is then cleared) plus the dense gradient of generic consumers."""
    dldt = record.dldt
    record.dldt = np.zeros_like(dldt)  # calloc'd: costs no memory until written
    if grad_spikes is not None and grad_spikes.numel() and _nonzero(grad_spikes):
        dldt += timing_from_dense(grad_spikes, record.events, record.dt).astype(dldt.dtype)
    return dldt


class EventPropFunction(torch.autograd.Function):
    """A layer with dense synapses: input [B, T, in] (or an event token) -> spikes
    [B, T, out] (or a token) for a spiking population, V [B, T, out] for a readout."""

    @staticmethod
    def forward(ctx, x, w_in, w_rec, call: LayerCall):
        inputs = engine_input(x, call.upstream)
        w_in_np = engine_weight(w_in)
        w_rec_np = None if w_rec is None else engine_weight(w_rec)
        out = engine.forward(inputs, w_in_np, w_rec_np, call.neurons, call.backend)
        ctx.call, ctx.inputs = call, inputs
        ctx.weights = (w_in_np, w_rec_np)
        ctx.save_for_backward(x, w_in, w_rec)
        if not call.neurons.spiking:
            return torch.from_numpy(out)
        call.output = SpikeRecord(events=out, dt=call.neurons.dt)
        if call.dense_output:  # built only if a non-spikeforge operation reads it
            return LazySpikes(lambda: torch.from_numpy(out.to_dense(w_in_np.dtype)),
                              (out.n_batch, out.n_steps, out.n_units), w_in.dtype)
        return torch.empty(0, dtype=w_in.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        x, w_in, w_rec = ctx.saved_tensors
        call: LayerCall = ctx.call
        w_in_np, w_rec_np = ctx.weights
        need_x = ctx.needs_input_grad[0]
        if call.neurons.spiking:
            dense = grad_out if call.dense_output else None
            timing = dict(spikes=call.output.events,
                          spike_dldt=spike_timing(call.output, dense))
        else:
            timing = dict(grad_v=grad_out.detach().cpu().numpy())
        grads = engine.backward(
            ctx.inputs, w_in_np, w_rec_np, call.neurons, **timing,
            want_input_timing=call.upstream is not None and need_x,
            want_trace=call.upstream is None and need_x,
            min_vdot=call.min_vdot, backend=call.backend,
        )  # fmt: skip
        grad_x = input_grad(x, call.upstream, grads.input_dldt, grads.lam_i_trace,
                            lambda trace: trace @ w_in_np.T.astype(trace.dtype), need_x)
        grad_w_rec = None if w_rec is None else torch_grad(grads.grad_w_rec, w_rec)
        return grad_x, torch_grad(grads.grad_w_in, w_in), grad_w_rec, None


def run_layer(x, w_in, w_rec, call: LayerCall) -> torch.Tensor:
    """Apply :class:`EventPropFunction`; a spiking output carries its spike record."""
    out = EventPropFunction.apply(x, w_in, w_rec, call)
    return attach(out, call.output) if call.neurons.spiking else out


__all__ = ["EventPropFunction", "LayerCall", "run_layer"]
