"""The EventProp autograd Function on the torch (CUDA) path: :mod:`spikeforge.engine.dense_loop`
with torch tensors on the layer's device.

Used automatically when a layer's input lives on a CUDA device (or with
``backend="torch"``, which tests use on the CPU). Spikes travel between layers as dense
tensors ``[B, T, N]`` on the device, each carrying a :class:`DeviceSpikeRecord`; as on
the CPU path, a consuming spikeforge layer adds the exact timing sensitivity dL/dt of
each input spike into the producer's record instead of returning a dense gradient, and
generic consumers' dense gradients G are turned into timing sensitivities by
(G[n+1] - G[n]) / dt.

Memory: the forward keeps the spike mask and the model's per-spike values on the
[B, T, N] grid and no voltage trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from spikeforge.engine import dense_loop
from spikeforge.engine.api import DEFAULT_MIN_VDOT
from spikeforge.events import Events
from spikeforge.neurons.base import NeuronModel
from spikeforge.nn.records import attach, record_of
from spikeforge.nn.time_constants import torch_table


@dataclass
class DeviceSpikeRecord:
    """Spikes of one layer on a device: mask [B, T, N] (bool), the model's per-spike
    values ``x1``/``x2`` [B, T, N], step ``dt`` (ms) and the accumulated timing gradient
    ``dldt`` [B, T, N]."""

    spikes: torch.Tensor
    x1: torch.Tensor
    x2: torch.Tensor
    dt: float
    dldt: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.dldt = torch.zeros_like(self.x1)

    @property
    def events(self) -> Events:
        """The spikes as CPU :class:`Events` (a device-to-host copy; for statistics)."""
        events = Events.from_dense(self.spikes.cpu().numpy())
        index = (events.sample_index(), events.step, events.unit)
        events.isyn = self.x1.cpu().numpy()[index]
        return events


@dataclass
class DeviceCall:
    """Non-tensor arguments of one layer call on the device path."""

    model: NeuronModel
    table: torch.Tensor  # [K, N] on the device
    dt: float
    spiking: bool
    min_vdot: float
    upstream: DeviceSpikeRecord | None
    output: DeviceSpikeRecord | None = None


def upstream_record(x: torch.Tensor) -> DeviceSpikeRecord | None:
    """The device spike record carried by ``x``, if it came from a device-path layer."""
    record = record_of(x)
    return record if isinstance(record, DeviceSpikeRecord) else None


def spike_timing_dense(record: DeviceSpikeRecord, grad: torch.Tensor | None) -> torch.Tensor:
    """dL/dt of every spike [B, T, N] (0 elsewhere): the consumers' exact share in the
    record (which is then cleared) plus generic consumers' dense-gradient difference
    (G[n+1] - G[n]) / dt."""
    dldt = record.dldt
    record.dldt = torch.zeros_like(dldt)
    if grad is not None:
        following = torch.cat([grad[:, 1:], torch.zeros_like(grad[:, :1])], dim=1)
        dldt = dldt + torch.where(record.spikes, (following - grad) / record.dt, 0.0)
    return dldt


class DeviceEventPropFunction(torch.autograd.Function):
    """A layer on the device path: x [B, T, in] -> spikes [B, T, N] (float 0/1) or, for a
    readout, V [B, T, N]."""

    @staticmethod
    def forward(ctx, x, w_in, w_rec, call: DeviceCall):
        w_rec_t = None if w_rec is None else w_rec.detach().t()
        run = dense_loop.simulate(call.model, call.table, x.detach() @ w_in.detach().t(),
                                  w_rec_t, call.spiking)
        ctx.call = call
        ctx.save_for_backward(x, w_in, w_rec)
        if call.spiking:
            call.output = DeviceSpikeRecord(run.out > 0, run.x1, run.x2, call.dt)
        return run.out

    @staticmethod
    def backward(ctx, grad_out):
        x, w_in, w_rec = ctx.saved_tensors
        call: DeviceCall = ctx.call
        need_x = ctx.needs_input_grad[0]
        record = call.output
        timing = dict(grad_v=grad_out)
        if call.spiking:
            timing = dict(spikes=record.spikes, x1=record.x1, x2=record.x2,
                          spike_dldt=spike_timing_dense(record, grad_out))
        grads = dense_loop.adjoint(
            call.model, call.table, call.dt, x.detach(), w_in.detach().t(),
            None if w_rec is None else w_rec.detach().t(), min_vdot=call.min_vdot,
            want_input_timing=need_x and call.upstream is not None, **timing,
        )  # fmt: skip
        return device_layer_grads(x, w_in, call.upstream, need_x, grads.in_dldt,
                                  grads.lam_i_trace, grads.grad_w_in, grads.grad_w_rec)


def device_layer_grads(x, w_in, upstream: DeviceSpikeRecord | None, need_x: bool, in_dldt,
                       lam_i_trace, grad_w_in, grad_w_rec) -> tuple:
    """The autograd outputs (dL/dx, dL/dW_in, dL/dW_rec, None) of a device-path layer from
    its engine gradients (weights [pre, post], returned as torch's [post, pre]). With an
    upstream spike record the input timing goes into the record and dL/dx is zero."""
    grad_x = None
    if need_x and upstream is not None:
        upstream.dldt += in_dldt
        grad_x = torch.zeros_like(x)
    elif need_x:
        grad_x = lam_i_trace @ w_in
    return grad_x, grad_w_in.t(), None if grad_w_rec is None else grad_w_rec.t(), None


def uses_device_path(x: torch.Tensor, backend: str) -> bool:
    """Whether a layer call runs on the torch path: CUDA input, or ``backend="torch"``."""
    return backend == "torch" or x.is_cuda


def _function_for(call: DeviceCall, x: torch.Tensor) -> type:
    """The fused CUDA kernels (:mod:`spikeforge.nn.gpu_functional`) where they run this
    call (CUDA input, a GPU numba.cuda can use, a covered model), else the torch loop."""
    if not x.is_cuda:
        return DeviceEventPropFunction
    from spikeforge.nn.gpu_functional import fused_function  # imports this module

    return fused_function(call, x) or DeviceEventPropFunction


def run_device(layer, x: torch.Tensor) -> torch.Tensor:
    """Forward of a spikeforge layer with dense synapses on the torch (CUDA) path; spiking
    outputs carry a :class:`DeviceSpikeRecord` (also left in ``layer.last_record``)."""
    call = DeviceCall(
        model=layer.model, dt=layer.dt, spiking=layer.params.spiking,
        table=torch_table(layer, layer.params, layer.out_features, layer.dt,
                          layer.weight).detach(),
        min_vdot=getattr(layer, "min_vdot", DEFAULT_MIN_VDOT), upstream=upstream_record(x),
    )  # fmt: skip
    out = _function_for(call, x).apply(x, layer.weight, layer.recurrent_weight, call)
    if not call.spiking:
        return out
    layer.last_record = call.output
    return attach(out, call.output)
