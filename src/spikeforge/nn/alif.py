"""Adaptive LIF (ALIF) layer: LIF whose threshold rises by beta after every spike and
relaxes with tau_adapt (:class:`spikeforge.model.ALIFParams`). Gradients by EventProp
(the ALIF adjoint of :mod:`spikeforge.engine.alif_kernels`) or surrogate BPTT.

Shapes as for :class:`spikeforge.nn.LIF`: input ``[B, T, in]`` (or an event token),
output spikes ``[B, T, out]`` (or a token when ``dense_output=False`` with EventProp).
"""

from __future__ import annotations

import math

import torch

from spikeforge.engine import alif_layers as engine
from spikeforge.engine.alif_layers import AdaptArrays
from spikeforge.model.neurons import ALIFParams
from spikeforge.nn.bptt import Adaptation
from spikeforge.nn.bptt_layers import lif_bptt
from spikeforge.nn.device_functional import lif_device, uses_device_path
from spikeforge.nn.functional import (
    LayerCall,
    _input_events,
    _input_grad,
    _spike_dldt,
    _to_numpy_weight,
    numpy_dtype,
)
from spikeforge.nn.layers import LIF, _check_input
from spikeforge.nn.records import SpikeRecord, attach


class ALIFFunction(torch.autograd.Function):
    """ALIF layer: input [B, T, in] (or token) -> spikes [B, T, out] (or token)."""

    @staticmethod
    def forward(ctx, x, w_in, w_rec, call: LayerCall, adapt: AdaptArrays):
        inputs = _input_events(x, call)
        w_in_np = _to_numpy_weight(w_in)
        w_rec_np = None if w_rec is None else _to_numpy_weight(w_rec)
        spikes, spike_adapt = engine.alif_forward(
            inputs, w_in_np, w_rec_np, call.neurons, adapt, call.backend
        )
        call.output = SpikeRecord(events=spikes, dt=call.dt)
        ctx.call, ctx.inputs, ctx.adapt, ctx.spike_adapt = call, inputs, adapt, spike_adapt
        ctx.save_for_backward(x, w_in, w_rec)
        if call.dense_output:
            return torch.from_numpy(spikes.to_dense(w_in_np.dtype))
        return torch.empty(0, dtype=w_in.dtype)

    @staticmethod
    def backward(ctx, grad_spikes):
        x, w_in, w_rec = ctx.saved_tensors
        call: LayerCall = ctx.call
        dldt = _spike_dldt(call.output, grad_spikes if call.dense_output else None)
        need_x = ctx.needs_input_grad[0]
        grads = engine.alif_backward(
            ctx.inputs, call.output.events, ctx.spike_adapt, _to_numpy_weight(w_in),
            None if w_rec is None else _to_numpy_weight(w_rec), call.neurons, ctx.adapt, dldt,
            want_input_timing=call.upstream is not None and need_x,
            want_trace=call.upstream is None and need_x,
            min_vdot=call.min_vdot, backend=call.backend,
        )  # fmt: skip
        grad_x = _input_grad(x, call, grads, w_in, need_x)
        grad_w_in = torch.from_numpy(grads.grad_w_in.T.copy()).to(w_in.dtype)
        grad_w_rec = None
        if w_rec is not None:
            grad_w_rec = torch.from_numpy(grads.grad_w_rec.T.copy()).to(w_rec.dtype)
        return grad_x, grad_w_in, grad_w_rec, None, None


class ALIF(LIF):
    """Adaptive LIF layer (threshold theta + beta A, A += 1 per spike, decay tau_adapt).

    Args: those of :class:`spikeforge.nn.LIF`, plus
        tau_adapt: adaptation time constant in ms (> dt);
        beta: adaptation strength (>= 0).
    """

    def __init__(self, in_features: int, out_features: int, recurrent: bool = False,
                 tau_mem: float = 20.0, tau_syn: float = 5.0, threshold: float = 1.0,
                 dt: float = 1.0, *, tau_adapt: float = 200.0, beta: float = 0.2,
                 **kwargs) -> None:
        super().__init__(in_features, out_features, recurrent, tau_mem, tau_syn, threshold,
                         dt, **kwargs)
        self.params = ALIFParams(tau_mem=tau_mem, tau_syn=tau_syn, threshold=threshold,
                                 spiking=True, tau_adapt=tau_adapt, beta=beta)
        self.params.validate(self.dt, "ALIF")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        upstream = _check_input(x, self.in_features, "ALIF")
        p = self.params
        if self.method == "bptt":
            def vector(value: float) -> torch.Tensor:
                return torch.full((self.out_features,), value, dtype=self.weight.dtype,
                                  device=self.weight.device)

            adaptation = Adaptation(vector(math.exp(-self.dt / p.tau_adapt)), vector(p.beta))
            return lif_bptt(self, x, adaptation)
        adapt = AdaptArrays.from_params(p, self.out_features, self.dt,
                                        numpy_dtype(self.weight.dtype))
        if uses_device_path(x, self.backend):
            return lif_device(self, x, adapt)
        call = self._call(x, upstream, self.dense_output)
        out = ALIFFunction.apply(x, self.weight, self.recurrent_weight, call, adapt)
        self.last_record = call.output
        return attach(out, call.output)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, tau_adapt={self.params.tau_adapt}, "
                f"beta={self.params.beta}")
