"""Delayed layers (``DelayedLIF`` / ``DelayedLI``, EventProp) on the fused CUDA kernels.

Chosen by the layers for CUDA parameters when numba.cuda can use the GPU and the kernels
cover the model (:func:`runs_fused`); otherwise the compiled CPU kernels run on host
copies. It keeps the device path's interface (:mod:`spikeforge.nn.device_functional`):
dense spike tensors ``[B, T, N]`` between layers (also with ``dense_output=False``),
each carrying a :class:`DeviceSpikeRecord` into which consumers add their exact timing
sensitivities; an upstream device layer's spikes enter as sparse device events.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikeforge.engine import gpu_api
from spikeforge.engine.gpu_delay_api import (
    DeviceDelays,
    DeviceEvents,
    delayed_backward,
    delayed_forward,
)
from spikeforge.nn.delays import trace_input_grad
from spikeforge.nn.device_functional import (
    DeviceSpikeRecord,
    spike_timing_dense,
    upstream_record,
)
from spikeforge.nn.gpu_functional import dense_with_record
from spikeforge.nn.records import attach
from spikeforge.nn.time_constants import torch_table


@dataclass
class FusedDelayCall:
    """Non-tensor arguments of one call: the population, delay mode, the jump's
    ``min_vdot``, the upstream device record (or None) and, after the forward, the
    output's record."""

    neurons: gpu_api.DeviceNeurons
    mode: str
    min_vdot: float
    upstream: DeviceSpikeRecord | None
    output: DeviceSpikeRecord | None = None


def runs_fused(layer, x: torch.Tensor) -> bool:
    """Whether a delayed layer's EventProp call runs on the fused kernels: CUDA input
    and parameters, a GPU numba.cuda can use, a model and size the kernels cover."""
    return (x.is_cuda and layer.weight.is_cuda and gpu_api.available()
            and gpu_api.supports(layer.model, layer.out_features, layer.weight.dtype))


def run_fused(layer, x: torch.Tensor, d_in: torch.Tensor,
              d_rec: torch.Tensor | None) -> torch.Tensor:
    """Forward of a delayed layer on the fused kernels (clamped delays ``d_in`` [out, in],
    ``d_rec`` [out, out] in ms); spiking outputs carry a :class:`DeviceSpikeRecord`."""
    neurons = gpu_api.DeviceNeurons(
        layer.model, torch_table(layer, layer.params, layer.out_features, layer.dt,
                                 layer.weight).detach(), layer.dt, layer.params.spiking)
    call = FusedDelayCall(neurons, layer.delay_mode, layer.min_vdot, upstream_record(x))
    out = FusedDelayedFunction.apply(x, layer.weight, d_in, layer.recurrent_weight, d_rec,
                                     call)
    if not layer.params.spiking:
        return out
    layer.last_record = call.output
    return attach(out, call.output)


class FusedDelayedFunction(torch.autograd.Function):
    """x [B, T, in] -> spikes [B, T, N] (float 0/1) or V [B, T, N]; weights and delays
    [out, in] as in torch; gradients for weights and delays (per ms)."""

    @staticmethod
    def forward(ctx, x, w_in, d_in, w_rec, d_rec, call: FusedDelayCall):
        neurons, mode = call.neurons, call.mode
        dt = neurons.dt
        delays_in = DeviceDelays.from_ms(d_in.detach().t(), dt, mode)
        delays_rec = None if d_rec is None else DeviceDelays.from_ms(d_rec.detach().t(),
                                                                     dt, mode)
        w_rec_t = None if w_rec is None else w_rec.detach().t()
        inputs = DeviceEvents.of(x.detach(), w_in)
        out = delayed_forward(inputs, w_in.detach().t(), delays_in, w_rec_t, delays_rec,
                              neurons)
        ctx.call, ctx.inputs, ctx.spikes = call, inputs, None
        ctx.delays = (delays_in, delays_rec)
        ctx.save_for_backward(x, w_in, w_rec)
        if not neurons.spiking:
            return out
        ctx.spikes = out
        dense, call.output = dense_with_record(out, x.dtype, dt)
        return dense

    @staticmethod
    def backward(ctx, grad_out):
        x, w_in, w_rec = ctx.saved_tensors
        call: FusedDelayCall = ctx.call
        neurons, upstream = call.neurons, call.upstream
        delays_in, delays_rec = ctx.delays
        need_x = ctx.needs_input_grad[0]
        timing = dict(grad_v=grad_out)
        if neurons.spiking:
            timing = dict(spikes=ctx.spikes, spike_dldt=ctx.spikes.gather(
                spike_timing_dense(call.output, grad_out)))
        to_upstream = need_x and upstream is not None
        grads = delayed_backward(
            ctx.inputs, w_in.detach().t(), delays_in,
            None if w_rec is None else w_rec.detach().t(), delays_rec, neurons,
            want_input_timing=to_upstream, want_trace=need_x and not to_upstream,
            min_vdot=call.min_vdot, **timing,
        )  # fmt: skip
        grad_x = None
        if to_upstream:
            upstream.dldt.index_put_(ctx.inputs.index.unbind(1), grads.input_dldt,
                                     accumulate=True)
            grad_x = torch.zeros_like(x)
        elif need_x:
            grad_x = trace_input_grad(grads.lam_i_trace, w_in.detach().t(), delays_in.q,
                                      delays_in.f).to(x.dtype)

        def back(tensor):
            return None if tensor is None else tensor.t()

        return (grad_x, back(grads.grad_w_in), back(grads.grad_d_in),
                back(grads.grad_w_rec), back(grads.grad_d_rec), None)
