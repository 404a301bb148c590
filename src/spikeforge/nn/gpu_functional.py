"""The EventProp autograd Function on the fused CUDA kernels (:mod:`spikeforge.engine.gpu_api`).

Chosen by :func:`spikeforge.nn.device_functional.run_device` for a layer whose input is
a CUDA tensor when numba.cuda can use the GPU and the kernels cover the layer's model
(:func:`fused_function`); otherwise the torch dense loop runs. It keeps the torch
path's interface exactly: dense spike tensors ``[B, T, N]`` between layers, each with a
:class:`DeviceSpikeRecord` into which consumers add their timing sensitivities. Inside,
the kernels record spikes sparsely and keep no state trace.
"""

from __future__ import annotations

import torch

from spikeforge.engine import gpu_api
from spikeforge.nn.device_functional import (
    DeviceCall,
    DeviceSpikeRecord,
    device_layer_grads,
    spike_timing_dense,
)


def dense_with_record(spikes: gpu_api.DeviceSpikes, dtype: torch.dtype,
                      dt: float) -> tuple[torch.Tensor, DeviceSpikeRecord]:
    """A fused layer's output: its spikes as a dense 0/1 tensor [B, T, N] of ``dtype``
    and the :class:`DeviceSpikeRecord` (mask, per-spike values) consumers read."""
    dense = spikes.to_dense(dtype=dtype)
    x1 = spikes.to_dense(spikes.x1)
    x2 = spikes.to_dense(spikes.x2) if spikes.x2.shape[1] else x1
    return dense, DeviceSpikeRecord(dense > 0, x1, x2, dt)


def fused_function(call: DeviceCall, x: torch.Tensor) -> type | None:
    """:class:`FusedEventPropFunction` when the fused kernels run this layer call (CUDA
    input, a GPU numba.cuda can use, a model and size the kernels cover), else None."""
    if x.is_cuda and gpu_api.available() and gpu_api.supports(call.model, call.table.shape[1],
                                                              x.dtype):
        return FusedEventPropFunction
    return None


class FusedEventPropFunction(torch.autograd.Function):
    """A layer on the fused kernels: x [B, T, in] -> spikes [B, T, N] (float 0/1) or, for
    a readout, V [B, T, N]; layer weights are [out, in] as in torch."""

    @staticmethod
    def forward(ctx, x, w_in, w_rec, call: DeviceCall):
        neurons = gpu_api.DeviceNeurons(call.model, call.table, call.dt, call.spiking)
        w_rec_t = None if w_rec is None else w_rec.detach().t()
        out = gpu_api.forward(x.detach(), w_in.detach().t(), w_rec_t, neurons)
        ctx.call, ctx.neurons, ctx.spikes = call, neurons, None
        ctx.save_for_backward(x, w_in, w_rec)
        if not call.spiking:
            return out
        ctx.spikes = out
        dense, call.output = dense_with_record(out, x.dtype, call.dt)
        return dense

    @staticmethod
    def backward(ctx, grad_out):
        x, w_in, w_rec = ctx.saved_tensors
        call: DeviceCall = ctx.call
        need_x = ctx.needs_input_grad[0]
        timing = dict(grad_v=grad_out)
        if call.spiking:
            timing = dict(spikes=ctx.spikes, spike_dldt=ctx.spikes.gather(
                spike_timing_dense(call.output, grad_out)))
        upstream = need_x and call.upstream is not None
        grads = gpu_api.backward(
            x.detach(), w_in.detach().t(), None if w_rec is None else w_rec.detach().t(),
            ctx.neurons, want_input_timing=upstream, want_trace=need_x and not upstream,
            min_vdot=call.min_vdot, **timing,
        )  # fmt: skip
        return device_layer_grads(x, w_in, call.upstream, need_x, grads.input_dldt,
                                  grads.lam_i_trace, grads.grad_w_in, grads.grad_w_rec)
